#include "http/api_server.h"

#include <httplib.h>
#include <nlohmann/json.hpp>
#include <openssl/rand.h>
#include <spdlog/spdlog.h>

#include <array>
#include <charconv>
#include <functional>
#include <optional>
#include <map>
#include <stdexcept>

#include "core/problem.h"
#include "core/rate_limiter.h"
#include "core/requests.h"
#include "core/roles.h"
#include "core/routes.h"
#include "kcron/codec.h"
#include "kcron/tenant.h"
#include "openapi/document.h"

namespace kcron::api {
namespace {

constexpr std::string_view kConsistencyHeader = "Kcron-Consistency";
constexpr std::string_view kJson = "application/json";
constexpr std::size_t kMaxBatchJobs = 1000;

std::string random_hex(std::size_t bytes) {
  std::array<unsigned char, 32> buffer{};
  bytes = std::min(bytes, buffer.size());
  if (RAND_bytes(buffer.data(), static_cast<int>(bytes)) != 1) {
    // Never a predictable id: fall back on the clock and the thread only if OpenSSL's generator is out.
    return fmt::format("{:x}{:x}", std::chrono::steady_clock::now().time_since_epoch().count(),
                       std::hash<std::thread::id>{}(std::this_thread::get_id()));
  }
  std::string text;
  for (std::size_t index = 0; index < bytes; ++index) text += fmt::format("{:02x}", buffer[index]);
  return text;
}

// "<topic suffix>/<partition>/<offset>", e.g. "jobs/3/1234": where a write landed.
std::string consistency_token(const TopicNames& names, const WritePosition& position) {
  std::string_view topic = position.topic;
  if (topic.substr(0, names.prefix.size()) == names.prefix) topic.remove_prefix(names.prefix.size());
  return fmt::format("{}/{}/{}", topic, position.partition, position.offset);
}

std::optional<WritePosition> parse_consistency(const TopicNames& names, std::string_view token) {
  const auto first = token.find('/');
  const auto second = token.find('/', first == std::string_view::npos ? first : first + 1);
  if (first == std::string_view::npos || second == std::string_view::npos) return std::nullopt;
  const auto topic = token.substr(0, first);
  if (topic != "jobs") return std::nullopt;
  WritePosition position{names.prefix + std::string(topic), 0, 0};
  const auto partition = token.substr(first + 1, second - first - 1);
  const auto offset = token.substr(second + 1);
  if (std::from_chars(partition.data(), partition.data() + partition.size(), position.partition).ec != std::errc() ||
      std::from_chars(offset.data(), offset.data() + offset.size(), position.offset).ec != std::errc()) {
    return std::nullopt;
  }
  return position;
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

std::string json_string(std::string_view text) {
  return nlohmann::json(std::string(text)).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace

struct ApiServer::Impl {
  ApiSettings settings;
  const auth::JwtVerifier& verifier;
  JobWriter& writer;
  ViewStore& view;
  ViewFollower& follower;
  httplib::Server server;
  Counter& ok_requests;
  Counter& client_errors;
  Counter& server_errors;
  Counter& unauthorized;
  Counter& submitted;
  Histogram& latency;
  Counter& throttled;
  RateLimiter per_caller;
  RateLimiter per_tenant;

  Impl(ApiSettings settings_in, const auth::JwtVerifier& verifier_in, JobWriter& writer_in, ViewStore& view_in,
       ViewFollower& follower_in, Metrics& metrics)
      : settings(std::move(settings_in)),
        verifier(verifier_in),
        writer(writer_in),
        view(view_in),
        follower(follower_in),
        ok_requests(metrics.counter("kcron_api_requests_total{class=\"2xx\"}", "HTTP requests answered, by status class")),
        client_errors(metrics.counter("kcron_api_requests_total{class=\"4xx\"}", "HTTP requests answered, by status class")),
        server_errors(metrics.counter("kcron_api_requests_total{class=\"5xx\"}", "HTTP requests answered, by status class")),
        unauthorized(metrics.counter("kcron_api_unauthorized_total", "requests refused for their token (401)")),
        submitted(metrics.counter("kcron_api_jobs_submitted_total", "jobs submitted through the API and acknowledged by Kafka")),
        latency(metrics.histogram("kcron_api_request_seconds", "time to answer a request", Metrics::latency_buckets())),
        throttled(metrics.counter("kcron_api_throttled_total", "requests refused by a rate limit (429)")),
        per_caller(settings.requests_per_token, settings.request_burst),
        per_tenant(settings.jobs_per_tenant, settings.jobs_burst) {}

  // 429 with Retry-After (whole seconds, at least 1) when `limiter` refuses.
  bool within_limit(RateLimiter& limiter, const std::string& key, double cost, std::string_view what, httplib::Response& response,
                    const std::string& request_id) {
    const auto wait = limiter.take(key, std::chrono::steady_clock::now(), cost);
    if (!wait) return true;
    throttled.inc();
    const auto seconds = std::max<std::int64_t>(1, (wait->count() + 999) / 1000);
    response.set_header("Retry-After", std::to_string(seconds));
    reply_problem(response, make_problem(429, fmt::format("{}; retry in {} s", what, seconds)), request_id);
    return false;
  }

  // One request's context: who asks, in which tenant.
  struct Caller {
    Principal principal;
    std::string tenant;
  };

  static void reply_problem(httplib::Response& response, Problem problem, const std::string& request_id) {
    problem.request_id = request_id;
    response.status = problem.status;
    response.set_content(problem_json(problem), std::string(kProblemContentType));
  }

  std::optional<Caller> authenticate(const httplib::Request& request, httplib::Response& response, const std::string& request_id) {
    const auto header = request.get_header_value("Authorization");
    constexpr std::string_view kBearer = "Bearer ";
    if (header.empty() || header.size() <= kBearer.size() || std::string_view(header).substr(0, kBearer.size()) != kBearer) {
      unauthorized.inc();
      response.set_header("WWW-Authenticate", "Bearer");
      reply_problem(response, make_problem(401, "send a token: Authorization: Bearer <JWT> (kcron token issue mints one)"), request_id);
      return std::nullopt;
    }
    auto claims = verifier.verify(std::string_view(header).substr(kBearer.size()), std::chrono::system_clock::now());
    if (!claims) {
      unauthorized.inc();
      response.set_header("WWW-Authenticate", "Bearer error=\"invalid_token\"");
      reply_problem(response, make_problem(401, claims.error().message()), request_id);
      return std::nullopt;
    }
    auto principal = principal_from_claims(claims->subject, claims->tenant, claims->roles);
    if (!principal) {
      unauthorized.inc();
      response.set_header("WWW-Authenticate", "Bearer error=\"invalid_token\"");
      reply_problem(response, make_problem(401, principal.error().message()), request_id);
      return std::nullopt;
    }
    if (!within_limit(per_caller, principal->subject + "@" + principal->tenant, 1,
                      fmt::format("over {} requests per second for this caller", settings.requests_per_token), response, request_id)) {
      return std::nullopt;
    }
    auto tenant = acting_tenant(*principal, request.get_param_value("tenant"));
    if (!tenant) {
      reply_problem(response, make_problem(403, tenant.error().message(), "tenant"), request_id);
      return std::nullopt;
    }
    return Caller{std::move(*principal), std::move(*tenant)};
  }

  bool permitted(const Caller& caller, Action action, std::string_view submitted_by, httplib::Response& response,
                 const std::string& request_id) {
    if (auto allowed = authorize(caller.principal, action, submitted_by); !allowed) {
      reply_problem(response, make_problem(403, allowed.error().message()), request_id);
      return false;
    }
    return true;
  }

  // Read-your-writes: a request carrying write tokens (comma-separated) waits until the view covers
  // each of them.
  bool await_consistency(const httplib::Request& request, httplib::Response& response, const std::string& request_id) {
    const auto header = request.get_header_value(std::string(kConsistencyHeader));
    if (header.empty()) return true;
    std::vector<WritePosition> positions;
    std::string_view rest = header;
    while (!rest.empty() && positions.size() <= 64) {
      const auto comma = rest.find(',');
      auto token = rest.substr(0, comma);
      while (!token.empty() && token.front() == ' ') token.remove_prefix(1);
      auto position = parse_consistency(settings.names, token);
      if (!position) {
        reply_problem(response, make_problem(400, "Kcron-Consistency takes tokens writes returned, e.g. jobs/3/1234"), request_id);
        return false;
      }
      positions.push_back(std::move(*position));
      rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
    }
    const auto deadline = std::chrono::steady_clock::now() + settings.consistency_wait;
    for (const auto& position : positions) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      if (!follower.wait_for(position.topic, position.partition, position.offset, std::max(left, std::chrono::milliseconds(0)))) {
        response.set_header("Retry-After", "1");
        reply_problem(response,
                      make_problem(503, fmt::format("the view has not reached write {} within {} ms yet; retry",
                                                    consistency_token(settings.names, position), settings.consistency_wait.count())),
                      request_id);
        return false;
      }
    }
    return true;
  }

  OutRecord audit_record(const Caller& caller, std::string_view action, std::string_view job_id, const std::string& request_id) const {
    v1::AuditRecord request;
    request.set_tenant(std::string(tenant_field(caller.tenant)));
    request.set_principal(caller.principal.subject);
    request.set_action(std::string(action));
    request.set_job_id(std::string(job_id));
    request.set_outcome("REQUESTED");
    request.set_at_ms(std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch()).count());
    request.set_component("api");
    request.set_request_id(request_id);
    return {settings.names.audit(), -1, scoped_key(caller.tenant, job_id), encode(request), false,
            typed_headers("audit", job_id, tenant_field(caller.tenant))};
  }

  // Produces commands and, when requests are audited, a request record for each; answers 503 if
  // Kafka does not acknowledge them all. Returns where each command landed.
  std::optional<std::vector<WritePosition>> produce_all(const Caller& caller, std::string_view action,
                                                       std::vector<std::pair<std::string, OutRecord>> commands,
                                                       httplib::Response& response, const std::string& request_id) {
    std::vector<OutRecord> records;
    records.reserve(commands.size() * 2);
    for (auto& [job_id, command] : commands) records.push_back(std::move(command));
    if (settings.audit_requests) {
      for (const auto& [job_id, command] : commands) records.push_back(audit_record(caller, action, job_id, request_id));
    }
    auto written = writer.write_all(records);
    if (!written) {
      spdlog::warn("event=write_failed request_id={} error=\"{}\"", request_id, written.error().message());
      response.set_header("Retry-After", "1");
      reply_problem(response, make_problem(503, "Kafka did not acknowledge the write; retry with the same Idempotency-Key"), request_id);
      return std::nullopt;
    }
    written->resize(commands.size());
    return std::move(*written);
  }

  std::optional<WritePosition> produce(const Caller& caller, std::string_view action, std::string_view job_id, OutRecord command,
                                       httplib::Response& response, const std::string& request_id) {
    std::vector<std::pair<std::string, OutRecord>> commands;
    commands.emplace_back(std::string(job_id), std::move(command));
    auto written = produce_all(caller, action, std::move(commands), response, request_id);
    if (!written) return std::nullopt;
    return written->front();
  }

  OutRecord command_record(const v1::Command& command, std::string_view type, std::string_view tenant, std::string_view job_id,
                           const std::string& request_id) const {
    OutRecord record{settings.names.jobs(), -1, scoped_routing_key(tenant, job_id), encode(command), false,
                     typed_headers(type, job_id, tenant_field(tenant))};
    record.headers.emplace_back(header::kRequestId, request_id);
    return record;
  }

  void submit_job(const httplib::Request& request, httplib::Response& response, const std::string& request_id) {
    auto caller = authenticate(request, response, request_id);
    if (!caller || !permitted(*caller, Action::kSubmitJob, {}, response, request_id)) return;
    const auto content_type = request.get_header_value("Content-Type");
    if (!content_type.empty() && content_type.find(kJson) != 0) {
      reply_problem(response, make_problem(415, "send the job as application/json"), request_id);
      return;
    }
    const auto generated = generated_job_id(caller->principal.subject, request.get_header_value("Idempotency-Key"), random_hex(12));
    auto job = parse_job_body(request.body, caller->tenant, caller->principal.subject, generated);
    if (!job.ok()) {
      reply_problem(response, make_problem(400, job.error.message, job.error.field), request_id);
      return;
    }
    if (!within_limit(per_tenant, caller->tenant, 1, fmt::format("tenant {} is over {} submissions per second", caller->tenant, settings.jobs_per_tenant),
                      response, request_id)) {
      return;
    }
    v1::Command command;
    *command.mutable_submit() = *job.value;
    const auto& id = job.value->id();
    auto written = produce(*caller, "submit", id, command_record(command, "submit", caller->tenant, id, request_id), response, request_id);
    if (!written) return;
    submitted.inc();
    const auto token = consistency_token(settings.names, *written);
    response.status = 202;
    response.set_header("Location", "/v1/jobs/" + percent_encode(id));
    response.set_header(std::string(kConsistencyHeader), token);
    response.set_content(fmt::format(R"({{"id":{},"tenant":{},"consistency":{},"request_id":{}}})", json_string(id),
                                     json_string(caller->tenant), json_string(token), json_string(request_id)),
                         std::string(kJson));
  }

  bool json_body(const httplib::Request& request, httplib::Response& response, const std::string& request_id) {
    const auto content_type = request.get_header_value("Content-Type");
    if (!content_type.empty() && content_type.find(kJson) != 0) {
      reply_problem(response, make_problem(415, "send application/json"), request_id);
      return false;
    }
    return true;
  }

  void submit_batch(const httplib::Request& request, httplib::Response& response, const std::string& request_id) {
    auto caller = authenticate(request, response, request_id);
    if (!caller || !permitted(*caller, Action::kSubmitJob, {}, response, request_id) || !json_body(request, response, request_id)) return;
    auto body = nlohmann::json::parse(request.body, nullptr, false);
    if (body.is_discarded() || !body.is_object() || !body.contains("jobs") || !body["jobs"].is_array() || body.size() != 1) {
      reply_problem(response, make_problem(400, "send {\"jobs\": [job, ...]}", "jobs"), request_id);
      return;
    }
    const auto& items = body["jobs"];
    if (items.empty() || items.size() > kMaxBatchJobs) {
      reply_problem(response, make_problem(400, fmt::format("a batch holds 1-{} jobs", kMaxBatchJobs), "jobs"), request_id);
      return;
    }
    // One result per item, in order: accepted items are written, refused ones say why.
    std::vector<nlohmann::json> results(items.size());
    std::vector<std::pair<std::string, OutRecord>> commands;
    std::vector<std::size_t> written_items;
    const auto idempotency_key = request.get_header_value("Idempotency-Key");
    for (std::size_t index = 0; index < items.size(); ++index) {
      const auto item_key = idempotency_key.empty() ? std::string() : fmt::format("{}#{}", idempotency_key, index);
      auto job = parse_job_body(items[index].dump(), caller->tenant, caller->principal.subject,
                                generated_job_id(caller->principal.subject, item_key, random_hex(12)));
      if (!job.ok()) {
        results[index] = {{"status", 400}, {"detail", job.error.message}};
        if (!job.error.field.empty()) results[index]["field"] = job.error.field;
        continue;
      }
      v1::Command command;
      *command.mutable_submit() = *job.value;
      const auto id = job.value->id();
      commands.emplace_back(id, command_record(command, "submit", caller->tenant, id, request_id));
      written_items.push_back(index);
      results[index] = {{"status", 202}, {"id", id}};
    }
    // The header carries one token per partition, its highest offset: covering it covers the rest.
    std::map<std::pair<std::string, std::int32_t>, WritePosition> highest;
    if (!commands.empty() && !within_limit(per_tenant, caller->tenant, static_cast<double>(commands.size()),
                                           fmt::format("tenant {} is over {} submissions per second", caller->tenant, settings.jobs_per_tenant),
                                           response, request_id)) {
      return;
    }
    if (!commands.empty()) {
      auto written = produce_all(*caller, "submit", std::move(commands), response, request_id);
      if (!written) return;
      for (std::size_t slot = 0; slot < written->size(); ++slot) {
        const auto& position = (*written)[slot];
        results[written_items[slot]]["consistency"] = consistency_token(settings.names, position);
        auto& top = highest[{position.topic, position.partition}];
        if (top.topic.empty() || top.offset < position.offset) top = position;
      }
      submitted.inc(written->size());
    }
    std::string joined;
    for (const auto& [where, position] : highest) joined += (joined.empty() ? "" : ",") + consistency_token(settings.names, position);
    if (!joined.empty()) response.set_header(std::string(kConsistencyHeader), joined);
    response.status = 200;
    nlohmann::json answer{{"results", results}, {"accepted", written_items.size()}, {"refused", items.size() - written_items.size()},
                          {"request_id", request_id}};
    if (!joined.empty()) answer["consistency"] = joined;
    response.set_content(answer.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace), std::string(kJson));
  }

