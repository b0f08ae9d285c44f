#include "batch_lines.h"

#include <fmt/format.h>

#include <map>
#include <string>
#include <unordered_map>

#include "kcron/codec.h"
#include "kcron/ids.h"
#include "kcron/routing.h"
#include "kcron/tenant.h"

namespace kcron::cli {

Result<std::vector<BatchRecord>> split_batch_lines(std::string_view text, std::string_view tenant, const BatchLimits& limits,
                                                   std::int32_t partitions) {
  std::vector<BatchRecord> full;
  std::map<std::int32_t, std::pair<BatchRecord, std::size_t>> open;  // by partition: the record filling, its bytes
  std::size_t line_number = 0;
  std::size_t jobs = 0;
  std::unordered_map<std::string, std::size_t> lines_of;  // id -> its line: an id twice is a mistake, not a retry
  while (!text.empty()) {
    const auto end = text.find('\n');
    std::string_view line = text.substr(0, end);
    text = end == std::string_view::npos ? std::string_view() : text.substr(end + 1);
    ++line_number;
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ' || line.back() == '\t')) line.remove_suffix(1);
    while (!line.empty() && (line.front() == ' ' || line.front() == '\t')) line.remove_prefix(1);
    if (line.empty()) continue;
    v1::Job job;
    if (auto decoded = decode_message(line, "application/json", job); !decoded) {
      return decoded.error().within(fmt::format("line {}", line_number));
    }
    if (job.id().empty()) return make_error("line {}: the job has no id (a batch's jobs are deduplicated by id)", line_number);
    if (auto valid = validate_job_id(job.id()); !valid) return valid.error().within(fmt::format("line {}", line_number));
    if (!job.tenant().empty() && tenant_or_default(job.tenant()) != tenant_or_default(tenant)) {
      return make_error("line {}: job '{}' names tenant '{}', but the batch is for tenant '{}'", line_number, job.id(),
                        job.tenant(), tenant_or_default(tenant));
    }
    if (auto [seen, added] = lines_of.emplace(job.id(), line_number); !added) {
      return make_error("line {}: job '{}' is already on line {} (a batch's jobs are deduplicated by id)", line_number, job.id(),
                        seen->second);
    }
    job.set_tenant(std::string(tenant_field(tenant)));
    const std::size_t size = job.ByteSizeLong() + 8;  // the field's tag and length
    if (size > limits.max_bytes) {
      return make_error("line {}: job '{}' of {} bytes is over a batch record's {} bytes", line_number, job.id(), size,
                        limits.max_bytes);
    }
    const std::int32_t partition =
        partitions > 0 ? partition_for_key(scoped_routing_key(tenant, job.id()), partitions).value() : -1;
    auto [slot, created] = open.try_emplace(partition);
    auto& [record, bytes] = slot->second;
    if (created) {
      record.partition = partition;
      record.batch.set_tenant(std::string(tenant_field(tenant)));
    } else if (static_cast<std::size_t>(record.batch.jobs_size()) >= limits.max_jobs || bytes + size > limits.max_bytes) {
      full.push_back(std::move(record));
      record = BatchRecord{partition, {}};
      record.batch.set_tenant(std::string(tenant_field(tenant)));
      bytes = 0;
    }
    *record.batch.add_jobs() = std::move(job);
    bytes += size;
    ++jobs;
  }
  if (jobs == 0) return make_error("no job: the file holds no line");
  for (auto& [partition, filling] : open) full.push_back(std::move(filling.first));
  return full;
}

}  // namespace kcron::cli
