#include "http/api_server.h"

#include <google/protobuf/util/json_util.h>
#include <google/protobuf/util/time_util.h>
#include <httplib.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <charconv>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <stdexcept>
#include <thread>

#include "console/console_assets.h"
#include "core/cron_expression.h"
#include "core/flow_view.h"
#include "core/job_view.h"
#include "core/problem.h"
#include "core/rate_limiter.h"
#include "core/requests.h"
#include "core/rfc3339.h"
#include "core/roles.h"
#include "core/routes.h"
#include "core/schedule_planner.h"
#include "core/tenant_patch.h"
#include "core/time_zone.h"
#include "core/workers.h"
#include "kafka/template_source.h"
#include "kcron/codec.h"
#include "kcron/flow_graph.h"
#include "kcron/ids.h"
#include "kcron/records.h"
#include "kcron/templates.h"
#include "kcron/tenant.h"
#include "objects/object_store.h"
#include "openapi/document.h"

namespace kcron::api {
namespace {

constexpr std::string_view kConsistencyHeader = "Kcron-Consistency";
constexpr std::string_view kJson = "application/json";
constexpr std::size_t kMaxBatchJobs = 1000;
constexpr std::size_t kFlowNodesPage = 100;  // a flow's nodes per page unless page_size says (at most kMaxPageSize)
constexpr std::size_t kMaxBackfillRuns = 1000;
constexpr std::size_t kMaxConsistencyTokens = 256;
constexpr std::size_t kEventScanBudget = 20000;  // events of any tenant one poll examines
// How far back a cursor of another instance resumes (by this view's commit times): two views of
// one deployment are never this far apart unless one of them lags (kcron_api_view_lag_records).
constexpr std::chrono::seconds kForeignCursorRewind{60};
constexpr std::chrono::seconds kRateWindow{60};  // GET /v1/stats: rates over the last minute

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
  if (topic != "jobs" && topic != "schedules" && topic != "tenants") return std::nullopt;
  WritePosition position{names.prefix + std::string(topic), 0, 0};
  const auto partition = token.substr(first + 1, second - first - 1);
  const auto offset = token.substr(second + 1);
  const auto partition_read = std::from_chars(partition.data(), partition.data() + partition.size(), position.partition);
  const auto offset_read = std::from_chars(offset.data(), offset.data() + offset.size(), position.offset);
  if (partition_read.ec != std::errc() || partition_read.ptr != partition.data() + partition.size() ||
      offset_read.ec != std::errc() || offset_read.ptr != offset.data() + offset.size() || position.partition < 0 ||
      position.offset < 0) {
    return std::nullopt;
  }
  return position;
}

// An events cursor: "<view id>.<sequence>.<ms>" as GET /v1/events answers it (the view that
// numbered the sequence, and when it answered), or a bare sequence of this view.
struct EventCursor {
  std::string view;
  std::uint64_t sequence = 0;
  std::int64_t at_ms = 0;
};

std::optional<EventCursor> parse_event_cursor(std::string_view text) {
  const auto number = [](std::string_view digits, auto& into) {
    const auto read = std::from_chars(digits.data(), digits.data() + digits.size(), into);
    return !digits.empty() && read.ec == std::errc() && read.ptr == digits.data() + digits.size();
  };
  EventCursor cursor;
  const auto first = text.find('.');
  if (first == std::string_view::npos) return number(text, cursor.sequence) ? std::optional(cursor) : std::nullopt;
  const auto second = text.find('.', first + 1);
  if (second == std::string_view::npos) return std::nullopt;
  cursor.view = std::string(text.substr(0, first));
  if (cursor.view.empty() || cursor.view.size() > 32 || cursor.view.find_first_not_of("0123456789abcdef") != std::string::npos)
    return std::nullopt;
  if (!number(text.substr(first + 1, second - first - 1), cursor.sequence) || !number(text.substr(second + 1), cursor.at_ms))
    return std::nullopt;
  return cursor;
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

std::string hex(std::string_view bytes) {
  std::string text;
  for (const char c : bytes) text += fmt::format("{:02x}", static_cast<unsigned char>(c));
  return text;
}

std::optional<std::string> unhex(std::string_view text) {
  if (text.size() % 2 != 0 || text.size() > 4 * kMaxJobIdBytes) return std::nullopt;
  std::string bytes;
  for (std::size_t index = 0; index < text.size(); index += 2) {
    unsigned value = 0;
    if (std::from_chars(text.data() + index, text.data() + index + 2, value, 16).ptr != text.data() + index + 2)
      return std::nullopt;
    bytes.push_back(static_cast<char>(value));
  }
  return bytes;
}

// At most `limit` bytes of `text`, never cutting a UTF-8 sequence (a proto3 string must stay valid).
std::string utf8_prefix(std::string text, std::size_t limit) {
  if (text.size() <= limit) return text;
  std::size_t end = limit;
  while (end > 0 && (static_cast<unsigned char>(text[end]) & 0xC0U) == 0x80U) --end;
  text.resize(end);
  return text;
}

std::string json_string(std::string_view text) {
  return nlohmann::json(std::string(text)).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

// The steady clock as a Clock, for waits that a step of the wall clock must not stretch or cut
// short: only differences of its instants mean anything.
class SteadyClock final : public Clock {
 public:
  Instant now() const override {
    return Instant(std::chrono::duration_cast<Millis>(std::chrono::steady_clock::now().time_since_epoch()));
  }
};

}  // namespace

struct ApiServer::Impl {
  ApiSettings settings;
  const auth::JwtVerifier& verifier;
  JobWriter& writer;
  ViewStore& view;
  ViewFollower& follower;
  std::unique_ptr<httplib::Server> server;  // an SSLServer when TLS is configured
  std::string tls_error;
  std::atomic<int> listen_socket{-1};  // the listening socket, seen by the socket-options hook
  Counter& ok_requests;
  Counter& client_errors;
  Counter& server_errors;
  Counter& unauthorized;
  Counter& submitted;
  Histogram& latency;
  Counter& throttled;
  Gauge& long_polls;  // events requests waiting now
  RateLimiter per_caller;
  RateLimiter per_tenant;
  std::atomic<std::size_t> waiting{0};  // long-polls waiting now
  std::size_t max_waiting = 1;
  std::atomic<std::size_t> consistency_waiting{0};  // requests waiting for the view to reach a write
  std::size_t max_consistency_waiting = 1;
  std::atomic<bool> stopping{false};
  SteadyClock steady_clock;  // a batch's shared template wait

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
        long_polls(metrics.gauge("kcron_api_long_polls_waiting", "GET /v1/events requests waiting for a change")),
        per_caller(settings.requests_per_token, settings.request_burst),
        per_tenant(settings.jobs_per_tenant, settings.jobs_burst),
        max_waiting(std::max<std::size_t>(1, settings.threads / 2)),
        max_consistency_waiting(std::max<std::size_t>(1, settings.threads / 4)) {
    if (settings.tls_cert_file.empty()) {
      server = std::make_unique<httplib::Server>();
      return;
    }
    // TLS 1.2 or later, the certificate chain and key from files; refused at start if they do not load.
    server = std::make_unique<httplib::SSLServer>([this](SSL_CTX& context) {
      SSL_CTX_set_min_proto_version(&context, TLS1_2_VERSION);
      if (SSL_CTX_use_certificate_chain_file(&context, settings.tls_cert_file.c_str()) != 1) {
        tls_error = fmt::format("cannot load the certificate chain {}", settings.tls_cert_file);
      } else if (SSL_CTX_use_PrivateKey_file(&context, settings.tls_key_file.c_str(), SSL_FILETYPE_PEM) != 1) {
        tls_error = fmt::format("cannot load the private key {}", settings.tls_key_file);
      } else if (SSL_CTX_check_private_key(&context) != 1) {
        tls_error =
            fmt::format("the private key {} does not match the certificate {}", settings.tls_key_file, settings.tls_cert_file);
      }
      return tls_error.empty();
    });
  }

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

  std::optional<Caller> authenticate(const httplib::Request& request, httplib::Response& response,
                                     const std::string& request_id) {
    const auto header = request.get_header_value("Authorization");
    constexpr std::string_view kBearer = "Bearer ";
    if (header.empty() || header.size() <= kBearer.size() || std::string_view(header).substr(0, kBearer.size()) != kBearer) {
      unauthorized.inc();
      response.set_header("WWW-Authenticate", "Bearer");
      reply_problem(response, make_problem(401, "send a token: Authorization: Bearer <JWT> (kcron token issue mints one)"),
                    request_id);
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
                      fmt::format("over {} requests per second for this caller", settings.requests_per_token), response,
                      request_id)) {
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
    while (!rest.empty()) {
      if (positions.size() == kMaxConsistencyTokens) {
        reply_problem(response,
                      make_problem(400, fmt::format("Kcron-Consistency takes at most {} tokens (one per partition)",
                                                    kMaxConsistencyTokens)),
                      request_id);
        return false;
      }
      const auto comma = rest.find(',');
      auto token = rest.substr(0, comma);
      while (!token.empty() && token.front() == ' ') token.remove_prefix(1);
      auto position = parse_consistency(settings.names, token);
      if (!position) {
        reply_problem(response,
                      make_problem(400, "Kcron-Consistency takes tokens writes returned, e.g. jobs/3/1234 or schedules/1/7"),
                      request_id);
        return false;
      }
      if (!follower.follows(position->topic, position->partition)) {
        reply_problem(response,
                      make_problem(400, fmt::format("Kcron-Consistency names partition {} of {}, which does not exist",
                                                    position->partition, std::string_view(token).substr(0, token.find('/')))),
                      request_id);
        return false;
      }
      positions.push_back(std::move(*position));
      rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
    }
    if (std::all_of(positions.begin(), positions.end(), [this](const WritePosition& position) {
          return follower.wait_for(position.topic, position.partition, position.offset, std::chrono::milliseconds(0));
        })) {
      return true;  // covered already: no wait, no slot
    }
    // Waiting requests hold request threads: at most a quarter of them wait at once.
    struct Slot {
      std::atomic<std::size_t>& count;
      ~Slot() { count.fetch_sub(1); }
    } slot{consistency_waiting};
    if (consistency_waiting.fetch_add(1) >= max_consistency_waiting) {
      response.set_header("Retry-After", "1");
      reply_problem(response, make_problem(503, "too many requests wait for the view to reach their writes; retry"), request_id);
      return false;
    }
    const auto deadline = std::chrono::steady_clock::now() + settings.consistency_wait;
    for (const auto& position : positions) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      if (!follower.wait_for(position.topic, position.partition, position.offset, std::max(left, std::chrono::milliseconds(0)))) {
        response.set_header("Retry-After", "1");
        reply_problem(
            response,
            make_problem(503, fmt::format("the view has not reached write {} within {} ms yet; retry",
                                          consistency_token(settings.names, position), settings.consistency_wait.count())),
            request_id);
        return false;
      }
    }
    return true;
  }

  OutRecord audit_record(const Caller& caller, std::string_view action, std::string_view job_id, const std::string& request_id,
                         std::string_view reason = {}) const {
    v1::AuditRecord request;
    request.set_tenant(std::string(tenant_field(caller.tenant)));
    request.set_principal(caller.principal.subject);
    request.set_action(std::string(action));
    request.set_job_id(std::string(job_id));
    request.set_outcome("REQUESTED");
    request.set_reason(std::string(reason));
    request.set_at_ms(
        std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch()).count());
    request.set_component("api");
    request.set_request_id(request_id);
    return {settings.names.audit(), -1,    scoped_key(caller.tenant, job_id),
            encode(request),        false, typed_headers("audit", job_id, tenant_field(caller.tenant))};
  }

  // Produces commands and, when requests are audited, a request record for each; answers 503 if
  // Kafka does not acknowledge them all. Returns where each command landed.
  std::optional<std::vector<WritePosition>> produce_all(const Caller& caller, std::string_view action,
                                                        std::vector<std::pair<std::string, OutRecord>> commands,
                                                        httplib::Response& response, const std::string& request_id,
                                                        std::string_view reason = {}) {
    if (settings.tenant_keys_gate != nullptr && !is_default_tenant(caller.tenant) && !settings.tenant_keys_gate->open()) {
      response.set_header("Retry-After", "30");
      reply_problem(
          response,
          make_problem(503, fmt::format("nothing was written: writes for tenant {} wait until every dispatcher and worker "
                                        "understands tenant keys (a rolling upgrade is not finished): {}",
                                        caller.tenant, settings.tenant_keys_gate->reason())),
          request_id);
      return std::nullopt;
    }
    std::vector<OutRecord> records;
    records.reserve(commands.size() * 2);
    for (auto& entry : commands) records.push_back(std::move(entry.second));
    if (settings.audit_requests) {
      for (const auto& [job_id, command] : commands) records.push_back(audit_record(caller, action, job_id, request_id, reason));
    }
    auto written = writer.write_all(records);
    if (!written) {
      spdlog::warn("event=write_failed request_id={} error=\"{}\"", request_id, written.error().message());
      response.set_header("Retry-After", "1");
      reply_problem(response, make_problem(503, "Kafka did not acknowledge the write; retry with the same Idempotency-Key"),
                    request_id);
      return std::nullopt;
    }
    written->resize(commands.size());
    return std::move(*written);
  }

  std::optional<WritePosition> produce(const Caller& caller, std::string_view action, std::string_view job_id, OutRecord command,
                                       httplib::Response& response, const std::string& request_id, std::string_view reason = {}) {
    std::vector<std::pair<std::string, OutRecord>> commands;
    commands.emplace_back(std::string(job_id), std::move(command));
    auto written = produce_all(caller, action, std::move(commands), response, request_id, reason);
    if (!written) return std::nullopt;
    return written->front();
  }

  OutRecord command_record(const v1::Command& command, std::string_view tenant, std::string_view job_id,
                           const std::string& request_id) const {
    OutRecord record = kcron::command_record(settings.names, command, tenant, job_id);
    record.headers.emplace_back(header::kRequestId, request_id);
    return record;
  }