  void update_job(const httplib::Request& request, httplib::Response& response, const std::string& request_id) {
    auto caller = authenticate(request, response, request_id);
    if (!caller || !permitted(*caller, Action::kReadJobs, {}, response, request_id) || !json_body(request, response, request_id)) return;
    if (!await_consistency(request, response, request_id)) return;
    const std::string id = request.matches[1];
    auto found = view.job(caller->tenant, id);
    if (!found) {
      reply_problem(response, make_problem(404, fmt::format("no job {} in tenant {}", json_string(id), caller->tenant)), request_id);
      return;
    }
    if (!permitted(*caller, Action::kManageJob, found->submitted_by(), response, request_id)) return;
    if (found->state() != v1::JOB_STATE_UNSPECIFIED && found->state() != v1::PENDING) {
      reply_problem(response,
                    make_problem(409, fmt::format("job {} is {}: only a job waiting to fire can be updated (clone it instead)",
                                                  json_string(id), state_name(found->state()))),
                    request_id);
      return;
    }
    auto job = parse_job_body(request.body, caller->tenant, found->submitted_by().empty() ? caller->principal.subject : found->submitted_by(), id);
    if (!job.ok()) {
      reply_problem(response, make_problem(400, job.error.message, job.error.field), request_id);
      return;
    }
    if (job.value->id() != id) {
      reply_problem(response, make_problem(400, "the body's id differs from the path's; leave it out", "id"), request_id);
      return;
    }
    v1::Command command;
    *command.mutable_update()->mutable_job() = *job.value;
    auto written = produce(*caller, "update", id, command_record(command, "update", caller->tenant, id, request_id), response, request_id);
    if (!written) return;
    const auto token = consistency_token(settings.names, *written);
    response.status = 202;
    response.set_header(std::string(kConsistencyHeader), token);
    response.set_content(fmt::format(R"({{"id":{},"consistency":{},"request_id":{}}})", json_string(id), json_string(token),
                                     json_string(request_id)),
                         std::string(kJson));
  }

