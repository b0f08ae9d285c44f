#include "api_client.h"

#include <fmt/format.h>
#include <google/protobuf/util/json_util.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstdint>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <utility>

#include "kcron/codec.h"
#include "text.h"

namespace kcron::cli {
namespace {

constexpr std::string_view kConsistencyHeader = "Kcron-Consistency";

std::string trimmed(std::string_view text) {
  const auto first = text.find_first_not_of(" \t\r\n");
  if (first == std::string_view::npos) return {};
  const auto last = text.find_last_not_of(" \t\r\n");
  return std::string(text.substr(first, last - first + 1));
}

bool equal_ignoring_case(std::string_view left, std::string_view right) {
  return left.size() == right.size() && std::equal(left.begin(), left.end(), right.begin(), [](char a, char b) {
           return std::tolower(static_cast<unsigned char>(a)) == std::tolower(static_cast<unsigned char>(b));
         });
}

// A JobView from the API's JSON; fields this release does not know are skipped (a newer API).
Result<v1::JobView> decode_view(std::string_view json) {
  v1::JobView view;
  google::protobuf::util::JsonParseOptions options;
  options.ignore_unknown_fields = true;
  const auto status = google::protobuf::util::JsonStringToMessage(std::string(json), &view, options);
  if (!status.ok()) return make_error("kcron-api answered a job this kcron cannot read: {}", std::string(status.message()));
  return view;
}

// A message from the API's JSON; fields this release does not know are skipped (a newer API).
template <typename Message>
Result<Message> decode_json(std::string_view json, std::string_view what) {
  Message message;
  google::protobuf::util::JsonParseOptions options;
  options.ignore_unknown_fields = true;
  const auto status = google::protobuf::util::JsonStringToMessage(std::string(json), &message, options);
  if (!status.ok()) return make_error("kcron-api answered {} this kcron cannot read: {}", what, std::string(status.message()));
  return message;
}

Result<v1::TenantSettings> decode_settings(std::string_view json) {
  return decode_json<v1::TenantSettings>(json, "tenant settings");
}

// The items of a list answer ({"<member>": [...], "next_page_token": "..."}), each as JSON text.
Result<std::pair<std::vector<std::string>, std::string>> list_items(const HttpResponse& response, const char* member) {
  const auto body = nlohmann::ordered_json::parse(response.body, nullptr, false);
  if (body.is_discarded() || !body.is_object() || !body.contains(member) || !body[member].is_array()) {
    return make_error("kcron-api answered a list this kcron cannot read: {}", one_line(trimmed(response.body), 200));
  }
  std::vector<std::string> items;
  for (const auto& item : body[member])
    items.push_back(item.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace));
  const auto next = body.find("next_page_token");
  return std::pair(std::move(items), next != body.end() && next->is_string() ? next->get<std::string>() : std::string());
}

std::string string_field(const nlohmann::ordered_json& object, const char* name) {
  const auto found = object.find(name);
  return found != object.end() && found->is_string() ? found->get<std::string>() : std::string();
}

}  // namespace

std::string HttpResponse::header(std::string_view name) const {
  for (const auto& [key, value] : headers) {
    if (equal_ignoring_case(key, name)) return value;
  }
  return {};
}

Result<std::string> resolve_token(std::string_view argument) {
  std::string token;
  if (argument.starts_with("@")) {
    const std::string path(argument.substr(1));
    std::ifstream file(path, std::ios::binary);
    if (!file) return make_error("--token @{}: cannot read the file", path);
    token = trimmed(std::string(std::istreambuf_iterator<char>(file), std::istreambuf_iterator<char>()));
    if (token.empty()) return make_error("--token @{}: the file is empty", path);
  } else {
    token = trimmed(argument);
  }
  if (token.empty()) return make_error("--api needs a token: --token T, --token @FILE or KCRON_API_TOKEN");
  if (std::any_of(token.begin(), token.end(), [](char c) { return std::isgraph(static_cast<unsigned char>(c)) == 0; })) {
    return make_error("the token holds a space or a control character; a JWT has none");
  }
  return token;
}

