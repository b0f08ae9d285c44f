// `kcron submit --batch FILE.jsonl` (docs/batch.md): JSON Lines, one Job per line, split into Batch
// records of at most `max_jobs` jobs and `max_bytes` encoded bytes. Pure: the caller produces them.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "kcron.pb.h"
#include "kcron/result.h"
#include "kcron/templates.h"

namespace kcron::cli {

struct BatchLimits {
  std::size_t max_jobs = 1000;      // jobs per Batch record
  std::size_t max_bytes = 524'288;  // encoded bytes per Batch record (512 KiB), well under the dispatcher's record limit
};

// A Batch record to write, and the jobs-topic partition to write it to (-1: any).
struct BatchRecord {
  std::int32_t partition = -1;
  v1::Batch batch;
};

// Each non-empty line a Job in kcron's JSON form, with an id, naming no tenant or `tenant`. The
// first line that is not refuses the whole file, naming its line number and why. With
// `partitions` (the jobs topic's partition count), each record holds the jobs of one owner
// partition and is written there, so the dispatcher decides every job where it reads it (no
// forwards); without, records hold jobs in file order and go to any partition.
Result<std::vector<BatchRecord>> split_batch_lines(std::string_view text, std::string_view tenant, const BatchLimits& limits = {},
                                                   std::int32_t partitions = 0);

// Template lines (docs/templates.md): a line that is a JSON object with a "template" key
// ("name@version") and no task is rendered by `render`, with its "params" (an object; strings,
// numbers and booleans, as text) and its optional "id" (instead of the id the template gives),
// and replaced by the concrete job's JSON; every other line stays as it is, so line numbers stay.
// The first line that does not render refuses the file, naming its line number and why.
using RenderLine = std::function<Result<v1::Job>(const templates::Ref& ref, const templates::Params& params)>;
Result<std::string> render_template_lines(std::string_view text, const RenderLine& render);

}  // namespace kcron::cli