  void get_job(const httplib::Request& request, httplib::Response& response, const std::string& request_id) {
    auto caller = authenticate(request, response, request_id);
    if (!caller || !permitted(*caller, Action::kReadJobs, {}, response, request_id)) return;
    if (!await_consistency(request, response, request_id)) return;
    const std::string id = request.matches[1];
    auto found = view.job(caller->tenant, id);
    if (!found) {
      reply_problem(response, make_problem(404, fmt::format("no job {} in tenant {}", json_string(id), caller->tenant)), request_id);
      return;
    }
    response.set_content(to_json(*found), std::string(kJson));
  }

  void list_jobs(const httplib::Request& request, httplib::Response& response, const std::string& request_id) {
    auto caller = authenticate(request, response, request_id);
    if (!caller || !permitted(*caller, Action::kReadJobs, {}, response, request_id)) return;
    if (!await_consistency(request, response, request_id)) return;
    std::vector<std::pair<std::string, std::string>> parameters(request.params.begin(), request.params.end());
    auto query = parse_list_query(parameters);
    if (!query.ok()) {
      reply_problem(response, make_problem(400, query.error.message, query.error.field), request_id);
      return;
    }
    const auto page = view.list(caller->tenant, *query.value);
    std::string body = R"({"jobs":[)";
    for (std::size_t index = 0; index < page.jobs.size(); ++index) {
      if (index > 0) body += ',';
      body += to_json(page.jobs[index]);
    }
    body += ']';
    if (page.next) body += fmt::format(R"(,"next_page_token":{})", json_string(encode_page_token(*page.next)));
    body += '}';
    response.set_content(body, std::string(kJson));
  }