std::string printable_url(std::string_view url) {
  const auto scheme = url.find("://");
  if (scheme == std::string_view::npos) return std::string(url);
  const auto authority_end = url.find_first_of("/?#", scheme + 3);
  const auto authority = url.substr(scheme + 3, authority_end == std::string_view::npos ? url.npos : authority_end - scheme - 3);
  const auto at = authority.rfind('@');
  if (at == std::string_view::npos) return std::string(url);
  return fmt::format("{}://{}", url.substr(0, scheme), url.substr(scheme + 3 + at + 1));
}

Result<ApiTarget> make_api_target(std::string_view url, std::string_view token_argument, std::string_view tenant) {
  std::string base = trimmed(url);
  while (base.ends_with("/")) base.pop_back();
  const auto scheme = base.find("://");
  const auto scheme_name = scheme == std::string::npos ? std::string() : base.substr(0, scheme);
  if (!equal_ignoring_case(scheme_name, "http") && !equal_ignoring_case(scheme_name, "https")) {
    return make_error("--api takes an http:// or https:// URL, e.g. https://kcron.example.com (got '{}')",
                      one_line(printable_url(base), 80));
  }
  if (base.size() == scheme + 3 || base.find_first_of("?#") != std::string::npos) {
    return make_error("--api takes the API's base URL, e.g. https://kcron.example.com (got '{}')",
                      one_line(printable_url(base), 80));
  }
  auto token = resolve_token(token_argument);
  if (!token) return token.error();
  return ApiTarget{std::move(base), std::move(*token), std::string(tenant)};
}

std::string percent_encode(std::string_view text) {
  std::string out;
  for (const char c : text) {
    const auto byte = static_cast<unsigned char>(c);
    if (std::isalnum(byte) != 0 || c == '-' || c == '_' || c == '.' || c == '~') {
      out.push_back(c);
    } else {
      out += fmt::format("%{:02X}", byte);
    }
  }
  return out;
}

Error answer_error(const HttpResponse& response) {
  const auto body = nlohmann::ordered_json::parse(response.body, nullptr, false);
  if (!body.is_discarded() && body.is_object() && (body.contains("detail") || body.contains("title"))) {
    std::string detail = string_field(body, "detail");
    if (detail.empty()) detail = string_field(body, "title");
    std::string where = fmt::format("HTTP {}", response.status);
    if (const auto field = string_field(body, "field"); !field.empty()) where += ", field " + field;
    auto request_id = string_field(body, "request_id");
    if (request_id.empty()) request_id = response.header("X-Request-Id");
    if (!request_id.empty()) where += ", request " + request_id;
    return make_error("{} ({})", one_line(detail, 500), where);
  }
  const auto snippet = one_line(trimmed(response.body), 200);
  return make_error("kcron-api answered HTTP {}{}", response.status, snippet.empty() ? "" : ": " + snippet);
}

ApiClient::ApiClient(ApiTarget target, HttpTransport& transport) : target_(std::move(target)), transport_(transport) {}

Result<HttpResponse> ApiClient::call(std::string_view method, const std::string& path,
                                     std::vector<std::pair<std::string, std::string>> query, std::string body) {
  auto response = exchange(method, path, std::move(query), std::move(body), {});
  if (response && response->status >= 400) return answer_error(*response);
  return response;
}

Result<HttpResponse> ApiClient::exchange(std::string_view method, const std::string& path,
                                         std::vector<std::pair<std::string, std::string>> query, std::string body,
                                         std::vector<std::pair<std::string, std::string>> headers) {
  if (!target_.tenant.empty()) query.emplace_back("tenant", target_.tenant);
  HttpRequest request{std::string(method), target_.base_url + path, {}, std::move(body)};
  for (std::size_t index = 0; index < query.size(); ++index) {
    request.url += fmt::format("{}{}={}", index == 0 ? '?' : '&', query[index].first, percent_encode(query[index].second));
  }
  request.headers.emplace_back("Authorization", "Bearer " + target_.token);
  request.headers.emplace_back("Accept", "application/json");
  if (method == "PATCH") {
    request.headers.emplace_back("Content-Type", "application/merge-patch+json");
  } else if (method != "GET") {
    request.headers.emplace_back("Content-Type", "application/json");
  }
  if (!consistency_.empty()) request.headers.emplace_back(std::string(kConsistencyHeader), std::exchange(consistency_, {}));
  for (auto& header : headers) request.headers.push_back(std::move(header));
  auto response = transport_.send(request);
  if (!response) return make_error("cannot reach kcron-api at {}: {}", printable_url(request.url), response.error().message());
  return response;
}

