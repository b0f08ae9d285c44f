#include "core/requests.h"

#include <google/protobuf/util/json_util.h>
#include <openssl/evp.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "core/rfc3339.h"
#include "kcron/flow_graph.h"
#include "kcron/ids.h"
#include "kcron/tenant.h"

namespace kcron::api {
namespace {

FieldError field_error(std::string field, std::string message) {
  return FieldError{std::move(field), std::move(message)};
}

// "INVALID_ARGUMENT:Cannot find field: colour" -> the part a person reads, with the field when
// protobuf names one.
FieldError json_error(std::string_view message) {
  constexpr std::string_view kPrefix = "INVALID_ARGUMENT:";
  if (message.substr(0, kPrefix.size()) == kPrefix) message.remove_prefix(kPrefix.size());
  // Protobuf names the field first: "colour: Cannot find field.", "(delay): invalid value ...".
  if (message.substr(0, 1) == "(") {
    const auto close = message.find("): ");
    if (close != std::string_view::npos && close <= 65) {
      return field_error(std::string(message.substr(1, close - 1)), std::string(message.substr(close + 3, 200)));
    }
  }
  const auto colon = message.find(": ");
  if (colon != std::string_view::npos && colon > 0 && colon <= 64 &&
      message.substr(0, colon).find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.[]") ==
          std::string_view::npos) {
    auto text = message.substr(colon + 2);
    if (text.substr(0, 19) == "Cannot find field.") text = "unknown field";
    return field_error(std::string(message.substr(0, colon)), std::string(text.substr(0, 200)));
  }
  return field_error("", fmt::format("the body is not a job in kcron's JSON form: {}", message.substr(0, 200)));
}

std::string hex(const unsigned char* bytes, std::size_t count) {
  std::string text;
  text.reserve(count * 2);
  for (std::size_t index = 0; index < count; ++index) text += fmt::format("{:02x}", bytes[index]);
  return text;
}

Result<std::int64_t> parse_int(std::string_view text, std::string_view what) {
  std::int64_t value = 0;
  const auto* end = text.data() + text.size();
  auto [ptr, error] = std::from_chars(text.data(), end, value);
  if (error != std::errc() || ptr != end) return make_error("{} is not an integer", what);
  return value;
}

Result<v1::JobState> parse_state(std::string_view name) {
  v1::JobState state{};
  if (!v1::JobState_Parse(std::string(name), &state) || state == v1::JOB_STATE_UNSPECIFIED) {
    return make_error(
        "unknown state '{}' (PENDING, QUEUED, RUNNING, SUCCEEDED, FAILED, RETRYING, DEAD, CANCELLED, SKIPPED, REJECTED)",
        name.substr(0, 40));
  }
  return state;
}

}  // namespace

Checked<v1::Job> parse_job_body(std::string_view body, std::string_view tenant, std::string_view subject,
                                std::string_view generated_id) {
  Checked<v1::Job> checked;
  if (body.size() > kMaxBodyBytes) {
    checked.error = field_error("", fmt::format("the body of {} bytes exceeds {} bytes", body.size(), kMaxBodyBytes));
    return checked;
  }
  v1::Job job;
  google::protobuf::util::JsonParseOptions options;
  options.ignore_unknown_fields = false;
  if (auto status = google::protobuf::util::JsonStringToMessage(std::string(body), &job, options); !status.ok()) {
    checked.error = json_error(status.ToString());
    return checked;
  }
  if (!job.tenant().empty() && tenant_or_default(job.tenant()) != tenant) {
    checked.error = field_error("tenant", "the tenant comes from your token; leave the field out");
    return checked;
  }
  if (!job.submitted_by().empty()) {
    checked.error = field_error("submitted_by", "kcron sets it from your token; leave the field out");
    return checked;
  }
  if (job.attempt() != 0 || job.history_size() != 0) {
    checked.error = field_error(job.attempt() != 0 ? "attempt" : "history", "kcron sets it; leave the field out");
    return checked;
  }
  if (job.has_schedule_run()) {
    checked.error = field_error("schedule_run", "set by the cron-producer for a schedule's runs; use /v1/schedules");
    return checked;
  }
  if (!job.template_().empty()) {
    checked.error =
        field_error("template", "set by the writer that renders a template (kcron submit --template); leave the field out");
    return checked;
  }
  if (job.id().empty()) job.set_id(std::string(generated_id));
  if (auto valid = validate_job_id(job.id()); !valid) {
    checked.error = field_error("id", valid.error().message());
    return checked;
  }
  if (auto plain = flow::validate_plain_job_id(job.id()); !plain) {
    checked.error = field_error("id", plain.error().message());
    return checked;
  }
  if (job.has_flow()) {
    checked.error = field_error("flow", "set by the dispatcher on a flow's nodes; submit a flow instead");
    return checked;
  }
  if (is_default_tenant(tenant)) {
    if (auto valid = validate_default_tenant_id(job.id()); !valid) {
      checked.error = field_error("id", valid.error().message());
      return checked;
    }
  }
  if (job.task_case() == v1::Job::TASK_NOT_SET) {
    checked.error = field_error("task", "a job needs a task: one of noop, sleep, exec, http, kafka, handler");
    return checked;
  }
  if (job.has_priority() && job.priority() > 9) {
    checked.error = field_error("priority", fmt::format("{} is outside 0-9", job.priority()));
    return checked;
  }
  job.set_tenant(std::string(tenant_field(tenant)));
  job.set_submitted_by(std::string(subject));
  checked.value = std::move(job);
  return checked;
}

namespace {

// The checks of a flow after its JSON parsed, as the dispatcher makes them; fields named under `prefix`.
Checked<v1::Flow> check_flow(v1::Flow flow, std::string_view tenant, std::string_view subject, std::string_view prefix) {
  Checked<v1::Flow> checked;
  const auto refuse = [&](std::string_view field, std::string message) {
    checked.error = field_error(fmt::format("{}{}", prefix, field), std::move(message));
    return checked;
  };
  if (!flow.tenant().empty() && tenant_or_default(flow.tenant()) != tenant) {
    return refuse("tenant", "the tenant comes from your token; leave the field out");
  }
  if (!flow.submitted_by().empty()) return refuse("submitted_by", "kcron sets it from your token; leave the field out");
  if (flow.has_schedule_run()) return refuse("schedule_run", "set by the cron-producer for a schedule's runs; use /v1/schedules");
  std::vector<flow::NodeShape> shapes;
  shapes.reserve(static_cast<std::size_t>(flow.nodes_size()));
  for (const auto& node : flow.nodes()) shapes.push_back({node.name(), {node.depends_on().begin(), node.depends_on().end()}});
  if (auto graph = flow::check_graph(flow.id(), shapes); !graph) {
    return refuse(flow.id().empty() || flow.id().find('/') != std::string::npos ? "id" : "nodes", graph.error().message());
  }
  if (is_default_tenant(tenant)) {
    if (auto valid = validate_default_tenant_id(flow.id()); !valid) return refuse("id", valid.error().message());
  }
  for (int at = 0; at < flow.nodes_size(); ++at) {
    if (const auto& node = flow.nodes(at); node.has_template_ref()) {
      // Rendered by kcron-api before it writes (docs/templates.md#templates-in-flows); its job
      // is checked then.
      if (node.has_job()) return refuse(fmt::format("nodes[{}]", at), "set job or template_ref, not both");
      if (auto ref = templates::parse_ref(node.template_ref().ref(), true); !ref) {
        return refuse(fmt::format("nodes[{}].template_ref.ref", at), ref.error().message());
      }
      if (!v1::FlowNode::Trigger_IsValid(node.trigger()))
        return refuse(fmt::format("nodes[{}].trigger", at), "not a known trigger");
      continue;
    }
    auto& job = *flow.mutable_nodes(at)->mutable_job();
    const std::string id = flow::node_job_id(flow.id(), flow.nodes(at).name());
    const auto field = [&](std::string_view name) { return fmt::format("nodes[{}].job.{}", at, name); };
    if (!job.id().empty() && job.id() != id)
      return refuse(field("id"), fmt::format("a node's id is '{}': leave the field out", id));
    if (!job.tenant().empty() && tenant_or_default(job.tenant()) != tenant) {
      return refuse(field("tenant"), "the tenant comes from your token; leave the field out");
    }
    for (const auto& [name, set] : {std::pair<std::string_view, bool>{"submitted_by", !job.submitted_by().empty()},
                                    {"attempt", job.attempt() != 0},
                                    {"history", job.history_size() != 0},
                                    {"schedule_run", job.has_schedule_run()},
                                    {"flow", job.has_flow()},
                                    {"template", !job.template_().empty()}}) {
      if (set) return refuse(field(name), "kcron sets it; leave the field out");
    }
    if (job.task_case() == v1::Job::TASK_NOT_SET) {
      return refuse(field("task"), "a job needs a task: one of noop, sleep, exec, http, kafka, handler");
    }
    if (job.has_priority() && job.priority() > 9)
      return refuse(field("priority"), fmt::format("{} is outside 0-9", job.priority()));
    if (!v1::FlowNode::Trigger_IsValid(flow.nodes(at).trigger())) {
      return refuse(fmt::format("nodes[{}].trigger", at), "not a known trigger");
    }
  }
  flow.set_tenant(std::string(tenant_field(tenant)));
  flow.set_submitted_by(std::string(subject));
  checked.value = std::move(flow);
  return checked;
}

std::optional<Checked<TemplateSubmission>> template_submission_of(const nlohmann::json& object) {
  static constexpr std::array<std::string_view, 7> kTaskKeys = {"noop", "sleep", "exec", "http", "kafka", "handler", "sealed"};
  if (!object.is_object() || !object.contains("template") || !object["template"].is_string() ||
      std::any_of(kTaskKeys.begin(), kTaskKeys.end(), [&](std::string_view key) { return object.contains(key); })) {
    return std::nullopt;
  }
  Checked<TemplateSubmission> checked;
  for (const auto& [key, value] : object.items()) {
    if (key != "template" && key != "params" && key != "id") {
      checked.error = field_error(key.substr(0, 40), "a template body has \"template\", \"params\" and \"id\" only");
      return checked;
    }
  }
  auto ref = templates::parse_ref(object["template"].get<std::string>(), true);
  if (!ref) {
    checked.error = field_error("template", ref.error().message());
    return checked;
  }
  TemplateSubmission submission{std::move(*ref), {}, std::nullopt};
  if (object.contains("params")) {
    if (!object["params"].is_object()) {
      checked.error = field_error("params", "an object of name: value (a string, a number or a boolean)");
      return checked;
    }
    for (const auto& [name, value] : object["params"].items()) {
      if (value.is_string()) {
        submission.params.emplace(name, value.get<std::string>());
      } else if (value.is_number() || value.is_boolean()) {
        submission.params.emplace(name, value.dump());
      } else {
        checked.error = field_error("params." + name.substr(0, templates::kMaxNameBytes), "a string, a number or a boolean");
        return checked;
      }
    }
  }
  if (object.contains("id")) {
    if (!object["id"].is_string()) {
      checked.error = field_error("id", "a string");
      return checked;
    }
    submission.id = object["id"].get<std::string>();
  }
  checked.value = std::move(submission);
  return checked;
}

}  // namespace

std::optional<Checked<TemplateSubmission>> parse_template_submission(std::string_view body) {
  if (body.size() > kMaxBodyBytes) return std::nullopt;  // refused as a job body
  return template_submission_of(nlohmann::json::parse(body, nullptr, false));
}

template <typename Json>
requires std::same_as<Json, nlohmann::json> std::optional<Checked<TemplateSubmission>> parse_template_submission(
    const Json& object) {
  return template_submission_of(object);
}

template std::optional<Checked<TemplateSubmission>> parse_template_submission(const nlohmann::json& object);

Checked<v1::Flow> parse_flow_body(std::string_view body, std::string_view tenant, std::string_view subject) {
  Checked<v1::Flow> checked;
  if (body.size() > kMaxBodyBytes) {
    checked.error = field_error("", fmt::format("the body of {} bytes exceeds {} bytes", body.size(), kMaxBodyBytes));
    return checked;
  }
  google::protobuf::util::JsonParseOptions options;
  options.ignore_unknown_fields = false;
  v1::Command command;
  v1::Flow flow;
  if (google::protobuf::util::JsonStringToMessage(std::string(body), &command, options).ok() && command.has_flow()) {
    flow = std::move(*command.mutable_flow());
  } else if (auto status = google::protobuf::util::JsonStringToMessage(std::string(body), &flow, options); !status.ok()) {
    checked.error = json_error(status.ToString());
    return checked;
  }
  return check_flow(std::move(flow), tenant, subject, "");
}

BatchVersions find_batch_versions(const std::vector<std::optional<Checked<TemplateSubmission>>>& submissions,
                                  const FindVersion& find, Millis wait, const std::function<bool()>& may_wait,
                                  const Clock& clock) {
  BatchVersions looked_up;
  bool missing = false;
  for (const auto& submission : submissions) {
    if (!submission || !submission->ok()) continue;
    const auto& ref = submission->value->ref;
    auto text = ref.text();
    if (looked_up.versions.contains(text)) continue;
    auto found = find(ref, Millis(0));
    missing = missing || !found;
    looked_up.versions.emplace(std::move(text), BatchVersions::Version{ref, std::move(found)});
  }
  if (!missing || wait <= Millis(0)) return looked_up;
  if (!may_wait()) {
    looked_up.wait_refused = true;
    return looked_up;
  }
  const auto start = clock.now();
  const auto waited = [&] { return std::clamp(std::chrono::duration_cast<Millis>(clock.now() - start), Millis(0), wait); };
  for (auto& [text, version] : looked_up.versions) {
    if (version.found) continue;
    version.found = find(version.ref, wait - waited());
    version.waited = waited();
  }
  return looked_up;
}

Checked<v1::Flow> check_flow_template(v1::Flow flow, std::string_view schedule_id, std::string_view tenant,
                                      std::string_view subject) {
  Checked<v1::Flow> checked;
  for (const auto& [name, set] : {std::pair<std::string_view, bool>{"id", !flow.id().empty()},
                                  {"run_at_ms", flow.run_at_ms() != 0},
                                  {"schedule_run", flow.has_schedule_run()}}) {
    if (set) {
      checked.error = field_error(fmt::format("flow_template.{}", name), "kcron sets it for each run; leave the field out");
      return checked;
    }
  }
  for (int at = 0; at < flow.nodes_size(); ++at) {
    const auto when = flow.nodes(at).job().when_case();
    if (when == v1::Job::kRunAt || when == v1::Job::kRunAtMs) {
      checked.error = field_error(fmt::format("flow_template.nodes[{}].job.run_at", at),
                                  "it would be the same instant for every run; use delay (counted from the run's start)");
      return checked;
    }
  }
  // Checked with the longest id a run has: `<schedule>@YYYY-MM-DDTHH:MM:SS.mmmZ`.
  flow.set_id(fmt::format("{}@2000-01-01T00:00:00.000Z", schedule_id));
  checked = check_flow(std::move(flow), tenant, subject, "flow_template.");
  if (checked.ok()) {
    checked.value->clear_id();
    checked.value->clear_tenant();
  }
  return checked;
}

std::string generated_job_id(std::string_view subject, std::string_view idempotency_key, std::string_view random_suffix) {
  if (idempotency_key.empty()) return fmt::format("job-{}", random_suffix);
  const std::string material = fmt::format("{}\n{}", subject, idempotency_key);
  std::array<unsigned char, EVP_MAX_MD_SIZE> digest{};
  unsigned int length = 0;
  if (EVP_Digest(material.data(), material.size(), digest.data(), &length, EVP_sha256(), nullptr) != 1 || length < 16) {
    return fmt::format("job-{}", random_suffix);
  }
  return "idem-" + hex(digest.data(), 16);
}

std::string encode_page_token(const PageKey& key) {
  return fmt::format("{}.{}", key.submitted_ms, hex(reinterpret_cast<const unsigned char*>(key.id.data()), key.id.size()));
}

Result<PageKey> decode_page_token(std::string_view token) {
  const auto dot = token.find('.');
  if (dot == std::string_view::npos || token.size() > 20 + 1 + 2 * kMaxJobIdBytes) {
    return make_error("page_token is not one this server gave out");
  }
  auto millis = parse_int(token.substr(0, dot), "page_token");
  if (!millis) return make_error("page_token is not one this server gave out");
  const auto hex_id = token.substr(dot + 1);
  if (hex_id.size() % 2 != 0) return make_error("page_token is not one this server gave out");
  PageKey key{*millis, {}};
  for (std::size_t index = 0; index < hex_id.size(); index += 2) {
    unsigned value = 0;
    auto [ptr, error] = std::from_chars(hex_id.data() + index, hex_id.data() + index + 2, value, 16);
    if (error != std::errc() || ptr != hex_id.data() + index + 2) return make_error("page_token is not one this server gave out");
    key.id.push_back(static_cast<char>(value));
  }
  return key;
}

Result<std::int64_t> parse_instant_ms(std::string_view text) {
  if (!text.empty() && text.find_first_not_of("0123456789") == std::string_view::npos) return parse_int(text, "the instant");
  auto instant = cron::parse_rfc3339(text);
  if (!instant) return instant.error();
  return std::chrono::duration_cast<std::chrono::milliseconds>(instant->time_since_epoch()).count();
}

std::optional<std::vector<std::pair<std::string, std::string>>> split_query(std::string_view query, std::size_t max_parameters) {
  const auto decode = [](std::string_view text) -> std::optional<std::string> {
    std::string out;
    for (std::size_t index = 0; index < text.size(); ++index) {
      const char c = text[index];
      if (c == '+') {
        out.push_back(' ');
      } else if (c != '%') {
        out.push_back(c);
      } else {
        unsigned value = 0;
        if (index + 2 >= text.size()) return std::nullopt;  // '%' needs two hex digits
        const auto read = std::from_chars(text.data() + index + 1, text.data() + index + 3, value, 16);
        if (read.ec != std::errc() || read.ptr != text.data() + index + 3) return std::nullopt;
        out.push_back(static_cast<char>(value));
        index += 2;
      }
    }
    return out;
  };
  std::vector<std::pair<std::string, std::string>> parameters;
  while (!query.empty()) {
    const auto amp = query.find('&');
    const auto item = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
    if (item.empty()) continue;
    if (parameters.size() == max_parameters) return std::nullopt;
    const auto equals = item.find('=');
    auto name = decode(item.substr(0, equals));
    auto value = decode(equals == std::string_view::npos ? std::string_view() : item.substr(equals + 1));
    if (!name || !value) return std::nullopt;
    parameters.emplace_back(std::move(*name), std::move(*value));
  }
  return parameters;
}

Checked<ListQuery> parse_list_query(const std::vector<std::pair<std::string, std::string>>& parameters) {
  Checked<ListQuery> checked;
  ListQuery query;
  for (const auto& [name, value] : parameters) {
    if (name == "state") {
      auto state = parse_state(value);
      if (!state) {
        checked.error = field_error(name, state.error().message());
        return checked;
      }
      query.state = *state;
    } else if (name == "queue") {
      query.queue = value;
    } else if (name == "schedule") {
      query.schedule_id = value;
    } else if (name == "label") {
      const auto equals = value.find('=');
      if (equals == std::string::npos || equals == 0) {
        checked.error = field_error(name, "label takes key=value");
        return checked;
      }
      query.label_key = value.substr(0, equals);
      query.label_value = value.substr(equals + 1);
    } else if (name == "since" || name == "until") {
      auto instant = parse_instant_ms(value);
      if (!instant) {
        checked.error = field_error(name, instant.error().message());
        return checked;
      }
      (name == "since" ? query.since_ms : query.until_ms) = *instant;
    } else if (name == "page_size") {
      auto size = parse_int(value, "page_size");
      if (!size || *size < 1 || static_cast<std::size_t>(*size) > kMaxPageSize) {
        checked.error = field_error(name, fmt::format("page_size takes 1-{}", kMaxPageSize));
        return checked;
      }
      query.page_size = static_cast<std::size_t>(*size);
    } else if (name == "page_token") {
      auto key = decode_page_token(value);
      if (!key) {
        checked.error = field_error(name, key.error().message());
        return checked;
      }
      query.after = std::move(*key);
    } else if (name != "tenant") {
      checked.error = field_error(name.substr(0, 40),
                                  "unknown parameter (state, queue, schedule, label, since, until, page_size, page_token)");
      return checked;
    }
  }
  checked.value = std::move(query);
  return checked;
}

}  // namespace kcron::api
