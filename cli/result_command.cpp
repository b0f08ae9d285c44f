#include "result_command.h"

#include <fmt/format.h>

#include <fstream>
#include <iostream>
#include <optional>

#include "inspect_command.h"
#include "kcron/codec.h"
#include "kcron/tenant.h"
#include "kcron/topics.h"
#include "objects/s3_store.h"

namespace kcron::cli {
namespace {

int fail(std::ostream& err, const std::string& message) {
  err << "kcron: " << message << "\n";
  return 1;
}

}  // namespace

// " (cut: ...)" for an output the worker stored only in part (over its objects.max_bytes), else "".
std::string cut_note(const v1::ObjectRef& ref) {
  if (ref.original_size() <= ref.size()) return {};
  return fmt::format(" (cut: the first {} of its {} bytes stored, the worker's objects.max_bytes)", ref.size(),
                     ref.original_size());
}

Status verify_object(const v1::ObjectRef& ref, std::string_view bytes, std::string_view actual_sha256) {
  if (bytes.size() != ref.size()) {
    return make_error("{} holds {} bytes, but the result recorded {} (sha256 recorded {}, got {})", ref.uri(), bytes.size(),
                      ref.size(), ref.sha256(), actual_sha256);
  }
  if (actual_sha256 != ref.sha256()) {
    return make_error("{} has sha256 {}, but the result recorded {}", ref.uri(), actual_sha256, ref.sha256());
  }
  return Status::success();
}

ResultCommands::ResultCommands(CLI::App& app) {
  auto* result = app.add_subcommand("result", "a job's result, and its large outputs from the object store");
  result->require_subcommand(1);
  get_ = result->add_subcommand(
      "get", "write a job's output: the stored object (size and sha256 checked against the result) or the inline output");
  get_->add_option("job-id", job_id_)->required();
  get_->add_option("--attempt", attempt_, "the attempt (default: the latest result of the job)");
  get_->add_option("--name", name_, "which output: stdout, stderr or body (default stdout)");
  get_->add_option("-o,--output", output_file_, "write it to this file instead of stdout");
  get_->add_flag("--info", info_, "print the result's stored objects (uri, size, sha256) instead of the bytes");
}

int ResultCommands::run(const Config& config, std::ostream& out, std::ostream& err) const {
  const TopicNames names(config.get("topic_prefix"));
  const std::string tenant(tenant_or_default(config.get("tenant")));
  const std::string key = scoped_key(tenant, job_id_);
  auto records = read_to_end(config, names.results(), key);
  if (!records) return fail(err, records.error().message());
  std::optional<v1::Result> chosen;
  for (const auto& record : *records) {
    v1::Result result;
    if (record.key != key || !decode_message(record.value, record.content_type, result)) continue;
    if (attempt_ != 0 && result.attempt() != attempt_) continue;
    if (!chosen || result.attempt() >= chosen->attempt()) chosen = result;
  }
  const std::string whose = is_default_tenant(tenant) ? "" : fmt::format(" of tenant '{}'", tenant);
  if (!chosen) {
    return fail(err, attempt_ == 0 ? fmt::format("no result for job '{}'{}", job_id_, whose)
                                   : fmt::format("no result for attempt {} of job '{}'{}", attempt_, job_id_, whose));
  }
  if (info_) {
    out << fmt::format("job {} attempt {}: {}, {} inline bytes\n", job_id_, chosen->attempt(), state_name(chosen->state()),
                       chosen->output().size());
    for (const auto& object : chosen->objects()) {
      out << fmt::format("{} {} {} {}{}\n", object.name(), object.size(), object.sha256(), object.uri(), cut_note(object));
    }
    return 0;
  }
  const v1::ObjectRef* ref = nullptr;
  for (const auto& object : chosen->objects()) {
    if (object.name() == name_) ref = &object;
  }
  std::string bytes;
  if (ref == nullptr) {
    if (name_ != "stdout" && name_ != "body") {  // output holds an exec job's stdout or an http job's body
      return fail(err, fmt::format("attempt {} of job '{}' stored no {} output", chosen->attempt(), job_id_, name_));
    }
    bytes = chosen->output();  // small enough to be inline
  } else {
    auto settings = worker::object_settings_from(config);
    if (!settings) return fail(err, settings.error().message());
    if (!settings->enabled()) {
      return fail(err, fmt::format("the output is in the object store ({}); set objects.endpoint and "
                                   "objects.credentials_file (--set or KCRON_OBJECTS_*) to read it",
                                   ref->uri()));
    }
    settings->max_bytes = std::max<std::size_t>(settings->max_bytes, ref->size());
    auto store = worker::make_s3_store(*settings);
    if (!store) return fail(err, store.error().message());
    auto fetched = (*store)->get(ref->uri());
    if (!fetched) return fail(err, fetched.error().message());
    if (auto verified = verify_object(*ref, *fetched, worker::sha256_hex(*fetched)); !verified) {
      return fail(err, verified.error().message());
    }
    bytes = std::move(*fetched);
  }
  if (ref != nullptr && !cut_note(*ref).empty()) err << "kcron: warning: the output was" << cut_note(*ref) << "\n";
  if (output_file_.empty() || output_file_ == "-") {
    out << bytes;
    out.flush();
    return out ? 0 : fail(err, "cannot write to stdout");
  }
  std::ofstream file(output_file_, std::ios::binary | std::ios::trunc);
  file << bytes;
  file.close();
  if (!file) return fail(err, fmt::format("cannot write {}", output_file_));
  err << fmt::format("wrote {} bytes of attempt {} of job '{}'{} to {}{}\n", bytes.size(), chosen->attempt(), job_id_, whose,
                     output_file_, ref != nullptr ? " (sha256 " + ref->sha256() + " checked)" : "");
  return 0;
}

}  // namespace kcron::cli