Result<WriteAnswer> ApiClient::write(std::string_view method, const std::string& path, std::string body) {
  auto response = call(method, path, {}, std::move(body));
  if (!response) return response.error();
  const auto answer = nlohmann::ordered_json::parse(response->body, nullptr, false);
  if (answer.is_discarded() || !answer.is_object()) return answer_error(*response);
  WriteAnswer written{string_field(answer, "id"), string_field(answer, "tenant"), response->header(kConsistencyHeader),
                      string_field(answer, "request_id")};
  if (written.consistency.empty()) written.consistency = string_field(answer, "consistency");
  consistency_ = written.consistency;
  return written;
}

Result<WriteAnswer> ApiClient::submit(const v1::Job& job) {
  return write("POST", "/v1/jobs", to_json(job));
}

Result<WriteAnswer> ApiClient::submit_body(std::string body) {
  return write("POST", "/v1/jobs", std::move(body));
}

Result<BatchReply> ApiClient::submit_batch(std::string body, std::string_view idempotency_key) {
  std::vector<std::pair<std::string, std::string>> headers;
  if (!idempotency_key.empty()) headers.emplace_back("Idempotency-Key", std::string(idempotency_key));
  const auto consistency = consistency_;  // a request sent again carries it again
  auto response = exchange("POST", "/v1/jobs:batch", {}, std::move(body), std::move(headers));
  if (!response) return response.error();
  BatchReply reply{response->status, {}, std::chrono::seconds(0), {}};
  const auto retry_after = trimmed(response->header("Retry-After"));
  if (reply.resend() && (reply.status == 429 || !retry_after.empty())) {
    consistency_ = consistency;
    std::int64_t seconds = 0;
    const auto* end = retry_after.data() + retry_after.size();
    if (retry_after.empty() || std::from_chars(retry_after.data(), end, seconds).ptr != end || seconds < 1) seconds = 1;
    reply.retry_after = std::chrono::seconds(seconds);
    reply.refusal = answer_error(*response).message();
    return reply;
  }
  if (response->status >= 400) return answer_error(*response);
  consistency_ = response->header(kConsistencyHeader);
  reply.body = std::move(response->body);
  return reply;
}

Result<WriteAnswer> ApiClient::update(const v1::Job& job) {
  if (job.id().empty()) return make_error("the job to update needs an id");
  return write("PUT", "/v1/jobs/" + percent_encode(job.id()), to_json(job));
}

Result<WriteAnswer> ApiClient::cancel(std::string_view job_id, std::string_view reason) {
  const std::string body = reason.empty() ? std::string() : nlohmann::json{{"reason", std::string(reason)}}.dump();
  return write("POST", "/v1/jobs/" + percent_encode(job_id) + ":cancel", body);
}

Result<JobRead> ApiClient::job(std::string_view job_id) {
  auto response = call("GET", "/v1/jobs/" + percent_encode(job_id), {}, "");
  if (!response) return response.error();
  auto view = decode_view(response->body);
  if (!view) return view.error();
  return JobRead{std::move(*view), trimmed(response->body)};
}

Result<std::vector<WorkerEntry>> ApiClient::workers() {
  auto response = call("GET", "/v1/workers", {}, "");
  if (!response) return response.error();
  auto items = list_items(*response, "workers");
  if (!items) return items.error();
  std::vector<WorkerEntry> workers;
  for (const auto& item : items->first) {
    auto heartbeat = decode_json<v1::WorkerHeartbeat>(item, "a worker");
    if (!heartbeat) return heartbeat.error();
    const auto parsed = nlohmann::json::parse(item, nullptr, false);
    const bool alive = parsed.is_object() && parsed.value("alive", false);
    workers.push_back({std::move(*heartbeat), alive});
  }
  return workers;
}