  void cancel_job(const httplib::Request& request, httplib::Response& response, const std::string& request_id) {
    auto caller = authenticate(request, response, request_id);
    if (!caller || !permitted(*caller, Action::kReadJobs, {}, response, request_id)) return;
    if (!await_consistency(request, response, request_id)) return;
    const std::string id = request.matches[1];
    auto found = view.job(caller->tenant, id);
    if (!found) {
      reply_problem(response, make_problem(404, fmt::format("no job {} in tenant {}", json_string(id), caller->tenant)), request_id);
      return;
    }
    if (!permitted(*caller, Action::kManageJob, found->submitted_by(), response, request_id)) return;
    std::string reason = "cancelled through the API by " + caller->principal.subject;
    if (!request.body.empty()) {
      auto body = nlohmann::json::parse(request.body, nullptr, false);
      if (body.is_discarded() || !body.is_object()) {
        reply_problem(response, make_problem(400, "the body, when given, is a JSON object: {\"reason\": \"...\"}"), request_id);
        return;
      }
      for (const auto& [name, value] : body.items()) {
        if (name != "reason" || !value.is_string()) {
          reply_problem(response, make_problem(400, "only \"reason\" (a string) may be given", name.substr(0, 40)), request_id);
          return;
        }
        reason = value.get<std::string>().substr(0, 500);
      }
    }
    v1::Command command;
    auto* cancel = command.mutable_cancel();
    cancel->set_job_id(id);
    cancel->set_tenant(std::string(tenant_field(caller->tenant)));
    cancel->set_reason(reason);
    auto written = produce(*caller, "cancel", id, command_record(command, "cancel", caller->tenant, id, request_id), response, request_id);
    if (!written) return;
    const auto token = consistency_token(settings.names, *written);
    response.status = 202;
    response.set_header(std::string(kConsistencyHeader), token);
    response.set_content(fmt::format(R"({{"id":{},"state":{},"consistency":{},"request_id":{}}})", json_string(id),
                                     json_string(state_name(found->state())), json_string(token), json_string(request_id)),
                         std::string(kJson));
  }