  // A submission's body must be JSON (no Content-Type is taken as JSON): else 415.
  bool submission_body(const httplib::Request& request, httplib::Response& response, const std::string& request_id,
                       std::string_view what) {
    const auto content_type = request.get_header_value("Content-Type");
    if (!content_type.empty() && content_type.find(kJson) != 0) {
      reply_problem(response, make_problem(415, fmt::format("send the {} as application/json", what)), request_id);
      return false;
    }
    return true;
  }

  // Writes one submission (a job, or a flow: one against the tenant's submission rate) and answers
  // 202 with its id, tenant, consistency token and `extra`, and Location `location`.
  void write_submission(const Caller& caller, std::string_view action, const std::string& id, const v1::Command& command,
                        const std::string& location, nlohmann::json extra, httplib::Response& response,
                        const std::string& request_id) {
    if (!within_limit(per_tenant, caller.tenant, 1,
                      fmt::format("tenant {} is over {} submissions per second", caller.tenant, settings.jobs_per_tenant),
                      response, request_id)) {
      return;
    }
    auto written = produce(caller, action, id, command_record(command, caller.tenant, id, request_id), response, request_id);
    if (!written) return;
    submitted.inc();
    response.set_header("Location", location);
    extra["tenant"] = caller.tenant;
    accepted(response, id, *written, request_id, std::move(extra));
  }

  void submit_job(const httplib::Request& request, httplib::Response& response, const std::string& request_id) {
    auto caller = authenticate(request, response, request_id);
    if (!caller || !permitted(*caller, Action::kSubmitJob, {}, response, request_id)) return;
    if (!submission_body(request, response, request_id, "job")) return;
    const auto generated =
        generated_job_id(caller->principal.subject, request.get_header_value("Idempotency-Key"), random_hex(12));
    if (auto from_template = parse_template_submission(request.body)) {
      return submit_from_template(*caller, *from_template, generated, response, request_id);
    }
    auto job = parse_job_body(request.body, caller->tenant, caller->principal.subject, generated);
    if (!job.ok()) {
      reply_problem(response, make_problem(400, job.error.message, job.error.field), request_id);
      return;
    }
    v1::Command command;
    *command.mutable_submit() = *job.value;
    const auto& id = job.value->id();
    write_submission(*caller, "submit", id, command, "/v1/jobs/" + percent_encode(id), nlohmann::json::object(), response,
                     request_id);
  }

  // POST /v1/jobs with {"template", "params", "id"} (docs/templates.md#kcron-api): the version
  // (waited for up to template_wait) rendered here, then checked as any job body, carrying
  // `template` = "name@version".
  void submit_from_template(const Caller& caller, const Checked<TemplateSubmission>& submission, const std::string& generated,
                            httplib::Response& response, const std::string& request_id) {
    if (!submission.ok()) {
      return reply_problem(response, make_problem(400, submission.error.message, submission.error.field), request_id);
    }
    if (!templates_followed(response, request_id)) return;
    const auto& ref = submission.value->ref;
    auto found = settings.templates->find(caller.tenant, ref.name, ref.version);
    if (!found && settings.template_wait.count() > 0) {
      const WaitSlot slot(*this);
      if (!slot.held) {
        response.set_header("Retry-After", "1");
        return reply_problem(response, make_problem(503, too_many_template_waits(ref)), request_id);
      }
      found = settings.templates->find(caller.tenant, ref.name, ref.version, settings.template_wait);
    }
    if (!found) {
      return reply_problem(response, make_problem(404, missing_template(caller.tenant, ref, settings.template_wait), "template"),
                           request_id);
    }
    auto job = render_submission(caller, *submission.value, *found, generated);
    if (!job.ok()) return reply_problem(response, make_problem(400, job.error.message, job.error.field), request_id);
    v1::Command command;
    *command.mutable_submit() = *job.value;
    const auto& id = job.value->id();
    write_submission(caller, "submit", id, command, "/v1/jobs/" + percent_encode(id), {{"template", ref.text()}}, response,
                     request_id);
  }

  // A template body rendered with `found` (its version) and checked as a job body: the concrete
  // job, with the caller's tenant and subject and `template` = "name@version", or why not (a render
  // error under "params", a refused job under its field).
  Checked<v1::Job> render_submission(const Caller& caller, const TemplateSubmission& submission, const v1::Template& found,
                                     const std::string& generated) const {
    Checked<v1::Job> checked;
    auto rendered = templates::render(found, submission.params);
    if (!rendered) {
      checked.error = FieldError{"params", rendered.error().message()};
      return checked;
    }
    if (submission.id) rendered->set_id(*submission.id);
    rendered->clear_template_();
    rendered->clear_tenant();
    checked = parse_job_body(to_json(*rendered), caller.tenant, caller.principal.subject, generated);
    if (!checked.ok()) {
      checked.error.message =
          fmt::format("template '{}' renders a job that is refused: {}", submission.ref.text(), checked.error.message);
      return checked;
    }
    checked.value->set_template_(submission.ref.text());
    return checked;
  }

  // A wait for a template version holds a request thread: it shares the quarter of them that
  // consistency waits may hold. `held` false: none was free.
  struct WaitSlot {
    std::atomic<std::size_t>& count;
    bool held;
    explicit WaitSlot(Impl& impl) : count(impl.consistency_waiting), held(count.fetch_add(1) < impl.max_consistency_waiting) {}
    ~WaitSlot() { count.fetch_sub(1); }
    WaitSlot(const WaitSlot&) = delete;
    WaitSlot& operator=(const WaitSlot&) = delete;
  };

  static std::string too_many_template_waits(const templates::Ref& ref) {
    return fmt::format("too many requests wait; template '{}' is not here yet: retry", ref.text());
  }

  // ---- templates (docs/templates.md#kcron-api): kcron.templates as this instance follows it ----

  bool templates_followed(httplib::Response& response, const std::string& request_id) {
    if (settings.templates != nullptr) return true;
    reply_problem(response, make_problem(503, "this kcron-api does not follow kcron.templates"), request_id);
    return false;
  }

  // Why a version is refused after the wait, with the versions there are (`where`: a prefix naming the node).
  std::string missing_template(const std::string& tenant, const templates::Ref& ref, Millis waited,
                               const std::string& where = "") const {
    std::string there;
    for (const auto& version : settings.templates->versions(tenant, ref.name)) {
      there += (there.empty() ? "" : ", ") + std::to_string(version.version());
    }
    return fmt::format("{}template '{}' has no version {} in tenant {} (waited {} ms for it; its versions: {})", where, ref.name,
                       ref.version, tenant, waited.count(), there.empty() ? "none" : there);
  }

  static nlohmann::json template_object(const v1::Template& definition) { return nlohmann::json::parse(to_json(definition)); }