Result<DeadLetterPage> ApiClient::dead_letters(std::size_t page_size, std::string_view page_token) {
  std::vector<std::pair<std::string, std::string>> query{{"page_size", std::to_string(page_size)}};
  if (!page_token.empty()) query.emplace_back("page_token", std::string(page_token));
  auto response = call("GET", "/v1/dead-letters", std::move(query), "");
  if (!response) return response.error();
  auto items = list_items(*response, "dead_letters");
  if (!items) return items.error();
  DeadLetterPage page;
  for (const auto& item : items->first) {
    const auto entry = nlohmann::json::parse(item, nullptr, false);
    if (!entry.is_object() || !entry.contains("letter"))
      return make_error("kcron-api answered a dead letter this kcron cannot read");
    auto letter = decode_json<v1::DeadLetter>(entry["letter"].dump(), "a dead letter");
    if (!letter) return letter.error();
    page.letters.push_back(std::move(*letter));
  }
  page.next_page_token = std::move(items->second);
  return page;
}

Result<WriteAnswer> ApiClient::replay_dead_letter(std::string_view job_id) {
  return write("POST", "/v1/dead-letters/" + percent_encode(job_id) + ":replay", "");
}

Result<AuditPage> ApiClient::audit(std::string_view job_id, std::size_t page_size, std::string_view page_token) {
  std::vector<std::pair<std::string, std::string>> query{{"page_size", std::to_string(page_size)}};
  if (!job_id.empty()) query.emplace_back("job", std::string(job_id));
  if (!page_token.empty()) query.emplace_back("page_token", std::string(page_token));
  auto response = call("GET", "/v1/audit", std::move(query), "");
  if (!response) return response.error();
  auto items = list_items(*response, "records");
  if (!items) return items.error();
  AuditPage page;
  for (const auto& item : items->first) {
    auto record = decode_json<v1::AuditRecord>(item, "an audit record");
    if (!record) return record.error();
    page.records.push_back(std::move(*record));
  }
  page.next_page_token = std::move(items->second);
  return page;
}

Result<WriteAnswer> ApiClient::put_schedule(const v1::Schedule& schedule) {
  if (schedule.id().empty()) return make_error("the schedule needs an id");
  return write("PUT", "/v1/schedules/" + percent_encode(schedule.id()), to_json(schedule));
}

Result<WriteAnswer> ApiClient::delete_schedule(std::string_view id) {
  return write("DELETE", "/v1/schedules/" + percent_encode(id), "");
}

Result<v1::TenantSettings> ApiClient::tenant_settings() {
  auto response = call("GET", "/v1/tenant", {}, "");
  if (!response) return response.error();
  return decode_settings(response->body);
}

Result<v1::TenantSettings> ApiClient::patch_tenant(std::string patch) {
  auto response = call("PATCH", "/v1/tenant", {}, std::move(patch));
  if (!response) return response.error();
  if (response->status == 200) return decode_settings(response->body);  // nothing changed, nothing written
  const auto answer = nlohmann::ordered_json::parse(response->body, nullptr, false);
  if (answer.is_discarded() || !answer.is_object() || !answer.contains("settings")) return answer_error(*response);
  consistency_ = response->header(kConsistencyHeader);
  return decode_settings(answer["settings"].dump());
}

Result<JobPage> ApiClient::list(const JobFilter& filter, std::size_t page_size, std::string_view page_token) {
  std::vector<std::pair<std::string, std::string>> query;
  const std::pair<const char*, const std::string*> filters[] = {{"state", &filter.state},       {"queue", &filter.queue},
                                                                {"schedule", &filter.schedule}, {"label", &filter.label},
                                                                {"since", &filter.since},       {"until", &filter.until}};
  for (const auto& [name, value] : filters) {
    if (!value->empty()) query.emplace_back(name, *value);
  }
  query.emplace_back("page_size", std::to_string(page_size));
  if (!page_token.empty()) query.emplace_back("page_token", std::string(page_token));
  auto response = call("GET", "/v1/jobs", std::move(query), "");
  if (!response) return response.error();
  const auto body = nlohmann::ordered_json::parse(response->body, nullptr, false);
  if (body.is_discarded() || !body.is_object() || !body.contains("jobs") || !body["jobs"].is_array()) {
    return make_error("kcron-api answered a list this kcron cannot read: {}", one_line(trimmed(response->body), 200));
  }
  JobPage page;
  for (const auto& item : body["jobs"]) {
    auto json = item.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
    auto view = decode_view(json);
    if (!view) return view.error();
    page.jobs.push_back({std::move(*view), std::move(json)});
  }
  page.next_page_token = string_field(body, "next_page_token");
  return page;
}

}  // namespace kcron::cli