  void whoami(const httplib::Request& request, httplib::Response& response, const std::string& request_id) {
    auto caller = authenticate(request, response, request_id);
    if (!caller) return;
    response.set_content(fmt::format(R"({{"subject":{},"tenant":{},"role":{}}})", json_string(caller->principal.subject),
                                     json_string(caller->tenant), json_string(role_name(caller->principal.role))),
                         std::string(kJson));
  }

  // The OpenAPI document (api/openapi/openapi.json, built in). No token needed.
  void openapi(const httplib::Request& /*request*/, httplib::Response& response, const std::string& /*request_id*/) {
    response.set_content(std::string(openapi_document()), std::string(kJson));
  }

  using Handler = void (Impl::*)(const httplib::Request&, httplib::Response&, const std::string&);

  // No default: a RouteId without a handler does not compile.
  static Handler handler_of(RouteId id) {
    switch (id) {
      case RouteId::kSubmit:
        return &Impl::submit_job;
      case RouteId::kBatch:
        return &Impl::submit_batch;
      case RouteId::kUpdate:
        return &Impl::update_job;
      case RouteId::kList:
        return &Impl::list_jobs;
      case RouteId::kCancel:
        return &Impl::cancel_job;
      case RouteId::kGet:
        return &Impl::get_job;
      case RouteId::kWhoami:
        return &Impl::whoami;
      case RouteId::kOpenApi:
        return &Impl::openapi;
    }
    return nullptr;
  }

