#include "batch_lines.h"

#include <fmt/format.h>

#include <algorithm>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <unordered_map>

#include "kcron/codec.h"
#include "kcron/ids.h"
#include "kcron/routing.h"
#include "kcron/tenant.h"

namespace kcron::cli {
namespace {

// The lines of a JSONL file, numbered from 1, each without its leading and trailing blanks (and a
// CR); blank lines are skipped but counted. A UTF-8 byte order mark at the start (some editors
// write one) is left out: it is not part of line 1's JSON.
class JsonLines {
 public:
  explicit JsonLines(std::string_view text) : text_(text) {
    if (static constexpr std::string_view kBom = "\xEF\xBB\xBF"; text_.starts_with(kBom)) text_.remove_prefix(kBom.size());
  }
  // The next non-blank line, or false at the end of the text.
  bool next(std::string_view& line) {
    while (!text_.empty()) {
      const auto end = text_.find('\n');
      line = text_.substr(0, end);
      text_ = end == std::string_view::npos ? std::string_view() : text_.substr(end + 1);
      ++number_;
      while (!line.empty() && (line.back() == '\r' || line.back() == ' ' || line.back() == '\t')) line.remove_suffix(1);
      while (!line.empty() && (line.front() == ' ' || line.front() == '\t')) line.remove_prefix(1);
      if (!line.empty()) return true;
    }
    return false;
  }
  std::size_t number() const { return number_; }

 private:
  std::string_view text_;
  std::size_t number_ = 0;
};

}  // namespace

Result<std::vector<BatchRecord>> split_batch_lines(std::string_view text, std::string_view tenant, const BatchLimits& limits,
                                                   std::int32_t partitions) {
  std::vector<BatchRecord> full;
  std::map<std::int32_t, std::pair<BatchRecord, std::size_t>> open;  // by partition: the record filling, its bytes
  std::size_t jobs = 0;
  std::unordered_map<std::string, std::size_t> lines_of;  // id -> its line: an id twice is a mistake, not a retry
  JsonLines lines(text);
  std::string_view line;
  while (lines.next(line)) {
    const std::size_t line_number = lines.number();
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

Result<std::string> render_template_lines(std::string_view text, const RenderLine& render) {
  static constexpr std::string_view kTaskKeys[] = {"noop", "sleep", "exec", "http", "kafka", "handler", "sealed"};
  std::string out;
  std::size_t line_number = 0;
  while (!text.empty()) {
    const auto end = text.find('\n');
    const std::string_view line = text.substr(0, end);
    text = end == std::string_view::npos ? std::string_view() : text.substr(end + 1);
    ++line_number;
    const auto refuse = [&](const Error& error) { return error.within(fmt::format("line {}", line_number)); };
    const auto object = nlohmann::json::parse(line, nullptr, false);
    const bool is_template =
        object.is_object() && object.contains("template") && object["template"].is_string() &&
        std::none_of(std::begin(kTaskKeys), std::end(kTaskKeys), [&](std::string_view key) { return object.contains(key); });
    if (!is_template) {
      out.append(line);
      out += '\n';
      continue;
    }
    for (const auto& [key, value] : object.items()) {
      if (key != "template" && key != "params" && key != "id") {
        return refuse(make_error("a template line has \"template\", \"params\" and \"id\", not \"{}\"", key));
      }
    }
    auto ref = templates::parse_ref(object["template"].get<std::string>(), true);
    if (!ref) return refuse(ref.error());
    templates::Params params;
    if (object.contains("params")) {
      if (!object["params"].is_object()) return refuse(Error("\"params\" must be an object of name: value"));
      for (const auto& [name, value] : object["params"].items()) {
        if (value.is_string()) {
          params.emplace(name, value.get<std::string>());
        } else if (value.is_number() || value.is_boolean()) {
          params.emplace(name, value.dump());
        } else {
          return refuse(make_error("parameter '{}' must be a string, a number or a boolean", name));
        }
      }
    }
    auto job = render(*ref, params);
    if (!job) return refuse(job.error());
    if (object.contains("id")) {
      if (!object["id"].is_string()) return refuse(Error("\"id\" must be a string"));
      job->set_id(object["id"].get<std::string>());
    }
    out += to_json(*job);
    out += '\n';
  }
  return out;
}

Result<std::vector<ApiBatchChunk>> api_batch_chunks(std::string_view text, const ApiBatchLimits& limits) {
  static constexpr std::string_view kOpen = R"({"jobs":[)";
  static constexpr std::string_view kClose = "]}";
  std::vector<ApiBatchChunk> chunks;
  JsonLines lines(text);
  std::string_view line;
  while (lines.next(line)) {
    const std::size_t line_number = lines.number();
    if (!nlohmann::json::parse(line, nullptr, false).is_object()) {
      return make_error("line {}: not a JSON object (a job, or a template line {{\"template\": \"NAME@VERSION\", ...}})",
                        line_number);
    }
    const std::size_t alone = kOpen.size() + line.size() + kClose.size();
    if (alone > limits.max_bytes) {
      return make_error("line {}: its {} bytes do not fit in a kcron-api request of at most {} bytes", line_number, line.size(),
                        limits.max_bytes);
    }
    if (chunks.empty() || chunks.back().lines.size() >= limits.max_items ||
        chunks.back().body.size() + 1 + line.size() + kClose.size() > limits.max_bytes) {
      chunks.push_back({std::string(kOpen), {}});
    }
    auto& chunk = chunks.back();
    if (!chunk.lines.empty()) chunk.body += ',';
    chunk.body.append(line);
    chunk.lines.push_back(line_number);
  }
  if (chunks.empty()) return make_error("no job: the file holds no line");
  for (auto& chunk : chunks) chunk.body.append(kClose);
  return chunks;
}

Result<ApiBatchAnswer> api_batch_outcomes(std::string_view answer, const std::vector<std::size_t>& lines) {
  const auto body = nlohmann::json::parse(answer, nullptr, false);
  if (!body.is_object() || !body.contains("results") || !body["results"].is_array() || body["results"].size() != lines.size()) {
    return make_error("kcron-api answered a batch this kcron cannot read (not one result per line)");
  }
  const auto text = [](const nlohmann::json& object, const char* name) {
    const auto found = object.find(name);
    return found != object.end() && found->is_string() ? found->get<std::string>() : std::string();
  };
  ApiBatchAnswer read{{}, text(body, "tenant"), text(body, "request_id")};
  auto& outcomes = read.outcomes;
  outcomes.reserve(lines.size());
  for (std::size_t index = 0; index < lines.size(); ++index) {
    const auto& result = body["results"][index];
    if (!result.is_object() || !result.contains("status") || !result["status"].is_number_integer()) {
      return make_error("kcron-api answered a batch this kcron cannot read (result {} has no status)", index);
    }
    outcomes.push_back({lines[index], result["status"].get<int>(), text(result, "id"), text(result, "template"),
                        text(result, "detail"), text(result, "field")});
  }
  return read;
}

}  // namespace kcron::cli