  void list_templates(const httplib::Request& request, httplib::Response& response, const std::string& request_id) {
    auto caller = authenticate(request, response, request_id);
    if (!caller || !permitted(*caller, Action::kReadSchedules, {}, response, request_id)) return;
    if (!templates_followed(response, request_id)) return;
    auto items = nlohmann::json::array();
    for (const auto& latest : settings.templates->latest_of_each(caller->tenant)) {
      auto item = template_object(latest);
      item["versions"] = settings.templates->versions(caller->tenant, latest.name()).size();
      items.push_back(std::move(item));
    }
    response.set_content(
        nlohmann::json{{"templates", std::move(items)}}.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace),
        std::string(kJson));
  }

  void get_template(const httplib::Request& request, httplib::Response& response, const std::string& request_id) {
    auto caller = authenticate(request, response, request_id);
    if (!caller || !permitted(*caller, Action::kReadSchedules, {}, response, request_id)) return;
    if (!templates_followed(response, request_id)) return;
    const std::string name = request.matches[1];
    const auto versions = settings.templates->versions(caller->tenant, name);
    if (versions.empty()) return not_found(response, "template", name, caller->tenant, request_id);
    auto items = nlohmann::json::array();
    for (const auto& version : versions) items.push_back(template_object(version));
    response.set_content(nlohmann::json{{"name", name}, {"versions", std::move(items)}}.dump(
                             -1, ' ', false, nlohmann::json::error_handler_t::replace),
                         std::string(kJson));
  }

  // The version of the path ("/v1/templates/{name}/versions/{version}"), or a 400.
  std::optional<templates::Ref> path_ref(const httplib::Request& request, httplib::Response& response,
                                         const std::string& request_id) {
    const std::string name = request.matches[1];
    const std::string version = request.matches[2];
    auto ref = templates::parse_ref(name + "@" + version, true);
    if (!ref) {
      reply_problem(response, make_problem(400, ref.error().message(), "version"), request_id);
      return std::nullopt;
    }
    return std::move(*ref);
  }

  void get_template_version(const httplib::Request& request, httplib::Response& response, const std::string& request_id) {
    auto caller = authenticate(request, response, request_id);
    if (!caller || !permitted(*caller, Action::kReadSchedules, {}, response, request_id)) return;
    if (!templates_followed(response, request_id)) return;
    auto ref = path_ref(request, response, request_id);
    if (!ref) return;
    auto found = settings.templates->find(caller->tenant, ref->name, ref->version);
    if (!found) return not_found(response, "template version", ref->text(), caller->tenant, request_id);
    response.set_content(to_json(*found), std::string(kJson));
  }

  // PUT a version: 201 written, 200 the same content was there (nothing written), 409 other
  // content was there. Serialised in this instance from the check to the write.
  void put_template_version(const httplib::Request& request, httplib::Response& response, const std::string& request_id) {
    auto caller = authenticate(request, response, request_id);
    if (!caller || !permitted(*caller, Action::kManageSchedule, {}, response, request_id) ||
        !json_body(request, response, request_id))
      return;
    if (!templates_followed(response, request_id)) return;
    auto ref = path_ref(request, response, request_id);
    if (!ref) return;
    v1::Template definition;
    google::protobuf::util::JsonParseOptions options;
    options.ignore_unknown_fields = false;
    if (auto status = google::protobuf::util::JsonStringToMessage(request.body, &definition, options); !status.ok()) {
      return reply_problem(response,
                           make_problem(400, fmt::format("the body is not a template in kcron's JSON form: {}",
                                                         std::string(status.message()).substr(0, 200))),
                           request_id);
    }
    const auto refuse = [&](std::string_view field, std::string_view message) {
      reply_problem(response, make_problem(400, std::string(message), std::string(field)), request_id);
    };
    if (!definition.name().empty() && definition.name() != ref->name)
      return refuse("name", "the body's name differs from the path's; leave it out");
    if (definition.version() != 0 && definition.version() != ref->version)
      return refuse("version", "the body's version differs from the path's; leave it out");
    if (!definition.tenant().empty() && tenant_or_default(definition.tenant()) != caller->tenant)
      return refuse("tenant", "the tenant comes from your token; leave the field out");
    if (!definition.written_by().empty() || definition.written_at_ms() != 0)
      return refuse(definition.written_by().empty() ? "written_at_ms" : "written_by", "kcron sets it; leave the field out");
    definition.set_name(ref->name);
    definition.set_version(ref->version);
    definition.set_tenant(std::string(tenant_field(caller->tenant)));
    definition.set_written_by(caller->principal.subject);
    definition.set_written_at_ms(now_ms());
    if (auto valid = templates::validate_template(definition); !valid) return refuse("", valid.error().message());
    const auto lock = settings.templates->write_lock();
    auto fresh = settings.templates->is_new_version(definition);
    if (!fresh) return reply_problem(response, make_problem(409, fresh.error().message()), request_id);
    nlohmann::json body{{"name", ref->name}, {"version", ref->version}, {"tenant", caller->tenant}, {"request_id", request_id}};
    if (!*fresh) {
      body["created"] = false;
      response.status = 200;
      return response.set_content(body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace), std::string(kJson));
    }
    const std::string key = templates::template_key(definition.tenant(), definition.name(), definition.version());
    std::vector<std::pair<std::string, std::string>> headers = {
        {std::string(header::kType), "template"},
        {std::string(header::kContentType), std::string(header::kProtobuf)},
        {std::string(header::kRequestId), request_id}};
    if (!is_default_tenant(caller->tenant)) headers.emplace_back(header::kTenant, caller->tenant);
    auto written = produce(*caller, "put_template", ref->text(),
                           OutRecord{settings.names.templates(), -1, key, encode(definition), false, std::move(headers)},
                           response, request_id);
    if (!written) return;
    settings.templates->put(definition);
    body["created"] = true;
    response.status = 201;
    response.set_header("Location", fmt::format("/v1/templates/{}/versions/{}", percent_encode(ref->name), ref->version));
    response.set_content(body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace), std::string(kJson));
  }

  // POST /v1/flows: one Flow record on kcron.jobs, keyed by the flow id (docs/flows.md).
  void submit_flow(const httplib::Request& request, httplib::Response& response, const std::string& request_id) {
    auto caller = authenticate(request, response, request_id);
    if (!caller || !permitted(*caller, Action::kSubmitJob, {}, response, request_id)) return;
    if (!submission_body(request, response, request_id, "flow")) return;
    auto flow = parse_flow_body(request.body, caller->tenant, caller->principal.subject);
    if (!flow.ok()) {
      reply_problem(response, make_problem(400, flow.error.message, flow.error.field), request_id);
      return;
    }
    nlohmann::json extra{{"nodes", flow.value->nodes_size()}};
    const auto& nodes = flow.value->nodes();
    if (std::any_of(nodes.begin(), nodes.end(), [](const v1::FlowNode& node) { return node.has_template_ref(); })) {
      auto rendered = render_template_nodes(*caller, *flow.value, response, request_id);
      if (!rendered) return;
      extra["rendered_from_templates"] = *rendered;
    }
    v1::Command command;
    *command.mutable_flow() = *flow.value;
    const auto& id = flow.value->id();
    write_submission(*caller, "flow", id, command, "/v1/flows/" + percent_encode(id), std::move(extra), response, request_id);
  }

  // A flow body's template nodes rendered with this instance's catalog (docs/templates.md#templates-in-flows):
  // a version not here yet is waited for up to template_wait (then a 404), one that does not
  // render is a 400; the field names the node. The number of nodes rendered, or nothing once the
  // response holds the refusal.
  std::optional<std::size_t> render_template_nodes(const Caller& caller, v1::Flow& flow, httplib::Response& response,
                                                   const std::string& request_id) {
    if (!templates_followed(response, request_id)) return std::nullopt;
    const auto node_field = [&](std::string_view name) {
      for (int at = 0; at < flow.nodes_size(); ++at) {
        if (flow.nodes(at).name() == name) return fmt::format("nodes[{}].template_ref", at);
      }
      return std::string("nodes");
    };
    const std::size_t limit = templates::kMaxFlowRecordBytes;  // the dispatcher's record limit
    templates::RenderFailure failure;
    auto rendered = settings.templates->render_flow(flow, caller.tenant, limit, Millis(0), &failure);
    if (rendered && rendered->is_missing() && settings.template_wait.count() > 0) {
      const WaitSlot slot(*this);
      if (!slot.held) {
        response.set_header("Retry-After", "1");
        reply_problem(response, make_problem(503, too_many_template_waits(rendered->missing)), request_id);
        return std::nullopt;
      }
      rendered = settings.templates->render_flow(flow, caller.tenant, limit, settings.template_wait, &failure);
    }
    if (!rendered) {
      // Rendered jobs over the record limit are a 413, as a body over its limit is.
      const auto field = failure.node >= 0 ? fmt::format("nodes[{}].template_ref", failure.node) : std::string("nodes");
      reply_problem(response, make_problem(failure.too_large ? 413 : 400, rendered.error().message(), field), request_id);
      return std::nullopt;
    }
    if (rendered->is_missing()) {
      reply_problem(response,
                    make_problem(404,
                                 missing_template(caller.tenant, rendered->missing, settings.template_wait,
                                                  fmt::format("node '{}': ", rendered->missing_node)),
                                 node_field(rendered->missing_node)),
                    request_id);
      return std::nullopt;
    }
    // Refused here as the dispatcher would refuse it: a flow over the record limit would never be
    // written (a 413, as for a body over the limit), a refused job would be REJECTED.
    templates::RenderedFlowRules rules;
    rules.max_record_bytes = limit;
    if (auto refused = templates::check_rendered_flow(flow, rules)) {
      const auto status = refused->too_large ? 413 : 400;
      const auto field =
          refused->node >= 0 ? fmt::format("nodes[{}].job.{}", refused->node, refused->field) : std::string("nodes");
      reply_problem(response, make_problem(status, refused->message, field), request_id);
      return std::nullopt;
    }
    return rendered->rendered;
  }

  // ---- flows (docs/flows.md): read from the view, cancel and retry as the CLI writes them ----

  // A flow's summary: its header and its state from the per-state node counts (never its nodes).
  nlohmann::json flow_json(const v1::FlowView& flow) const {
    const auto counts = view.flow_counts(flow.tenant(), flow.id());
    const auto summary = summarize_flow(flow, counts.by_state, now_ms());
    nlohmann::json by_state = nlohmann::json::object();
    for (const auto& [state, count] : counts.by_state) {
      if (count > 0) by_state[std::string(flow_node_state_name(state))] = count;
    }
    nlohmann::json labels = nlohmann::json::object();
    for (const auto& [key, value] : flow.labels()) labels[key] = value;
    nlohmann::json answer{{"id", flow.id()},
                          {"tenant", flow.tenant()},
                          {"state", summary.state},
                          {"fail_fast", flow.fail_fast()},
                          {"labels", labels},
                          {"submitted_by", flow.submitted_by()},
                          {"submitted_ms", flow.submitted_ms()},
                          {"cancel_requested", flow.cancel_requested()},
                          {"counts",
                           {{"nodes", summary.nodes},
                            {"ended", summary.ended},
                            {"succeeded", summary.succeeded},
                            {"failed", summary.failed},
                            {"cancelled", summary.cancelled},
                            {"waiting", summary.waiting},
                            {"forgotten", counts.forgotten},
                            {"by_state", by_state}}}};
    if (!flow.rejected_reason().empty()) answer["reason"] = flow.rejected_reason();
    if (flow.run_at_ms() > 0) answer["run_at_ms"] = flow.run_at_ms();
    return answer;
  }

  // GET /v1/flows/{id}: the summary and one page of nodes (by name), each with its job's state.
  void get_flow(const httplib::Request& request, httplib::Response& response, const std::string& request_id) {
    auto caller = authenticate(request, response, request_id);
    if (!caller || !permitted(*caller, Action::kReadJobs, {}, response, request_id)) return;
    if (!await_consistency(request, response, request_id)) return;
    std::size_t size = 0;
    std::string after;
    if (!page_parameters(request, size, after, response, request_id, kFlowNodesPage)) return;
    const std::string id = request.matches[1];
    auto flow = view.flow(caller->tenant, id);
    if (!flow) return not_found(response, "flow", id, caller->tenant, request_id);
    auto answer = flow_json(*flow);
    const auto page = view.flow_nodes(caller->tenant, id, after, size);
    nlohmann::json nodes = nlohmann::json::array();
    for (const auto& node : page.items) {
      const auto job_id = flow::node_job_id(id, node.name());
      nlohmann::json row{
          {"name", node.name()},
          {"job_id", job_id},
          {"depends_on", nlohmann::json(std::vector<std::string>(node.depends_on().begin(), node.depends_on().end()))},
          {"trigger", v1::FlowNode::Trigger_Name(node.trigger())}};
      if (auto job = view.job(caller->tenant, job_id)) {
        row["state"] = flow_node_state_name(job->state());
        row["attempt"] = job->attempt();
        row["reason"] = job->reason();
        row["submitted_ms"] = job->submitted_ms();
        row["due_ms"] = job->due_ms();
        row["updated_ms"] = job->updated_ms();
      } else {
        row["forgotten"] = true;  // swept after it ended (view.finished_retention_hours)
      }
      nodes.push_back(std::move(row));
    }
    answer["nodes"] = std::move(nodes);
    if (!page.next.empty()) answer["next_page_token"] = hex(page.next);
    response.set_content(answer.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace), std::string(kJson));
  }

  // GET /v1/flows: a tenant's flows, newest submitted first, each as its summary.
  void list_flows(const httplib::Request& request, httplib::Response& response, const std::string& request_id) {
    auto caller = authenticate(request, response, request_id);
    if (!caller || !permitted(*caller, Action::kReadJobs, {}, response, request_id)) return;
    if (!await_consistency(request, response, request_id)) return;
    std::size_t size = 0;
    std::string after;
    if (!page_parameters(request, size, after, response, request_id)) return;
    const auto page = view.flows(caller->tenant, after, size);
    nlohmann::json flows = nlohmann::json::array();
    for (const auto& flow : page.items) flows.push_back(flow_json(flow));
    nlohmann::json answer{{"flows", std::move(flows)}};
    if (!page.next.empty()) answer["next_page_token"] = hex(page.next);
    response.set_content(answer.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace), std::string(kJson));
  }

  void cancel_flow(const httplib::Request& request, httplib::Response& response, const std::string& request_id) {
    flow_action(request, response, request_id, true);
  }
  void retry_flow(const httplib::Request& request, httplib::Response& response, const std::string& request_id) {
    flow_action(request, response, request_id, false);
  }

  // POST /v1/flows/{id}:cancel (a Cancel with flow set) or :retry (a Replay with flow set), keyed
  // by the flow id as `kcron flow cancel|retry` writes them. The dispatcher decides: a retry of a
  // flow still running, or with no DEAD node, is refused there (a dead letter under the flow id).
  void flow_action(const httplib::Request& request, httplib::Response& response, const std::string& request_id, bool cancel) {
    auto caller = authenticate(request, response, request_id);
    if (!caller || !permitted(*caller, Action::kReadJobs, {}, response, request_id)) return;
    if (!await_consistency(request, response, request_id)) return;
    const std::string id = request.matches[1];
    // A flow this view never read (its record left kcron.jobs before this instance's view began,
    // or was swept from it): an operator may still send the command, and the dispatcher decides
    // (a refusal is a dead letter under the flow id, in the caller's tenant).
    auto flow = view.flow(caller->tenant, id);
    if (!flow && (caller->principal.role < Role::kOperator || !flow::validate_flow_id(id))) {
      return not_found(response, "flow", id, caller->tenant, request_id);
    }
    if (!permitted(*caller, Action::kManageJob, flow ? flow->submitted_by() : std::string(), response, request_id)) return;
    v1::Command command;
    if (cancel) {
      std::string reason = "cancelled through the API by " + caller->principal.subject;
      if (!reason_body(request, reason, response, request_id)) return;
      auto* order = command.mutable_cancel();
      order->set_job_id(id);
      order->set_tenant(std::string(tenant_field(caller->tenant)));
      order->set_reason(reason);
      order->set_flow(true);
    } else {
      if (!request.body.empty() && request.body != "{}") {
        return reply_problem(response, make_problem(400, "a flow retry takes no body"), request_id);
      }
      auto* replay = command.mutable_replay();
      replay->set_job_id(id);
      replay->set_tenant(std::string(tenant_field(caller->tenant)));
      replay->set_flow(true);
    }
    const auto action = cancel ? "cancel_flow" : "retry_flow";
    auto written = produce(*caller, action, id, command_record(command, caller->tenant, id, request_id), response, request_id);
    if (!written) return;
    response.set_header("Location", "/v1/flows/" + percent_encode(id));
    accepted(response, id, *written, request_id, {{"tenant", caller->tenant}});
  }

  // A cancel's optional body: {"reason": "..."} (cut at 500 bytes).
  bool reason_body(const httplib::Request& request, std::string& reason, httplib::Response& response,
                   const std::string& request_id) {
    if (request.body.empty()) return true;
    auto body = nlohmann::json::parse(request.body, nullptr, false);
    if (body.is_discarded() || !body.is_object()) {
      reply_problem(response, make_problem(400, "the body, when given, is a JSON object: {\"reason\": \"...\"}"), request_id);
      return false;
    }
    for (const auto& [name, value] : body.items()) {
      if (name != "reason" || !value.is_string()) {
        reply_problem(response, make_problem(400, "only \"reason\" (a string) may be given", name.substr(0, 40)), request_id);
        return false;
      }
      reason = utf8_prefix(value.get<std::string>(), 500);
    }
    return true;
  }

  bool json_body(const httplib::Request& request, httplib::Response& response, const std::string& request_id) {
    const auto content_type = request.get_header_value("Content-Type");
    if (!content_type.empty() && content_type.find(kJson) != 0) {
      reply_problem(response, make_problem(415, "send application/json"), request_id);
      return false;
    }
    return true;
  }

  // A version a batch's template items name, as this request found it: `found`, or the status
  // (404 not there after the wait, 503 no wait slot or no catalog) and detail its items are refused with.
  struct BatchVersion {
    std::optional<v1::Template> found;
    int status = 404;
    std::string detail;
  };

  // Each distinct name@version the valid template items of a batch name, looked up once; the ones
  // this instance has not seen waited for together, at most template_wait for the whole request
  // (find_batch_versions), in one wait slot.
  std::map<std::string, BatchVersion> batch_templates(
      const Caller& caller, const std::vector<std::optional<Checked<TemplateSubmission>>>& submissions) {
    std::map<std::string, BatchVersion> versions;
    if (settings.templates == nullptr) {
      for (const auto& submission : submissions) {
        if (submission && submission->ok()) {
          versions[submission->value->ref.text()] = {std::nullopt, 503, "this kcron-api does not follow kcron.templates"};
        }
      }
      return versions;
    }
    std::optional<WaitSlot> slot;  // held until the waits are over
    auto looked_up = find_batch_versions(
        submissions,
        [&](const templates::Ref& ref, Millis wait) {
          return settings.templates->find(caller.tenant, ref.name, ref.version, wait);
        },
        settings.template_wait,
        [&] {
          slot.emplace(*this);
          return slot->held;
        },
        steady_clock);
    for (auto& [text, looked] : looked_up.versions) {
      auto& version = versions[text];
      if (looked.found) {
        version.found = std::move(looked.found);
      } else if (looked_up.wait_refused) {
        version.status = 503;
        version.detail = too_many_template_waits(looked.ref);
      } else {
        version.detail = missing_template(caller.tenant, looked.ref, looked.waited);
      }
    }
    return versions;
  }

  void submit_batch(const httplib::Request& request, httplib::Response& response, const std::string& request_id) {
    auto caller = authenticate(request, response, request_id);
    if (!caller || !permitted(*caller, Action::kSubmitJob, {}, response, request_id) || !json_body(request, response, request_id))
      return;
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
    std::vector<std::string> texts(items.size());
    std::vector<std::optional<Checked<TemplateSubmission>>> submissions(items.size());
    for (std::size_t index = 0; index < items.size(); ++index) {
      // A template item is read as it came; a job item goes through the job body's parser as text.
      submissions[index] = parse_template_submission(items[index]);
      if (!submissions[index]) texts[index] = items[index].dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    }
    const auto versions = batch_templates(*caller, submissions);
    const auto idempotency_key = request.get_header_value("Idempotency-Key");
    for (std::size_t index = 0; index < items.size(); ++index) {
      const auto item_key = idempotency_key.empty() ? std::string() : fmt::format("{}#{}", idempotency_key, index);
      const auto generated = generated_job_id(caller->principal.subject, item_key, random_hex(12));
      const auto refuse = [&](int status, const std::string& detail, const std::string& field) {
        results[index] = {{"status", status}, {"detail", detail}};
        if (!field.empty()) results[index]["field"] = field;
      };
      Checked<v1::Job> job;
      std::string from_template;
      if (const auto& submission = submissions[index]; !submission) {
        job = parse_job_body(texts[index], caller->tenant, caller->principal.subject, generated);
      } else if (!submission->ok()) {
        job.error = submission->error;
      } else {
        const auto& ref = submission->value->ref;
        const auto& version = versions.at(ref.text());
        if (!version.found) {
          // A 404 names the field, as POST /v1/jobs's does; a 503 (no catalog, no wait slot) none.
          refuse(version.status, version.detail, version.status == 404 ? "template" : "");
          continue;
        }
        job = render_submission(*caller, *submission->value, *version.found, generated);
        from_template = ref.text();
      }
      if (!job.ok()) {
        refuse(400, job.error.message, job.error.field);
        continue;
      }
      v1::Command command;
      *command.mutable_submit() = *job.value;
      const auto id = job.value->id();
      commands.emplace_back(id, command_record(command, caller->tenant, id, request_id));
      written_items.push_back(index);
      results[index] = {{"status", 202}, {"id", id}};
      if (!from_template.empty()) results[index]["template"] = from_template;
    }
    // The header carries one token per partition, its highest offset: covering it covers the rest.
    std::map<std::pair<std::string, std::int32_t>, WritePosition> highest;
    if (!commands.empty() &&
        !within_limit(per_tenant, caller->tenant, static_cast<double>(commands.size()),
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
    for (const auto& [where, position] : highest)
      joined += (joined.empty() ? "" : ",") + consistency_token(settings.names, position);
    if (!joined.empty()) response.set_header(std::string(kConsistencyHeader), joined);
    response.status = 200;
    nlohmann::json answer{{"results", results},
                          {"tenant", caller->tenant},
                          {"accepted", written_items.size()},
                          {"refused", items.size() - written_items.size()},
                          {"request_id", request_id}};
    if (!joined.empty()) answer["consistency"] = joined;
    response.set_content(answer.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace), std::string(kJson));
  }

  void update_job(const httplib::Request& request, httplib::Response& response, const std::string& request_id) {
    auto caller = authenticate(request, response, request_id);
    if (!caller || !permitted(*caller, Action::kReadJobs, {}, response, request_id) || !json_body(request, response, request_id))
      return;
    if (!await_consistency(request, response, request_id)) return;
    const std::string id = request.matches[1];
    auto found = view.job(caller->tenant, id);
    if (!found) {
      reply_problem(response, make_problem(404, fmt::format("no job {} in tenant {}", json_string(id), caller->tenant)),
                    request_id);
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
    auto job = parse_job_body(request.body, caller->tenant,
                              found->submitted_by().empty() ? caller->principal.subject : found->submitted_by(), id);
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
    auto written = produce(*caller, "update", id, command_record(command, caller->tenant, id, request_id), response, request_id);
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
      reply_problem(response, make_problem(404, fmt::format("no job {} in tenant {}", json_string(id), caller->tenant)),
                    request_id);
      return;
    }
    response.set_content(to_json(*found), std::string(kJson));
  }

  void list_jobs(const httplib::Request& request, httplib::Response& response, const std::string& request_id) {
    auto caller = authenticate(request, response, request_id);
    if (!caller || !permitted(*caller, Action::kReadJobs, {}, response, request_id)) return;
    if (!await_consistency(request, response, request_id)) return;
    // From the raw query: httplib cuts a value at its second '=' (label=team=data).
    const auto question = request.target.find('?');
    const auto parameters =
        split_query(question == std::string::npos ? std::string_view() : std::string_view(request.target).substr(question + 1));
    if (!parameters) {
      reply_problem(response, make_problem(400, "the query string is malformed (a bad %-escape, or over 32 parameters)"),
                    request_id);
      return;
    }
    auto query = parse_list_query(*parameters);
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
      reply_problem(response, make_problem(404, fmt::format("no job {} in tenant {}", json_string(id), caller->tenant)),
                    request_id);
      return;
    }
    if (!permitted(*caller, Action::kManageJob, found->submitted_by(), response, request_id)) return;
    std::string reason = "cancelled through the API by " + caller->principal.subject;
    if (!reason_body(request, reason, response, request_id)) return;
    v1::Command command;
    auto* cancel = command.mutable_cancel();
    cancel->set_job_id(id);
    cancel->set_tenant(std::string(tenant_field(caller->tenant)));
    cancel->set_reason(reason);
    auto written = produce(*caller, "cancel", id, command_record(command, caller->tenant, id, request_id), response, request_id);
    if (!written) return;
    const auto token = consistency_token(settings.names, *written);
    response.status = 202;
    response.set_header(std::string(kConsistencyHeader), token);
    response.set_content(fmt::format(R"({{"id":{},"state":{},"consistency":{},"request_id":{}}})", json_string(id),
                                     json_string(state_name(found->state())), json_string(token), json_string(request_id)),
                         std::string(kJson));
  }

  // ---- helpers shared by the routes below ----

  static std::int64_t now_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
  }

  void not_found(httplib::Response& response, std::string_view what, const std::string& id, const std::string& tenant,
                 const std::string& request_id) {
    reply_problem(response, make_problem(404, fmt::format("no {} {} in tenant {}", what, json_string(id), tenant)), request_id);
  }

  void accepted(httplib::Response& response, const std::string& id, const WritePosition& position, const std::string& request_id,
                nlohmann::json extra = nlohmann::json::object()) {
    const auto token = consistency_token(settings.names, position);
    extra["id"] = id;
    extra["consistency"] = token;
    extra["request_id"] = request_id;
    response.status = 202;
    response.set_header(std::string(kConsistencyHeader), token);
    response.set_content(extra.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace), std::string(kJson));
  }

  // page_size (1-500, default 50) and page_token (hex) of the simpler lists.
  bool page_parameters(const httplib::Request& request, std::size_t& size, std::string& after, httplib::Response& response,
                       const std::string& request_id, std::size_t default_size = 50) {
    size = default_size;
    for (const auto& [name, value] : request.params) {
      if (name == "page_size") {
        std::size_t parsed = 0;
        const auto read = std::from_chars(value.data(), value.data() + value.size(), parsed);
        if (read.ec != std::errc() || read.ptr != value.data() + value.size() || parsed < 1 || parsed > kMaxPageSize) {
          reply_problem(response, make_problem(400, fmt::format("page_size takes 1-{}", kMaxPageSize), "page_size"), request_id);
          return false;
        }
        size = parsed;
      } else if (name == "page_token") {
        auto decoded = unhex(value);
        if (!decoded) {
          reply_problem(response, make_problem(400, "page_token is not one this server gave out", "page_token"), request_id);
          return false;
        }
        after = std::move(*decoded);
      } else if (name != "tenant") {
        reply_problem(response, make_problem(400, "unknown parameter (page_size, page_token)", name.substr(0, 40)), request_id);
        return false;
      }
    }
    return true;
  }

  // ---- schedules ----

  Result<v1::Schedule> schedule_body(const std::string& body, const Caller& caller, const std::string& id) {
    v1::Schedule schedule;
    google::protobuf::util::JsonParseOptions options;
    options.ignore_unknown_fields = false;
    if (auto status = google::protobuf::util::JsonStringToMessage(body, &schedule, options); !status.ok()) {
      return make_error("the body is not a schedule in kcron's JSON form: {}", std::string(status.message()).substr(0, 200));
    }
    if (!schedule.id().empty() && schedule.id() != id)
      return make_error("id: the body's id differs from the path's; leave it out");
    if (!schedule.tenant().empty() && tenant_or_default(schedule.tenant()) != caller.tenant) {
      return make_error("tenant: the tenant comes from your token; leave the field out");
    }
    if (auto valid = validate_job_id(id); !valid) return valid.error().within("id");
    if (id.find_first_of("@/") != std::string::npos)
      return make_error("id: a schedule id must not contain '@' or '/' (they separate a run's instant)");
    if (id.size() > kMaxJobIdBytes - 25) return make_error("id: a schedule id is at most {} bytes", kMaxJobIdBytes - 25);
    if (!v1::MisfirePolicy_IsValid(schedule.misfire())) return make_error("misfire: not a known policy");
    if (!v1::OverlapPolicy_IsValid(schedule.overlap())) return make_error("overlap: not a known policy");
    auto expression = cron::CronExpression::parse(schedule.expression());
    if (!expression) return expression.error().within("expression");
    if (!schedule.time_zone().empty()) {
      if (auto zone = cron::TimeZone::locate(schedule.time_zone()); !zone) return zone.error().within("time_zone");
    }
    if (schedule.has_flow_template()) {
      if (schedule.has_job_template()) return make_error("flow_template: set job_template or flow_template, not both");
      auto flow = check_flow_template(schedule.flow_template(), id, caller.tenant, caller.principal.subject);
      if (!flow.ok()) return make_error("{}: {}", flow.error.field, flow.error.message);
      // Nodes naming template versions are rendered by the cron-producer at each run
      // (docs/templates.md#templates-in-flows): checked here against the versions in the catalog.
      if (auto refs = templates::flow_template_refs(*flow.value); !refs) return refs.error().within("flow_template");
      if (settings.templates != nullptr) {
        v1::Flow present = *flow.value;  // only the nodes whose version is here: the others are waited for
        for (int at = present.nodes_size() - 1; at >= 0; --at) {
          const auto& node = present.nodes(at);
          if (!node.has_template_ref()) continue;
          auto ref = templates::parse_ref(node.template_ref().ref(), true);
          if (!ref || !settings.templates->find(caller.tenant, ref->name, ref->version)) {
            present.mutable_nodes()->DeleteSubrange(at, 1);
          }
        }
        // Checked as the cron-producer checks each run (templates::schedule_run_rules).
        if (auto rendered = settings.templates->render_flow(present, caller.tenant); !rendered) {
          return rendered.error().within("flow_template");
        }
        if (auto refused = templates::check_rendered_flow(present, templates::schedule_run_rules())) {
          return make_error("flow_template: {}", refused->message);
        }
      }
      *schedule.mutable_flow_template() = std::move(*flow.value);
    } else if (schedule.has_template_ref()) {
      // Rendered by the cron-producer at each run (docs/templates.md#schedules-on-templates):
      // checked here against the catalog when the version is in it.
      if (schedule.has_job_template()) return make_error("template_ref: set job_template or template_ref, not both");
      auto ref = templates::parse_ref(schedule.template_ref().ref(), true);
      if (!ref) return ref.error().within("template_ref");
      if (settings.templates != nullptr) {
        if (auto found = settings.templates->find(caller.tenant, ref->name, ref->version)) {
          const templates::Params params(schedule.template_ref().params().begin(), schedule.template_ref().params().end());
          if (auto rendered = templates::render(*found, params); !rendered) return rendered.error().within("template_ref");
        }
      }
    } else {
      auto& job = *schedule.mutable_job_template();
      if (job.task_case() == v1::Job::TASK_NOT_SET)
        return make_error("job_template: a job needs a task: one of noop, sleep, exec, http, kafka, handler");
      if (!job.tenant().empty() || !job.submitted_by().empty() || job.attempt() != 0 || job.has_schedule_run() ||
          !job.template_().empty()) {
        return make_error("job_template: kcron sets tenant, submitted_by, attempt, schedule_run and template; leave them out");
      }
      job.set_tenant(std::string(tenant_field(caller.tenant)));
      job.set_submitted_by(caller.principal.subject);
    }
    schedule.set_id(id);
    schedule.set_tenant(std::string(tenant_field(caller.tenant)));
    return schedule;
  }

  static void bad_field(httplib::Response& response, const Error& error, const std::string& request_id) {
    // "field: message" from the checks above: the field goes in its own member.
    const auto& text = error.message();
    const auto colon = text.find(": ");
    const bool named = colon != std::string::npos && colon < 20 && text.find(' ') > colon;
    reply_problem(response, make_problem(400, named ? text.substr(colon + 2) : text, named ? text.substr(0, colon) : ""),
                  request_id);
  }

  OutRecord schedule_record(const Caller& caller, const std::string& id, const v1::Schedule* schedule,
                            const std::string& request_id) const {
    OutRecord record = kcron::schedule_record(settings.names, caller.tenant, id, schedule);
    record.headers.emplace_back(header::kRequestId, request_id);
    return record;
  }

  void list_schedules(const httplib::Request& request, httplib::Response& response, const std::string& request_id) {
    auto caller = authenticate(request, response, request_id);
    if (!caller || !permitted(*caller, Action::kReadSchedules, {}, response, request_id)) return;
    if (!await_consistency(request, response, request_id)) return;
    std::size_t size = 0;
    std::string after;
    if (!page_parameters(request, size, after, response, request_id)) return;
    const auto page = view.schedules(caller->tenant, after, size);
    std::string body = R"({"schedules":[)";
    for (std::size_t index = 0; index < page.items.size(); ++index) body += (index > 0 ? "," : "") + to_json(page.items[index]);
    body += ']';
    if (!page.next.empty()) body += fmt::format(R"(,"next_page_token":"{}")", hex(page.next));
    nlohmann::json runs = nlohmann::json::object();
    for (const auto& schedule : page.items) runs[schedule.id()] = schedule_runs(caller->tenant, schedule);
    body += R"(,"runs":)";
    body += runs.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    body += '}';
    response.set_content(body, std::string(kJson));
  }

  // A schedule's next run (by its expression in its zone, within its start and end; none while
  // paused) and its last run that ended, with the outcome (among its 20 newest runs).
  nlohmann::json schedule_runs(const std::string& tenant, const v1::Schedule& schedule) const {
    nlohmann::json runs = nlohmann::json::object();
    auto expression = cron::CronExpression::parse(schedule.expression());
    auto zone = schedule.time_zone().empty() ? Result<cron::TimeZone>(cron::TimeZone::utc())
                                             : cron::TimeZone::locate(schedule.time_zone());
    if (expression && zone && !schedule.paused()) {
      auto after = std::chrono::time_point_cast<Millis>(std::chrono::system_clock::now());
      if (schedule.has_start()) {
        after = std::max(after, Instant(Millis(google::protobuf::util::TimeUtil::TimestampToMilliseconds(schedule.start()) - 1)));
      }
      auto fire = expression->next_after(after, *zone);
      if (fire && (!schedule.has_end() || fire->time_since_epoch().count() <=
                                              google::protobuf::util::TimeUtil::TimestampToMilliseconds(schedule.end()))) {
        runs["next"] = cron::format_rfc3339(*fire);
      }
    }
    ListQuery recent;
    recent.schedule_id = schedule.id();
    recent.page_size = 20;
    for (const auto& job : view.list(tenant, recent).jobs) {
      if (!is_terminal(job.state())) continue;
      runs["last"] = {{"id", job.id()},
                      {"state", std::string(state_name(job.state()))},
                      {"due", cron::format_rfc3339(Instant(Millis(job.due_ms())))}};
      break;
    }
    return runs;
  }

  void get_schedule(const httplib::Request& request, httplib::Response& response, const std::string& request_id) {
    auto caller = authenticate(request, response, request_id);
    if (!caller || !permitted(*caller, Action::kReadSchedules, {}, response, request_id)) return;
    if (!await_consistency(request, response, request_id)) return;
    const std::string id = request.matches[1];
    auto found = view.schedule(caller->tenant, id);
    if (!found) return not_found(response, "schedule", id, caller->tenant, request_id);
    response.set_content(to_json(*found), std::string(kJson));
  }

  void put_schedule(const httplib::Request& request, httplib::Response& response, const std::string& request_id) {
    auto caller = authenticate(request, response, request_id);
    if (!caller || !permitted(*caller, Action::kManageSchedule, {}, response, request_id) ||
        !json_body(request, response, request_id))
      return;
    const std::string id = request.matches[1];
    auto schedule = schedule_body(request.body, *caller, id);
    if (!schedule) return bad_field(response, schedule.error(), request_id);
    const bool existed = view.schedule(caller->tenant, id).has_value();
    auto written =
        produce(*caller, "put_schedule", id, schedule_record(*caller, id, &*schedule, request_id), response, request_id);
    if (!written) return;
    nlohmann::json extra{{"created", !existed}};
    for (const auto& node : schedule->flow_template().nodes()) {
      // As for template_ref below: a version a node names that is not here yet is accepted.
      if (!node.has_template_ref()) continue;
      auto ref = templates::parse_ref(node.template_ref().ref(), true);
      if (ref && (settings.templates == nullptr || !settings.templates->find(caller->tenant, ref->name, ref->version))) {
        extra["warning"] = fmt::format(
            "flow_template: node '{}': template '{}' is not on kcron.templates yet: the cron-producer waits for it "
            "(template_wait_ms), then REJECTS the schedule",
            node.name(), ref->text());
        break;
      }
    }
    if (schedule->has_template_ref()) {
      // A version not seen yet is accepted (a schedule and its template may be written in either
      // order); the cron-producer waits template_wait_ms for it, then REJECTS the schedule.
      auto ref = templates::parse_ref(schedule->template_ref().ref(), true);
      if (ref && (settings.templates == nullptr || !settings.templates->find(caller->tenant, ref->name, ref->version))) {
        extra["warning"] = fmt::format(
            "template '{}' is not on kcron.templates yet: the cron-producer waits for it (template_wait_ms), then REJECTS the "
            "schedule",
            ref->text());
      }
    }
    accepted(response, id, *written, request_id, std::move(extra));
  }

  void delete_schedule(const httplib::Request& request, httplib::Response& response, const std::string& request_id) {
    auto caller = authenticate(request, response, request_id);
    if (!caller || !permitted(*caller, Action::kManageSchedule, {}, response, request_id)) return;
    if (!await_consistency(request, response, request_id)) return;
    const std::string id = request.matches[1];
    if (!view.schedule(caller->tenant, id)) return not_found(response, "schedule", id, caller->tenant, request_id);
    auto written =
        produce(*caller, "delete_schedule", id, schedule_record(*caller, id, nullptr, request_id), response, request_id);
    if (!written) return;
    accepted(response, id, *written, request_id);
  }

  void pause_schedule(const httplib::Request& request, httplib::Response& response, const std::string& request_id) {
    schedule_action(request, response, request_id, "pause");
  }
  void resume_schedule(const httplib::Request& request, httplib::Response& response, const std::string& request_id) {
    schedule_action(request, response, request_id, "resume");
  }
  void trigger_schedule(const httplib::Request& request, httplib::Response& response, const std::string& request_id) {
    schedule_action(request, response, request_id, "trigger");
  }

  // Waits (up to consistency_wait) until the view holds everything on `topic` now; else a 503 to
  // retry. A read-modify-write must start from the latest record, not from a view a moment behind:
  // it would write back what a change just before it replaced.
  bool await_topic_end(const std::string& topic, std::string_view what, httplib::Response& response,
                       const std::string& request_id) {
    if (follower.wait_for_end(topic, settings.consistency_wait)) return true;
    response.set_header("Retry-After", "1");
    reply_problem(response,
                  make_problem(503, fmt::format("the view has not read kcron's latest {} within {} ms; retry", what,
                                                settings.consistency_wait.count())),
                  request_id);
    return false;
  }

  // `action`: pause, resume or trigger.
  void schedule_action(const httplib::Request& request, httplib::Response& response, const std::string& request_id,
                       const std::string& action) {
    auto caller = authenticate(request, response, request_id);
    if (!caller || !permitted(*caller, Action::kManageSchedule, {}, response, request_id)) return;
    if (!await_consistency(request, response, request_id)) return;
    const std::string id = request.matches[1];
    // Pause and resume write the whole schedule back with one field changed.
    if ((action == "pause" || action == "resume") &&
        !await_topic_end(settings.names.schedules(), "schedules", response, request_id))
      return;
    auto found = view.schedule(caller->tenant, id);
    if (!found) return not_found(response, "schedule", id, caller->tenant, request_id);
    if (action == "pause" || action == "resume") {
      found->set_paused(action == "pause");
      auto written =
          produce(*caller, action + "_schedule", id, schedule_record(*caller, id, &*found, request_id), response, request_id);
      if (!written) return;
      return accepted(response, id, *written, request_id, {{"paused", found->paused()}});
    }
    // trigger: one run now, outside the schedule's instants (its overlap policy does not apply).
    const auto now = now_ms();
    const auto run_id = fmt::format("{}@manual-{}", id, now);
    v1::ScheduleRun run;
    run.set_schedule_id(id);
    *run.mutable_nominal_instant() = google::protobuf::util::TimeUtil::MillisecondsToTimestamp(now);
    run.set_overlap(v1::ALLOW);
    const auto command = schedule_run_command(*found, run_id, std::move(run), *caller);
    if (!command) return reply_problem(response, make_problem(409, command.error().message()), request_id);
    auto written = produce(*caller, "trigger_schedule", run_id, command_record(*command, caller->tenant, run_id, request_id),
                           response, request_id);
    if (!written) return;
    accepted(response, run_id, *written, request_id, {{"schedule", id}});
  }

  // A schedule's flow_template with its template nodes rendered and checked as the cron-producer
  // renders and checks each run (templates::schedule_run_rules); unchanged without template nodes.
  Status render_schedule_flow(v1::Flow& flow, const Caller& caller) const {
    const auto& nodes = flow.nodes();
    if (std::none_of(nodes.begin(), nodes.end(), [](const v1::FlowNode& node) { return node.has_template_ref(); })) {
      return Status::success();
    }
    if (settings.templates == nullptr) return make_error("this kcron-api does not follow kcron.templates");
    auto rendered = settings.templates->render_flow(flow, caller.tenant);
    if (!rendered) return rendered.error().within("flow_template");
    if (rendered->is_missing()) {
      return make_error("flow_template: node '{}': template '{}' of the schedule is not on kcron.templates",
                        rendered->missing_node, rendered->missing.text());
    }
    if (auto refused = templates::check_rendered_flow(flow, templates::schedule_run_rules())) {
      return make_error("flow_template: {}", refused->message);
    }
    return Status::success();
  }

  // One run of a schedule as a command: its job_template's job, its flow_template's flow, or the
  // job its template_ref renders (an error when the version is not in the catalog or does not render).
  Result<v1::Command> schedule_run_command(const v1::Schedule& schedule, const std::string& run_id, v1::ScheduleRun run,
                                           const Caller& caller) const {
    v1::Command command;
    if (schedule.has_template_ref()) {
      auto ref = templates::parse_ref(schedule.template_ref().ref(), true);
      if (!ref) return ref.error().within("template_ref");
      auto found =
          settings.templates != nullptr ? settings.templates->find(caller.tenant, ref->name, ref->version) : std::nullopt;
      if (!found) return make_error("template '{}' of the schedule is not on kcron.templates", ref->text());
      const templates::Params params(schedule.template_ref().params().begin(), schedule.template_ref().params().end());
      auto rendered = templates::render(*found, params);
      if (!rendered) return rendered.error();
      *command.mutable_submit() = std::move(*rendered);
      auto& job = *command.mutable_submit();
      job.set_id(run_id);
      job.set_tenant(std::string(tenant_field(caller.tenant)));
      job.set_submitted_by(caller.principal.subject);
      *job.mutable_schedule_run() = std::move(run);
      return command;
    }
    if (schedule.has_flow_template()) {
      auto& flow = *command.mutable_flow();
      flow = schedule.flow_template();
      // Its template nodes rendered as the cron-producer renders them (docs/templates.md#templates-in-flows).
      if (auto status = render_schedule_flow(flow, caller); !status) return status.error();
      flow.set_id(run_id);
      flow.set_tenant(std::string(tenant_field(caller.tenant)));
      flow.set_submitted_by(caller.principal.subject);
      *flow.mutable_schedule_run() = std::move(run);
      return command;
    }
    auto& job = *command.mutable_submit();
    job = schedule.job_template();
    job.set_id(run_id);
    job.set_tenant(std::string(tenant_field(caller.tenant)));
    job.set_submitted_by(caller.principal.subject);
    *job.mutable_schedule_run() = std::move(run);
    return command;
  }

  // Runs for a past range [from, to), as the schedule's misfire policy would have them: FIRE_ALL
  // every instant, FIRE_ONCE (the default) the latest one, SKIP none. Each run has the id the
  // cron-producer gives that instant, so a run that already fired is not fired again.
  void backfill(const httplib::Request& request, httplib::Response& response, const std::string& request_id) {
    auto caller = authenticate(request, response, request_id);
    if (!caller || !permitted(*caller, Action::kManageSchedule, {}, response, request_id) ||
        !json_body(request, response, request_id))
      return;
    if (!await_consistency(request, response, request_id)) return;
    const std::string id = request.matches[1];
    auto found = view.schedule(caller->tenant, id);
    if (!found) return not_found(response, "schedule", id, caller->tenant, request_id);
    auto body = nlohmann::json::parse(request.body, nullptr, false);
    if (body.is_discarded() || !body.is_object() || !body.contains("from") || !body.contains("to") || !body["from"].is_string() ||
        !body["to"].is_string() || body.size() != 2) {
      return reply_problem(response, make_problem(400, "send {\"from\": RFC 3339, \"to\": RFC 3339}: the runs of [from, to)"),
                           request_id);
    }
    auto from = cron::parse_rfc3339(body["from"].get<std::string>());
    auto to = cron::parse_rfc3339(body["to"].get<std::string>());
    if (!from) return reply_problem(response, make_problem(400, from.error().message(), "from"), request_id);
    if (!to) return reply_problem(response, make_problem(400, to.error().message(), "to"), request_id);
    const auto now = std::chrono::time_point_cast<Millis>(std::chrono::system_clock::now());
    if (!(*from < *to) || *to > now) {
      return reply_problem(response, make_problem(400, "a backfill covers a past range: from < to <= now", "to"), request_id);
    }
    if (found->misfire() == v1::SKIP) {
      return reply_problem(
          response,
          make_problem(409,
                       "the schedule's misfire policy is SKIP: missed runs are skipped; set FIRE_ALL or FIRE_ONCE to backfill"),
          request_id);
    }
    auto expression = cron::CronExpression::parse(found->expression());
    auto zone =
        found->time_zone().empty() ? Result<cron::TimeZone>(cron::TimeZone::utc()) : cron::TimeZone::locate(found->time_zone());
    if (!expression || !zone) return reply_problem(response, make_problem(409, "the stored schedule does not parse"), request_id);
    std::vector<Instant> instants;
    auto after = *from - Millis(1);
    while (instants.size() <= kMaxBackfillRuns) {
      auto fire = expression->next_after(after, *zone);
      if (!fire || !(*fire < *to)) break;
      instants.push_back(*fire);
      after = *fire;
    }
    if (instants.size() > kMaxBackfillRuns) {
      return reply_problem(response,
                           make_problem(400, fmt::format("the range holds more than {} runs; split it", kMaxBackfillRuns), "to"),
                           request_id);
    }
    if (found->misfire() != v1::FIRE_ALL && !instants.empty()) instants.erase(instants.begin(), instants.end() - 1);
    // A flow_template's template nodes rendered once, the result copied into each run.
    v1::Schedule prepared = *found;
    if (prepared.has_flow_template() && !instants.empty()) {
      if (auto status = render_schedule_flow(*prepared.mutable_flow_template(), *caller); !status) {
        return reply_problem(response, make_problem(409, status.error().message()), request_id);
      }
    }
    std::vector<std::pair<std::string, OutRecord>> commands;
    nlohmann::json runs = nlohmann::json::array();
    for (const auto instant : instants) {
      const auto run_id = cron::SchedulePlanner::trigger_id(id, instant);
      v1::ScheduleRun run;
      run.set_schedule_id(id);
      *run.mutable_nominal_instant() = google::protobuf::util::TimeUtil::MillisecondsToTimestamp(to_epoch_ms(instant));
      run.set_misfire(found->misfire());
      run.set_overlap(v1::ALLOW);  // a backfill runs what was missed, whatever runs now
      const auto command = schedule_run_command(prepared, run_id, std::move(run), *caller);
      if (!command) return reply_problem(response, make_problem(409, command.error().message()), request_id);
      commands.emplace_back(run_id, command_record(*command, caller->tenant, run_id, request_id));
      runs.push_back(run_id);
    }
    if (commands.empty()) {
      response.set_content(nlohmann::json{{"id", id}, {"runs", runs}, {"request_id", request_id}}.dump(), std::string(kJson));
      return;
    }
    auto written = produce_all(*caller, "backfill_schedule", std::move(commands), response, request_id);
    if (!written) return;
    std::map<std::pair<std::string, std::int32_t>, WritePosition> highest;
    for (const auto& position : *written) {
      auto& top = highest[{position.topic, position.partition}];
      if (top.topic.empty() || top.offset < position.offset) top = position;
    }
    std::string joined;
    for (const auto& [where, position] : highest)
      joined += (joined.empty() ? "" : ",") + consistency_token(settings.names, position);
    response.status = 202;
    response.set_header(std::string(kConsistencyHeader), joined);
    response.set_content(nlohmann::json{{"id", id}, {"runs", runs}, {"consistency", joined}, {"request_id", request_id}}.dump(),
                         std::string(kJson));
  }

  void next_instants(const httplib::Request& request, httplib::Response& response, const std::string& request_id) {
    auto caller = authenticate(request, response, request_id);
    if (!caller || !permitted(*caller, Action::kReadSchedules, {}, response, request_id)) return;
    if (!await_consistency(request, response, request_id)) return;
    const std::string id = request.matches[1];
    std::size_t count = 5;
    if (request.has_param("count")) {
      const auto text = request.get_param_value("count");
      const auto read = std::from_chars(text.data(), text.data() + text.size(), count);
      if (read.ec != std::errc() || read.ptr != text.data() + text.size() || count < 1 || count > 100) {
        return reply_problem(response, make_problem(400, "count takes 1-100", "count"), request_id);
      }
    }
    auto found = view.schedule(caller->tenant, id);
    if (!found) return not_found(response, "schedule", id, caller->tenant, request_id);
    auto expression = cron::CronExpression::parse(found->expression());
    auto zone =
        found->time_zone().empty() ? Result<cron::TimeZone>(cron::TimeZone::utc()) : cron::TimeZone::locate(found->time_zone());
    if (!expression || !zone) {
      return reply_problem(
          response,
          make_problem(409, "the stored schedule does not parse: " + (!expression ? expression.error() : zone.error()).message()),
          request_id);
    }
    auto answer = instants(*expression, *zone, count);
    answer["id"] = id;
    answer["expression"] = found->expression();
    answer["paused"] = found->paused();
    response.set_content(answer.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace), std::string(kJson));
  }

  // The expression in words and its next `count` instants after now in `zone`.
  static nlohmann::json instants(const cron::CronExpression& expression, const cron::TimeZone& zone, std::size_t count) {
    nlohmann::json answer{{"time_zone", zone.name().empty() ? "UTC" : zone.name()},
                          {"explain", expression.explain()},
                          {"next", nlohmann::json::array()}};
    auto after = std::chrono::time_point_cast<Millis>(std::chrono::system_clock::now());
    for (std::size_t index = 0; index < count; ++index) {
      auto fire = expression.next_after(after, zone);
      if (!fire) break;
      answer["next"].push_back(cron::format_rfc3339(*fire));
      after = *fire;
    }
    return answer;
  }

  // A cron expression before it is saved: checked as the cron-producer checks a schedule's, then
  // explained with its next instants (the console's schedule form, while the user types).
  void preview_cron(const httplib::Request& request, httplib::Response& response, const std::string& request_id) {
    auto caller = authenticate(request, response, request_id);
    if (!caller || !permitted(*caller, Action::kReadSchedules, {}, response, request_id)) return;
    std::string text;
    std::string zone_name;
    std::size_t count = 5;
    for (const auto& [name, value] : request.params) {
      if (name == "expression") {
        text = value;
      } else if (name == "time_zone") {
        zone_name = value;
      } else if (name == "count") {
        const auto read = std::from_chars(value.data(), value.data() + value.size(), count);
        if (read.ec != std::errc() || read.ptr != value.data() + value.size() || count < 1 || count > 100) {
          return reply_problem(response, make_problem(400, "count takes 1-100", "count"), request_id);
        }
      } else if (name != "tenant") {
        return reply_problem(
            response,
            make_problem(400, fmt::format("unknown parameter {}: expression, time_zone and count are known", name), name),
            request_id);
      }
    }
    if (text.empty() || text.size() > 256) {
      return reply_problem(response, make_problem(400, "expression takes a cron expression of 1-256 characters", "expression"),
                           request_id);
    }
    auto expression = cron::CronExpression::parse(text);
    if (!expression) return reply_problem(response, make_problem(400, expression.error().message(), "expression"), request_id);
    auto zone = zone_name.empty() ? Result<cron::TimeZone>(cron::TimeZone::utc()) : cron::TimeZone::locate(zone_name);
    if (!zone) return reply_problem(response, make_problem(400, zone.error().message(), "time_zone"), request_id);
    auto answer = instants(*expression, *zone, count);
    if (answer["next"].empty()) {
      // As the cron-producer refuses a schedule that never fires (e.g. 0 0 30 2 *).
      auto never = expression->next_after(std::chrono::time_point_cast<Millis>(std::chrono::system_clock::now()), *zone);
      return reply_problem(
          response, make_problem(400, never ? std::string("the expression never fires") : never.error().message(), "expression"),
          request_id);
    }
    answer["expression"] = text;
    response.set_content(answer.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace), std::string(kJson));
  }

  // ---- dead letters, replay and clone ----

  static std::string dead_letter_json(const DeadLetterEntry& entry) {
    return fmt::format(R"({{"id":{},"source":{},"letter":{}}})", json_string(entry.id), json_string(entry.source),
                       to_json(entry.letter));
  }

  void list_dead_letters(const httplib::Request& request, httplib::Response& response, const std::string& request_id) {
    auto caller = authenticate(request, response, request_id);
    if (!caller || !permitted(*caller, Action::kReadDeadLetters, {}, response, request_id)) return;
    if (!await_consistency(request, response, request_id)) return;
    std::size_t size = 0;
    std::string after;
    if (!page_parameters(request, size, after, response, request_id)) return;
    const auto page = view.dead_letters(caller->tenant, after, size);
    std::string body = R"({"dead_letters":[)";
    for (std::size_t index = 0; index < page.items.size(); ++index)
      body += (index > 0 ? "," : "") + dead_letter_json(page.items[index]);
    body += ']';
    if (!page.next.empty()) body += fmt::format(R"(,"next_page_token":"{}")", hex(page.next));
    body += '}';
    response.set_content(body, std::string(kJson));
  }

  void get_dead_letter(const httplib::Request& request, httplib::Response& response, const std::string& request_id) {
    auto caller = authenticate(request, response, request_id);
    if (!caller || !permitted(*caller, Action::kReadDeadLetters, {}, response, request_id)) return;
    if (!await_consistency(request, response, request_id)) return;
    const std::string id = request.matches[1];
    auto found = view.dead_letter(caller->tenant, id);
    if (!found) return not_found(response, "dead letter for job", id, caller->tenant, request_id);
    response.set_content(dead_letter_json(*found), std::string(kJson));
  }

  // Re-arms a DEAD job as a new attempt, from its latest dead letter.
  void replay(const Caller& caller, const std::string& id, httplib::Response& response, const std::string& request_id) {
    auto letter = view.dead_letter(caller.tenant, id);
    if (!letter || !letter->letter.has_job() || letter->letter.state() != v1::DEAD) {
      return reply_problem(response,
                           make_problem(409, fmt::format("job {} has no dead letter of a DEAD job to replay (a REJECTED input "
                                                         "cannot be replayed: submit it again, fixed)",
                                                         json_string(id))),
                           request_id);
    }
    v1::Command command;
    command.mutable_replay()->set_job_id(id);
    *command.mutable_replay()->mutable_job() = letter->letter.job();
    command.mutable_replay()->mutable_job()->set_tenant(std::string(tenant_field(caller.tenant)));
    auto written = produce(caller, "replay", id, command_record(command, caller.tenant, id, request_id), response, request_id);
    if (!written) return;
    accepted(response, id, *written, request_id);
  }

  void replay_dead_letter(const httplib::Request& request, httplib::Response& response, const std::string& request_id) {
    auto caller = authenticate(request, response, request_id);
    if (!caller || !permitted(*caller, Action::kReplayDeadLetter, {}, response, request_id)) return;
    if (!await_consistency(request, response, request_id)) return;
    replay(*caller, request.matches[1], response, request_id);
  }

  void replay_job(const httplib::Request& request, httplib::Response& response, const std::string& request_id) {
    job_action(request, response, request_id, "replay");
  }
  void clone_job(const httplib::Request& request, httplib::Response& response, const std::string& request_id) {
    job_action(request, response, request_id, "clone");
  }

  // `action`: replay or clone.
  void job_action(const httplib::Request& request, httplib::Response& response, const std::string& request_id,
                  const std::string& action) {
    auto caller = authenticate(request, response, request_id);
    if (!caller || !permitted(*caller, Action::kReadJobs, {}, response, request_id)) return;
    if (!await_consistency(request, response, request_id)) return;
    const std::string id = request.matches[1];
    auto found = view.job(caller->tenant, id);
    if (!found) return not_found(response, "job", id, caller->tenant, request_id);
    if (action == "replay") {
      if (!permitted(*caller, Action::kManageJob, found->submitted_by(), response, request_id)) return;
      return replay(*caller, id, response, request_id);
    }
    // clone: a new job from this one's definition, with the body's fields changed.
    if (!permitted(*caller, Action::kSubmitJob, {}, response, request_id) || !json_body(request, response, request_id)) return;
    if (!found->has_job())
      return reply_problem(response, make_problem(409, "the job's definition is not in the view (its submit record is gone)"),
                           request_id);
    v1::Job changes;
    google::protobuf::util::JsonParseOptions options;
    options.ignore_unknown_fields = false;
    if (!request.body.empty()) {
      if (auto status = google::protobuf::util::JsonStringToMessage(request.body, &changes, options); !status.ok()) {
        return reply_problem(response,
                             make_problem(400, "the body holds the fields to change, as a job in kcron's JSON form: " +
                                                   std::string(status.message()).substr(0, 200)),
                             request_id);
      }
    }
    v1::Job clone = found->job();
    clone.clear_id();
    clone.clear_tenant();
    clone.clear_submitted_by();
    clone.clear_attempt();
    clone.clear_history();
    clone.clear_schedule_run();
    clone.clear_template_();  // a clone is a job of its own, not a rendering of the template
    if (changes.when_case() != v1::Job::WHEN_NOT_SET) clone.clear_when();
    if (changes.task_case() != v1::Job::TASK_NOT_SET) clone.clear_task();
    clone.MergeFrom(changes);
    if (changes.when_case() == v1::Job::WHEN_NOT_SET)
      clone.clear_when();  // the original's instant has passed: run now unless told
    const auto generated =
        generated_job_id(caller->principal.subject, request.get_header_value("Idempotency-Key"), random_hex(12));
    auto job = parse_job_body(to_json(clone), caller->tenant, caller->principal.subject, generated);
    if (!job.ok()) return reply_problem(response, make_problem(400, job.error.message, job.error.field), request_id);
    v1::Command command;
    *command.mutable_submit() = *job.value;
    const auto new_id = job.value->id();
    auto written =
        produce(*caller, "clone", new_id, command_record(command, caller->tenant, new_id, request_id), response, request_id);
    if (!written) return;
    response.set_header("Location", "/v1/jobs/" + percent_encode(new_id));
    accepted(response, new_id, *written, request_id, {{"cloned_from", id}});
  }

  void list_audit(const httplib::Request& request, httplib::Response& response, const std::string& request_id) {
    auto caller = authenticate(request, response, request_id);
    if (!caller || !permitted(*caller, Action::kReadAudit, {}, response, request_id)) return;
    if (!await_consistency(request, response, request_id)) return;
    std::string job;
    httplib::Request paging = request;
    if (request.has_param("job")) {
      job = request.get_param_value("job");
      paging.params.erase("job");
    }
    std::size_t size = 0;
    std::string after;
    if (!page_parameters(paging, size, after, response, request_id)) return;
    const auto page = view.audit(caller->tenant, after, size, job);
    std::string body = R"({"records":[)";
    for (std::size_t index = 0; index < page.items.size(); ++index) body += (index > 0 ? "," : "") + to_json(page.items[index]);
    body += ']';
    if (!page.next.empty()) body += fmt::format(R"(,"next_page_token":"{}")", hex(page.next));
    body += '}';
    response.set_content(body, std::string(kJson));
  }

  // ---- workers, stats, events ----

  void list_workers(const httplib::Request& request, httplib::Response& response, const std::string& request_id) {
    auto caller = authenticate(request, response, request_id);
    if (!caller || !permitted(*caller, Action::kReadWorkers, {}, response, request_id)) return;
    const auto now = now_ms();
    nlohmann::json answer{{"workers", nlohmann::json::array()}};
    const bool whole = caller->principal.role == Role::kSystem;  // the other tenants' jobs are not the caller's to see
    for (const auto& heartbeat : view.workers()) {
      auto entry =
          nlohmann::json::parse(to_json(whole ? heartbeat : worker_for_tenant(heartbeat, caller->tenant)), nullptr, false);
      if (entry.is_discarded()) continue;
      const auto interval = heartbeat.interval_ms() > 0 ? heartbeat.interval_ms() : 5000;
      entry["alive"] = !heartbeat.stopped() && heartbeat.at_ms() + 2 * interval >= now;
      answer["workers"].push_back(std::move(entry));
    }
    response.set_content(answer.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace), std::string(kJson));
  }

  void stats(const httplib::Request& request, httplib::Response& response, const std::string& request_id) {
    auto caller = authenticate(request, response, request_id);
    if (!caller || !permitted(*caller, Action::kReadStats, {}, response, request_id)) return;
    if (!await_consistency(request, response, request_id)) return;
    const auto counts = view.stats(caller->tenant);
    nlohmann::json by_state = nlohmann::json::object();
    for (const auto& [state, count] : counts.by_state) {
      by_state[state == v1::JOB_STATE_UNSPECIFIED ? std::string("SUBMITTED") : std::string(state_name(state))] = count;
    }
    nlohmann::json by_queue = nlohmann::json::object();
    for (const auto& [queue, count] : counts.by_queue) by_queue[queue] = count;
    // Rates: the tenant's state changes per second over the last minute, from the event log.
    const auto recent = view.recent_transitions(caller->tenant, now_ms(), kRateWindow.count() * 1000, kEventScanBudget);
    nlohmann::json per_second = nlohmann::json::object();
    for (const auto& [state, count] : recent.by_state) {
      per_second[state == v1::JOB_STATE_UNSPECIFIED ? std::string("SUBMITTED") : std::string(state_name(state))] =
          static_cast<double>(count) / static_cast<double>(kRateWindow.count());
    }
    nlohmann::json answer{
        {"tenant", caller->tenant},
        {"jobs", counts.jobs},
        {"by_state", by_state},
        {"by_queue", by_queue},
        {"rates", {{"window_s", kRateWindow.count()}, {"per_second", per_second}, {"complete", recent.complete}}},
        {"lag", lag_json(caller->tenant)},
        {"view", {{"caught_up", follower.caught_up()}, {"lag_records", follower.lag()}, {"last_event", view.last_event()}}}};
    response.set_content(answer.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace), std::string(kJson));
  }

  // The tenant's fire and start lags over the rate window, as the view's follower saw them.
  nlohmann::json lag_json(const std::string& tenant) const {
    const auto since = now_ms() - kRateWindow.count() * 1000;
    nlohmann::json answer{{"window_s", kRateWindow.count()}};
    for (const auto& [name, kind] : {std::pair{"fire", LagWindow::Kind::kFire}, std::pair{"start", LagWindow::Kind::kStart}}) {
      const auto summary = follower.job_lags().summary(tenant_or_default(tenant), kind, since);
      answer[name] = {
          {"count", summary.count}, {"p50_ms", summary.p50_ms}, {"p99_ms", summary.p99_ms}, {"max_ms", summary.max_ms}};
    }
    return answer;
  }

  // Long-poll: the tenant's state changes after `since`, waiting up to `wait` seconds for one.
  // At most max_waiting requests wait at once; beyond that a request answers at once, so waiting
  // requests never take every request thread.
  void events(const httplib::Request& request, httplib::Response& response, const std::string& request_id) {
    auto caller = authenticate(request, response, request_id);
    if (!caller || !permitted(*caller, Action::kReadStats, {}, response, request_id)) return;
    std::uint64_t cursor = view.last_event();
    std::int64_t wait_seconds = 25;
    std::size_t limit = 500;
    for (const auto& [name, value] : request.params) {
      std::int64_t number = 0;
      const auto read = std::from_chars(value.data(), value.data() + value.size(), number);
      const bool parsed = read.ec == std::errc() && read.ptr == value.data() + value.size() && number >= 0;
      if (name == "since") {
        const auto since = parse_event_cursor(value);
        if (!since)
          return reply_problem(response, make_problem(400, "since takes the cursor of an earlier answer", "since"), request_id);
        // Another instance's cursor: this view numbers events its own way, so it goes back by
        // time, far enough for two views up to kForeignCursorRewind apart (events may repeat).
        cursor = since->view.empty() || since->view == view.view_id()
                     ? since->sequence
                     : view.event_cursor_at(since->at_ms -
                                            std::chrono::duration_cast<std::chrono::milliseconds>(kForeignCursorRewind).count());
      } else if (name == "wait" && parsed && number <= 30) {
        wait_seconds = number;
      } else if (name == "limit" && parsed && number >= 1 && number <= 1000) {
        limit = static_cast<std::size_t>(number);
      } else if (name != "tenant") {
        return reply_problem(response,
                             make_problem(400, "since takes a cursor, wait 0-30 (seconds), limit 1-1000", name.substr(0, 40)),
                             request_id);
      }
    }
    std::uint64_t next = cursor;
    ViewStore::EventsCut cut;
    auto found = view.events(caller->tenant, cursor, limit, kEventScanBudget, next, &cut);
    if (found.empty() && wait_seconds > 0) {
      if (const auto before = waiting.fetch_add(1); before < max_waiting) {
        long_polls.set(static_cast<double>(before + 1));
        const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(wait_seconds);
        while (found.empty() && !stopping.load() && std::chrono::steady_clock::now() < deadline) {
          std::this_thread::sleep_for(std::chrono::milliseconds(100));
          if (view.last_event() > next) found = view.events(caller->tenant, next, limit, kEventScanBudget, next, &cut);
        }
      } else {
        response.set_header("Retry-After", "1");  // every long-poll slot is taken: answered at once, poll again later
      }
      long_polls.set(static_cast<double>(waiting.fetch_sub(1) - 1));
    }
    // The cursor's time, for another instance: events after `next` were committed after it. At
    // the log's end that is now; an answer cut short names when its last event was committed.
    const auto cursor_ms = cut.more ? cut.last_committed_ms : now_ms();
    nlohmann::json answer{{"events", nlohmann::json::array()},
                          {"cursor", fmt::format("{}.{}.{}", view.view_id(), next, cursor_ms)}};
    for (const auto& event : found) {
      answer["events"].push_back(
          {{"sequence", event.sequence},
           {"id", event.id},
           {"state", event.state == v1::JOB_STATE_UNSPECIFIED ? std::string("SUBMITTED") : std::string(state_name(event.state))},
           {"attempt", event.attempt},
           {"at_ms", event.at_ms},
           {"reason", event.reason}});
    }
    response.set_content(answer.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace), std::string(kJson));
  }

  // ---- the tenant's settings ----

  // The settings' version for ETag / If-Match: when they were last changed ("0": never).
  static std::string settings_tag(const v1::TenantSettings& settings) { return fmt::format("\"{}\"", settings.updated_ms()); }

  static std::string settings_json(const v1::TenantSettings& settings, std::string_view tenant) {
    v1::TenantSettings shown = settings;
    shown.set_name(std::string(tenant));
    shown.clear_sealing_keys();  // wrapped data keys: of no use to a client, and kcron's own business
    return to_json(shown);
  }

  void get_tenant(const httplib::Request& request, httplib::Response& response, const std::string& request_id) {
    auto caller = authenticate(request, response, request_id);
    if (!caller || !permitted(*caller, Action::kReadTenant, {}, response, request_id)) return;
    if (!await_consistency(request, response, request_id)) return;
    const auto stored = view.tenant_settings(caller->tenant).value_or(v1::TenantSettings());
    response.set_header("ETag", settings_tag(stored));
    response.set_content(settings_json(stored, caller->tenant), std::string(kJson));
  }

  void patch_tenant(const httplib::Request& request, httplib::Response& response, const std::string& request_id) {
    auto caller = authenticate(request, response, request_id);
    if (!caller || !permitted(*caller, Action::kManageTenant, {}, response, request_id)) return;
    const auto content_type = request.get_header_value("Content-Type");
    auto media_type = std::string_view(content_type).substr(0, content_type.find(';'));
    while (!media_type.empty() && media_type.back() == ' ') media_type.remove_suffix(1);
    if (!media_type.empty() && media_type != kJson && media_type != "application/merge-patch+json") {
      reply_problem(response, make_problem(415, "send application/merge-patch+json (or application/json)"), request_id);
      return;
    }
    if (!await_consistency(request, response, request_id)) return;
    // The patch applies to the latest settings on kcron.tenants, not to what this instance's view
    // happened to hold: it would write stale limits or check against a stale ceiling.
    if (!await_topic_end(settings.names.tenants(), "tenant settings", response, request_id)) return;
    const auto current = view.tenant_settings(caller->tenant).value_or(v1::TenantSettings());
    // Optimistic concurrency against this instance's view: a client that read the settings sends
    // their ETag back, and a change in between (seen by the view) refuses the patch.
    const auto expected = request.get_header_value("If-Match");
    if (!expected.empty() && expected != "*" && expected != settings_tag(current)) {
      response.set_header("ETag", settings_tag(current));
      reply_problem(response,
                    make_problem(412, fmt::format("the settings changed since you read them (If-Match {}, now {}); "
                                                  "read them again and patch those",
                                                  expected.substr(0, 40), settings_tag(current))),
                    request_id);
      return;
    }
    auto outcome = apply_tenant_patch(current, caller->tenant, request.body, caller->principal.role, now_ms());
    if (!outcome.settings) {
      reply_problem(response, make_problem(outcome.status, outcome.message, outcome.field), request_id);
      return;
    }
    if (!outcome.changed) {  // nothing to write: the settings as they are
      response.set_header("ETag", settings_tag(current));
      response.set_content(settings_json(current, caller->tenant), std::string(kJson));
      return;
    }
    const auto& next = *outcome.settings;
    OutRecord record{
        settings.names.tenants(),
        -1,
        caller->tenant,
        encode(next),
        false,
        {{std::string(header::kType), "tenant"}, {std::string(header::kContentType), std::string(header::kProtobuf)}}};
    record.headers.emplace_back(header::kRequestId, request_id);
    auto written = produce(*caller, "patch_tenant", "", std::move(record), response, request_id,
                           utf8_prefix(fmt::format("settings of {} now {}", caller->tenant, to_json(next)), 1000));
    if (!written) return;
    response.set_header("ETag", settings_tag(next));
    accepted(response, caller->tenant, *written, request_id,
             {{"settings", nlohmann::json::parse(settings_json(next, caller->tenant))}});
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

  // ---- Large outputs (docs/large-results.md): GET /v1/jobs/{id}/outputs/{name} ----
  // The named output of the job's latest result (the one the view keeps), to its own tenant only:
  // the stored object streamed from the object store in chunks (never whole in memory), its size
  // checked by a HEAD before answering 200 and its SHA-256 while it streams (the last chunk is held
  // back until both match, so a changed object ends in a cut connection, never in a whole wrong
  // body); an output kept inline is answered from the result. The store answering an error: 502.
  void get_output(const httplib::Request& request, httplib::Response& response, const std::string& request_id) {
    auto caller = authenticate(request, response, request_id);
    if (!caller || !permitted(*caller, Action::kReadJobs, {}, response, request_id)) return;
    if (!await_consistency(request, response, request_id)) return;
    // Whole outputs only: a content provider answering a range would be handed the whole object.
    if (request.has_header("Range")) {
      reply_problem(response,
                    make_problem(400, "range requests are not served: read the whole output (Content-Length gives its size)"),
                    request_id);
      return;
    }
    const std::string id = request.matches[1];
    const std::string name = request.matches[2];
    auto found = view.job(caller->tenant, id);
    if (!found) {
      reply_problem(response, make_problem(404, fmt::format("no job {} in tenant {}", json_string(id), caller->tenant)),
                    request_id);
      return;
    }
    if (!found->has_result()) {
      reply_problem(response, make_problem(404, fmt::format("job {} has no result yet", json_string(id))), request_id);
      return;
    }
    const auto& result = found->result();
    if (request.has_param("attempt")) {
      const auto text = request.get_param_value("attempt");
      std::uint32_t attempt = 0;
      const auto read = std::from_chars(text.data(), text.data() + text.size(), attempt);
      if (text.empty() || read.ec != std::errc() || read.ptr != text.data() + text.size()) {
        reply_problem(response, make_problem(400, fmt::format("attempt {} is not a whole number", json_string(text)), "attempt"),
                      request_id);
        return;
      }
      if (attempt != result.attempt()) {
        reply_problem(response,
                      make_problem(404, fmt::format("the view keeps the latest result of job {}, attempt {}: the outputs of "
                                                    "attempt {} are read with `kcron result get --attempt {}`",
                                                    json_string(id), result.attempt(), attempt, attempt)),
                      request_id);
        return;
      }
    }
    response.set_header("X-Kcron-Attempt", std::to_string(result.attempt()));
    const v1::ObjectRef* ref = nullptr;
    for (const auto& object : result.objects()) {
      if (object.name() == name) ref = &object;
    }
    if (ref == nullptr) {
      // Not stored: an exec job's stdout or an http job's body is the result's inline output
      // (empty for a job that printed nothing, or of another kind).
      if (name != "stdout" && name != "body") {
        reply_problem(response,
                      make_problem(404, fmt::format("attempt {} of job {} has no output {} (outputs: stdout, stderr, body)",
                                                    result.attempt(), json_string(id), json_string(name))),
                      request_id);
        return;
      }
      // Bounded by the worker (exec.capture_bytes, http.max_body_bytes): answered as it is.
      set_digest_headers(response, sha256_hex_of(result.output()));
      response.set_content(result.output(), "application/octet-stream");
      return;
    }
    if (settings.object_store == nullptr) {
      reply_problem(response,
                    make_problem(501, fmt::format("the output is in the object store ({}), and this kcron-api has none "
                                                  "configured (objects.endpoint)",
                                                  ref->uri())),
                    request_id);
      return;
    }
    auto head = settings.object_store->head(ref->uri());
    if (!head) {
      reply_problem(response, make_problem(502, "the object store: " + head.error().message()), request_id);
      return;
    }
    if (head->size != ref->size()) {
      reply_problem(response,
                    make_problem(502, fmt::format("the object store holds {} bytes for {}, but the result recorded {}",
                                                  head->size, ref->uri(), ref->size())),
                    request_id);
      return;
    }
    set_digest_headers(response, ref->sha256());
    if (ref->original_size() > ref->size()) {
      // Cut at the worker's objects.max_bytes: the body is what was stored, not the whole output.
      response.set_header("X-Kcron-Truncated", "true");
      response.set_header("X-Kcron-Original-Size", std::to_string(ref->original_size()));
    }
    if (ref->size() == 0) {  // httplib takes a provider of length 0 for one of unknown length
      response.set_content("", "application/octet-stream");
      return;
    }
    response.set_content_provider(ref->size(), "application/octet-stream",
                                  [store = settings.object_store, ref = *ref, request_id](
                                      std::size_t offset, std::size_t /*length*/, httplib::DataSink& sink) {
                                    if (offset != 0) return false;  // everything is written in the first call
                                    return stream_object(*store, ref, sink, request_id);
                                  });
  }

  static std::string sha256_hex_of(std::string_view bytes) {
    std::array<unsigned char, EVP_MAX_MD_SIZE> digest{};
    unsigned int length = 0;
    if (EVP_Digest(bytes.data(), bytes.size(), digest.data(), &length, EVP_sha256(), nullptr) != 1) return {};
    return hex(std::string_view(reinterpret_cast<const char*>(digest.data()), length));
  }

  // X-Kcron-Sha256 (hex, as the result records it) and Repr-Digest (RFC 9530: base64 in colons).
  static void set_digest_headers(httplib::Response& response, const std::string& sha256_hex) {
    response.set_header("X-Kcron-Sha256", sha256_hex);
    response.set_header("Accept-Ranges", "none");
    std::string raw;
    for (std::size_t index = 0; index + 1 < sha256_hex.size(); index += 2) {
      unsigned int value = 0;
      if (std::from_chars(sha256_hex.data() + index, sha256_hex.data() + index + 2, value, 16).ec != std::errc()) return;
      raw.push_back(static_cast<char>(value));
    }
    std::array<unsigned char, 64> encoded{};
    if (raw.size() != 32) return;
    const int written = EVP_EncodeBlock(encoded.data(), reinterpret_cast<const unsigned char*>(raw.data()), 32);
    response.set_header("Repr-Digest",
                        fmt::format("sha-256=:{}:", std::string_view(reinterpret_cast<const char*>(encoded.data()),
                                                                     static_cast<std::size_t>(std::max(written, 0)))));
  }

  // Streams the object to the client, hashing as it goes; the last chunk is written only once the
  // size and SHA-256 match the result. False (the connection is cut short) otherwise.
  static bool stream_object(worker::ObjectStore& store, const v1::ObjectRef& ref, httplib::DataSink& sink,
                            const std::string& request_id) {
    std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> context(EVP_MD_CTX_new(), &EVP_MD_CTX_free);
    if (!context || EVP_DigestInit_ex(context.get(), EVP_sha256(), nullptr) != 1) return false;
    std::string held;
    std::uint64_t seen = 0;
    auto read = store.get_to(ref.uri(), [&](std::string_view chunk) {
      seen += chunk.size();
      if (seen > ref.size() || EVP_DigestUpdate(context.get(), chunk.data(), chunk.size()) != 1) return false;
      if (!held.empty() && !sink.write(held.data(), held.size())) return false;
      held.assign(chunk);
      return true;
    });
    std::array<unsigned char, EVP_MAX_MD_SIZE> digest{};
    unsigned int length = 0;
    if (read && EVP_DigestFinal_ex(context.get(), digest.data(), &length) != 1) return false;
    const auto actual = hex(std::string_view(reinterpret_cast<const char*>(digest.data()), length));
    if (!read || seen != ref.size() || actual != ref.sha256()) {
      spdlog::warn(
          "event=object_stream_failed request_id={} uri=\"{}\" bytes={} recorded_bytes={} sha256={} recorded_sha256={} "
          "error=\"{}\" msg=\"the answer is cut short\"",
          request_id, ref.uri(), seen, ref.size(), read ? actual : "", ref.sha256(),
          read ? "it differs from the result" : read.error().message());
      return false;
    }
    return held.empty() || sink.write(held.data(), held.size());
  }
  // ---- end of large outputs ----

  using Handler = void (Impl::*)(const httplib::Request&, httplib::Response&, const std::string&);

  // No default: a RouteId without a handler does not compile.
  static Handler handler_of(RouteId id) {
    switch (id) {
      case RouteId::kSubmit:
        return &Impl::submit_job;
      case RouteId::kBatch:
        return &Impl::submit_batch;
      case RouteId::kSubmitFlow:
        return &Impl::submit_flow;
      case RouteId::kListFlows:
        return &Impl::list_flows;
      case RouteId::kGetFlow:
        return &Impl::get_flow;
      case RouteId::kCancelFlow:
        return &Impl::cancel_flow;
      case RouteId::kRetryFlow:
        return &Impl::retry_flow;
      case RouteId::kUpdate:
        return &Impl::update_job;
      case RouteId::kList:
        return &Impl::list_jobs;
      case RouteId::kCancel:
        return &Impl::cancel_job;
      case RouteId::kGet:
        return &Impl::get_job;
      case RouteId::kGetOutput:
        return &Impl::get_output;
      case RouteId::kWhoami:
        return &Impl::whoami;
      case RouteId::kReplayJob:
        return &Impl::replay_job;
      case RouteId::kCloneJob:
        return &Impl::clone_job;
      case RouteId::kListSchedules:
        return &Impl::list_schedules;
      case RouteId::kPreviewCron:
        return &Impl::preview_cron;
      case RouteId::kScheduleNext:
        return &Impl::next_instants;
      case RouteId::kGetSchedule:
        return &Impl::get_schedule;
      case RouteId::kPauseSchedule:
        return &Impl::pause_schedule;
      case RouteId::kResumeSchedule:
        return &Impl::resume_schedule;
      case RouteId::kTriggerSchedule:
        return &Impl::trigger_schedule;
      case RouteId::kBackfill:
        return &Impl::backfill;
      case RouteId::kPutSchedule:
        return &Impl::put_schedule;
      case RouteId::kDeleteSchedule:
        return &Impl::delete_schedule;
      case RouteId::kListDeadLetters:
        return &Impl::list_dead_letters;
      case RouteId::kReplayDeadLetter:
        return &Impl::replay_dead_letter;
      case RouteId::kGetDeadLetter:
        return &Impl::get_dead_letter;
      case RouteId::kWorkers:
        return &Impl::list_workers;
      case RouteId::kAudit:
        return &Impl::list_audit;
      case RouteId::kStats:
        return &Impl::stats;
      case RouteId::kEvents:
        return &Impl::events;
      case RouteId::kGetTenant:
        return &Impl::get_tenant;
      case RouteId::kPatchTenant:
        return &Impl::patch_tenant;
      case RouteId::kListTemplates:
        return &Impl::list_templates;
      case RouteId::kGetTemplate:
        return &Impl::get_template;
      case RouteId::kGetTemplateVersion:
        return &Impl::get_template_version;
      case RouteId::kPutTemplateVersion:
        return &Impl::put_template_version;
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
          request_id.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.") !=
              std::string::npos) {
        request_id = random_hex(8);
      }
      response.set_header("X-Request-Id", request_id);
      allow_origin(request, response);
      // A path id (a job's, a schedule's, a dead letter's) is checked once for every route; a
      // request with no token at all gets its 401 from the route first.
      if (request.matches.size() > 1 && request.has_header("Authorization")) {
        if (auto valid = validate_job_id(request.matches[1].str()); !valid) {
          reply_problem(response, make_problem(400, fmt::format("the id in the path: {}", valid.error().message()), "id"),
                        request_id);
          return;
        }
      }
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

  static void serve_console(const httplib::Request& request, httplib::Response& response) {
    const ConsoleAsset* found = nullptr;
    for (const auto& asset : console_assets()) {
      if (asset.path == request.path) found = &asset;
    }
    if (found == nullptr) {
      response.status = 404;
      return;  // the error handler answers with a problem
    }
    for (const auto* name : {"Content-Security-Policy", "Cache-Control"}) response.headers.erase(name);
    response.set_header("Content-Security-Policy",
                        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
                        "base-uri 'none'; form-action 'none'; frame-ancestors 'none'");
    response.set_header("Cache-Control", found->immutable ? "public, max-age=31536000, immutable" : "no-cache");
    response.set_header("Vary", "Accept-Encoding");
    // Each encoding its own ETag: a range of one must never be joined with bytes of the other.
    const bool gzip = !found->gzip.empty() && request.get_header_value("Accept-Encoding").find("gzip") != std::string::npos;
    std::string etag(found->etag);
    if (gzip && etag.size() >= 2) etag.insert(etag.size() - 1, "-gz");
    response.set_header("ETag", etag);
    const auto matches = request.get_header_value("If-None-Match");
    if (!matches.empty() && matches.find(etag) != std::string::npos) {
      response.status = 304;
      return;
    }
    if (gzip) {
      // The gzip made at build time, through a content provider of known length: httplib would
      // compress a body set with set_content once more (it does not look at Content-Encoding).
      response.set_header("Content-Encoding", "gzip");
      const auto bytes = found->gzip;
      response.set_content_provider(bytes.size(), std::string(found->content_type),
                                    [bytes](std::size_t offset, std::size_t length, httplib::DataSink& sink) {
                                      return sink.write(bytes.data() + offset, std::min(length, bytes.size() - offset));
                                    });
    } else {
      response.set_content(found->body.data(), found->body.size(), std::string(found->content_type));
    }
  }

  // CORS: only the configured origin, never a wildcard.
  void allow_origin(const httplib::Request& request, httplib::Response& response) const {
    if (settings.cors_origin.empty() || request.get_header_value("Origin") != settings.cors_origin) return;
    response.set_header("Access-Control-Allow-Origin", settings.cors_origin);
    response.set_header("Vary", "Origin");
    response.set_header("Access-Control-Expose-Headers", "ETag, Kcron-Consistency, Location, Retry-After, X-Request-Id");
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
    server->new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
    server->set_payload_max_length(kMaxBodyBytes);
    server->set_read_timeout(std::chrono::duration_cast<std::chrono::seconds>(settings.read_timeout).count());
    server->set_write_timeout(std::chrono::duration_cast<std::chrono::seconds>(settings.write_timeout).count());
    server->set_keep_alive_max_count(1000);
    // httplib sends a response's headers and body in two writes: with Nagle's algorithm the body
    // waits for the client's delayed ACK of the headers (40 ms on Linux) on a keep-alive connection.
    server->set_tcp_nodelay(true);
    // httplib's default hook sets SO_REUSEPORT, so a second instance given the same port would
    // share it silently instead of failing "in use": only SO_REUSEADDR (a restart may bind while
    // the old connections sit in TIME_WAIT). The socket is kept to raise httplib's backlog of 5.
    server->set_socket_options([this](int socket) {
      int yes = 1;
      (void)::setsockopt(socket, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
      listen_socket = socket;
    });
    server->set_default_headers({{"X-Content-Type-Options", "nosniff"},
                                 {"Cache-Control", "no-store"},
                                 {"X-Frame-Options", "DENY"},
                                 {"Referrer-Policy", "no-referrer"},
                                 {"Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'"}});
    // Exactly the routes of kRoutes (core/routes.h), which the OpenAPI document must match.
    for (const auto& spec : kRoutes) {
      const auto pattern = path_regex(spec.path);
      auto wrapped = route(std::string(spec.name), handler_of(spec.id));
      if (spec.method == "GET") {
        server->Get(pattern, std::move(wrapped));
      } else if (spec.method == "POST") {
        server->Post(pattern, std::move(wrapped));
      } else if (spec.method == "PUT") {
        server->Put(pattern, std::move(wrapped));
      } else if (spec.method == "PATCH") {
        server->Patch(pattern, std::move(wrapped));
      } else if (spec.method == "DELETE") {
        server->Delete(pattern, std::move(wrapped));
      } else {
        throw std::logic_error(fmt::format("route {}: method {} is not served", spec.path, spec.method));
      }
    }
    if (settings.console) {
      // The web console: static files built in (not API routes: neither in kRoutes nor in the
      // OpenAPI document). Its page may load only its own scripts and styles and call only this
      // origin; no inline script runs.
      auto serve = [](const httplib::Request& request, httplib::Response& response) { serve_console(request, response); };
      server->Get("/", serve);
      server->Get(R"(/assets/[A-Za-z0-9._-]+)", serve);
    }
    if (!settings.cors_origin.empty()) {  // CORS preflights: not in kRoutes nor in the OpenAPI document
      server->Options(R"(/v1/.*)", [this](const httplib::Request& request, httplib::Response& response) {
        allow_origin(request, response);
        response.status = 204;
        response.set_header("Access-Control-Allow-Methods", "GET, POST, PUT, PATCH, DELETE");
        response.set_header("Access-Control-Allow-Headers",
                            "Authorization, Content-Type, Idempotency-Key, If-Match, Kcron-Consistency, X-Request-Id");
        response.set_header("Access-Control-Max-Age", "600");
      });
    }
    server->set_error_handler([](const httplib::Request& request, httplib::Response& response) {
      if (!response.body.empty()) return;
      std::string detail = "no such route";
      if (response.status == 413) detail = fmt::format("the body exceeds {} bytes", kMaxBodyBytes);
      if (response.status == 400) detail = "the request is not valid HTTP";
      auto request_id = response.get_header_value("X-Request-Id");
      (void)request;
      reply_problem(response, make_problem(response.status, detail), request_id);
    });
    server->set_logger([this](const httplib::Request&, const httplib::Response& response) { count(response.status); });
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
  if (!impl_->server->is_valid()) {
    return make_error("cannot serve TLS: {}", impl_->tls_error.empty() ? std::string("the TLS setup failed") : impl_->tls_error);
  }
  if (settings.port == 0) {
    port_ = impl_->server->bind_to_any_port(settings.address);
  } else {
    port_ = impl_->server->bind_to_port(settings.address, settings.port) ? settings.port : -1;
  }
  if (port_ <= 0)
    return make_error("cannot listen on {}:{} (in use, or not an address of this host)", settings.address, settings.port);
  // A burst of new connections beyond httplib's backlog of 5 would wait for SYN retransmits
  // (a second and more each); Linux takes a second listen() on a listening socket as a new backlog.
  if (const int socket = impl_->listen_socket.load(); socket >= 0) (void)::listen(socket, settings.listen_backlog);
  listener_ = std::thread([this] { impl_->server->listen_after_bind(); });
  spdlog::info("event=api_listening address={} port={}", settings.address, port_);
  return Status::success();
}

void ApiServer::stop() {
  impl_->stopping = true;
  if (listener_.joinable()) {
    // httplib's stop() does nothing until its thread is inside listen (see HttpEndpoint).
    for (int wait = 0; wait < 500 && !impl_->server->is_running(); ++wait)
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    impl_->server->stop();
    listener_.join();
  }
}

}  // namespace kcron::api