  // Wraps a route: request id, security headers, a problem for anything thrown, the access log.
  httplib::Server::Handler route(std::string name, Handler handler) {
    return [this, name = std::move(name), handler](const httplib::Request& request, httplib::Response& response) {
      const auto started = std::chrono::steady_clock::now();
      auto request_id = request.get_header_value("X-Request-Id");
      if (request_id.empty() || request_id.size() > 64 ||
          request_id.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.") != std::string::npos) {
        request_id = random_hex(8);
      }
      response.set_header("X-Request-Id", request_id);
      try {
        (this->*handler)(request, response, request_id);
      } catch (const std::exception& error) {
        spdlog::error("event=request_failed route={} request_id={} error=\"{}\"", name, request_id, error.what());
        reply_problem(response, make_problem(500, "the server failed to answer; the request id names it in the server's log"),
                      request_id);
      }
      const auto seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
      latency.observe(seconds);
      spdlog::debug("event=request route={} method={} status={} ms={:.1f} request_id={}", name, request.method, response.status,
                    seconds * 1000, request_id);
    };
  }

  void count(int status) {
    if (status >= 500) {
      server_errors.inc();
    } else if (status >= 400) {
      client_errors.inc();
    } else {
      ok_requests.inc();
    }
  }

  void install() {
    const auto threads = settings.threads;
    server.new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
    server.set_payload_max_length(kMaxBodyBytes);
    server.set_read_timeout(std::chrono::duration_cast<std::chrono::seconds>(settings.read_timeout).count());
    server.set_write_timeout(std::chrono::duration_cast<std::chrono::seconds>(settings.write_timeout).count());
    server.set_keep_alive_max_count(1000);
    server.set_default_headers({{"X-Content-Type-Options", "nosniff"},
                                {"Cache-Control", "no-store"},
                                {"X-Frame-Options", "DENY"},
                                {"Referrer-Policy", "no-referrer"},
                                {"Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'"}});
    // Exactly the routes of kRoutes (core/routes.h), which the OpenAPI document must match.
    for (const auto& spec : kRoutes) {
      const auto pattern = path_regex(spec.path);
      auto wrapped = route(std::string(spec.name), handler_of(spec.id));
      if (spec.method == "GET") {
        server.Get(pattern, std::move(wrapped));
      } else if (spec.method == "POST") {
        server.Post(pattern, std::move(wrapped));
      } else if (spec.method == "PUT") {
        server.Put(pattern, std::move(wrapped));
      } else if (spec.method == "DELETE") {
        server.Delete(pattern, std::move(wrapped));
      } else {
        throw std::logic_error(fmt::format("route {}: method {} is not served", spec.path, spec.method));
      }
    }
    server.set_error_handler([](const httplib::Request& request, httplib::Response& response) {
      if (!response.body.empty()) return;
      std::string detail = "no such route";
      if (response.status == 413) detail = fmt::format("the body exceeds {} bytes", kMaxBodyBytes);
      if (response.status == 400) detail = "the request is not valid HTTP";
      auto request_id = response.get_header_value("X-Request-Id");
      (void)request;
      reply_problem(response, make_problem(response.status, detail), request_id);
    });
    server.set_logger([this](const httplib::Request&, const httplib::Response& response) { count(response.status); });
  }
};

ApiServer::ApiServer(ApiSettings settings, const auth::JwtVerifier& verifier, JobWriter& writer, ViewStore& view,
                     ViewFollower& follower, Metrics& metrics)
    : impl_(std::make_unique<Impl>(std::move(settings), verifier, writer, view, follower, metrics)) {
  impl_->install();
}

std::vector<std::pair<std::string, std::string>> ApiServer::routes() const {
  return route_list();
}

ApiServer::~ApiServer() {
  stop();
}

Status ApiServer::start() {
  auto& settings = impl_->settings;
  if (settings.port == 0) {
    port_ = impl_->server.bind_to_any_port(settings.address);
  } else {
    port_ = impl_->server.bind_to_port(settings.address, settings.port) ? settings.port : -1;
  }
  if (port_ <= 0) return make_error("cannot listen on {}:{} (in use, or not an address of this host)", settings.address, settings.port);
  listener_ = std::thread([this] { impl_->server.listen_after_bind(); });
  spdlog::info("event=api_listening address={} port={}", settings.address, port_);
  return Status::success();
}

void ApiServer::stop() {
  if (listener_.joinable()) {
    impl_->server.stop();
    listener_.join();
  }
}

}  // namespace kcron::api
