// `kcron submit --batch FILE.jsonl` (docs/batch.md): JSON Lines, one Job per line, split into Batch
// records of at most `max_jobs` jobs and `max_bytes` encoded bytes; or, with --api, into kcron-api
// batch requests. Pure: the caller produces them, or sends them.
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

// `kcron submit --batch FILE.jsonl --api` (docs/batch.md#through-kcron-api): the file's non-empty
// lines, each a JSON object (a job, or a template line that kcron-api renders), sent as they are in
// POST /v1/jobs:batch bodies of at most `max_items` items and `max_bytes` bytes. A UTF-8 byte
// order mark at the start of the file is left out.
struct ApiBatchLimits {
  std::size_t max_items = 1000;     // kcron-api's batch limit
  std::size_t max_bytes = 1 << 20;  // kcron-api's body limit (1 MiB)
};

// One request's body, {"jobs":[...]}, and the file's line number of each of its items, in order.
struct ApiBatchChunk {
  std::string body;
  std::vector<std::size_t> lines;
};

// Every chunk of the file, in file order. A line that is not a JSON object, or too large for a
// body on its own, refuses the file (its number and why) before anything is sent.
Result<std::vector<ApiBatchChunk>> api_batch_chunks(std::string_view text, const ApiBatchLimits& limits = {});

// What kcron-api answered for one line: `status` 202 with its job `id` (and `template`, name@version,
// for a rendered one), or a refusal's status, `detail` and `field`.
struct ApiBatchOutcome {
  std::size_t line = 0;
  int status = 0;
  std::string id;
  std::string template_ref;
  std::string detail;
  std::string field;
  bool accepted() const { return status == 202; }
};

// The answer to one chunk ({"results": [...], "tenant", "request_id", ...}), each result mapped back
// to its line of the file. An answer that is not one (no results, or not one per item) is an Error.
struct ApiBatchAnswer {
  std::vector<ApiBatchOutcome> outcomes;
  std::string tenant;  // empty when the API did not say
  std::string request_id;
};
Result<ApiBatchAnswer> api_batch_outcomes(std::string_view answer, const std::vector<std::size_t>& lines);

}  // namespace kcron::cli
