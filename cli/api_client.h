// kcron's client of kcron-api (docs/api.md): builds each request (bearer token, JSON body,
// percent-encoded path and query), sends it through an HttpTransport, and turns the answer into a
// value or an Error a user can act on (a problem+json answer as "<detail> (HTTP <status>, field
// <field>, request <id>)"). No HTTP library here: curl_transport.h is the production transport.
#pragma once

#include <chrono>
#include <cstddef>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "kcron.pb.h"
#include "kcron/result.h"

namespace kcron::cli {

struct HttpRequest {
  std::string method;  // GET, POST, PUT, PATCH, DELETE
  std::string url;     // absolute
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
};

struct HttpResponse {
  int status = 0;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  // The first header of that name (any case); empty when absent.
  std::string header(std::string_view name) const;
};

// Sends one request and waits for its answer. An Error only when no answer came (cannot connect,
// TLS refused, timed out); it says why, never what the request carried.
class HttpTransport {
 public:
  virtual ~HttpTransport() = default;
  virtual Result<HttpResponse> send(const HttpRequest& request) = 0;
};

// Where the API is and who the CLI is there.
struct ApiTarget {
  std::string base_url;  // http(s)://host[:port][/path], without a trailing slash
  std::string token;     // the bearer JWT
  std::string tenant;    // sent as ?tenant= when set (a system token acting in another tenant)
};

// The token of --token / KCRON_API_TOKEN: the text itself, or "@FILE" for the content of FILE
// (surrounding whitespace removed). A token is one line without spaces; errors never quote it.
Result<std::string> resolve_token(std::string_view argument);

// Checks the URL (http or https, a host) and the token; `tenant` may be empty.
Result<ApiTarget> make_api_target(std::string_view url, std::string_view token_argument, std::string_view tenant);

// The URL as it may be printed: without user:password@.
std::string printable_url(std::string_view url);

// RFC 3986 unreserved characters kept, everything else %XX.
std::string percent_encode(std::string_view text);

// What a write answered.
struct WriteAnswer {
  std::string id;
  std::string tenant;  // the tenant the job is in (submit only; empty otherwise)
  std::string consistency;
  std::string request_id;
};

// A job as GET /v1/jobs/{id} answered it: decoded, and the JSON text as sent.
struct JobRead {
  v1::JobView view;
  std::string json;
};

// GET /v1/jobs filters; empty ones are not sent. `since`/`until` as the API takes them (RFC 3339
// or epoch ms).
struct JobFilter {
  std::string state;
  std::string queue;
  std::string schedule;
  std::string label;  // key=value
  std::string since;
  std::string until;
};

struct JobPage {
  std::vector<JobRead> jobs;
  std::string next_page_token;  // empty: the list ends here
};

// GET /v1/workers: a heartbeat and whether the API counts its worker alive.
struct WorkerEntry {
  v1::WorkerHeartbeat heartbeat;
  bool alive = false;
};

// GET /v1/dead-letters and /v1/audit: a page, newest first.
struct DeadLetterPage {
  std::vector<v1::DeadLetter> letters;
  std::string next_page_token;
};
struct AuditPage {
  std::vector<v1::AuditRecord> records;
  std::string next_page_token;
};

// What POST /v1/jobs:batch answered: a 200's body (one result per item), or a refusal of the whole
// request that wrote nothing and may be sent again as it is after `retry_after`: a 429 (over the
// tenant's rate) or a 503 with Retry-After (no wait slot, Kafka did not acknowledge: sent again
// with the same Idempotency-Key, its items keep their ids).
struct BatchReply {
  int status = 0;
  std::string body;                     // 200: the results
  std::chrono::seconds retry_after{0};  // 429, 503: Retry-After (1 s when a 429 gives none or a date)
  std::string refusal;                  // 429, 503: "<detail> (HTTP <status>, request <id>)"
  bool resend() const { return status == 429 || status == 503; }
};

// One user's session with the API; single-threaded. The consistency token of a write is sent with
// the next request only (read-your-writes within this process; never stored).
class ApiClient {
 public:
  ApiClient(ApiTarget target, HttpTransport& transport);

  Result<WriteAnswer> submit(const v1::Job& job);     // POST /v1/jobs
  Result<WriteAnswer> submit_body(std::string body);  // POST /v1/jobs with a body as it is (a template body)
  Result<WriteAnswer> update(const v1::Job& job);     // PUT /v1/jobs/{id}
  // POST /v1/jobs:batch with a {"jobs": [...]} body as it is and `idempotency_key` (none when
  // empty). An Error for no answer or an answer of 400 or more other than a BatchReply::resend() one.
  Result<BatchReply> submit_batch(std::string body, std::string_view idempotency_key);
  Result<WriteAnswer> cancel(std::string_view job_id, std::string_view reason);                       // POST /v1/jobs/{id}:cancel
  Result<JobRead> job(std::string_view job_id);                                                       // GET /v1/jobs/{id}
  Result<JobPage> list(const JobFilter& filter, std::size_t page_size, std::string_view page_token);  // GET /v1/jobs
  Result<std::vector<WorkerEntry>> workers();                                                         // GET /v1/workers
  Result<DeadLetterPage> dead_letters(std::size_t page_size, std::string_view page_token);            // GET /v1/dead-letters
  Result<WriteAnswer> replay_dead_letter(std::string_view job_id);  // POST /v1/dead-letters/{id}:replay
  // GET /v1/audit (`job_id` empty: every job's)
  Result<AuditPage> audit(std::string_view job_id, std::size_t page_size, std::string_view page_token);
  Result<WriteAnswer> put_schedule(const v1::Schedule& schedule);  // PUT /v1/schedules/{id}
  Result<WriteAnswer> delete_schedule(std::string_view id);        // DELETE /v1/schedules/{id}
  Result<v1::TenantSettings> tenant_settings();                    // GET /v1/tenant
  // PATCH /v1/tenant with a merge patch (tenant_patch_body); the settings after it.
  Result<v1::TenantSettings> patch_tenant(std::string patch);

  const ApiTarget& target() const { return target_; }
  // The tenant later requests act in (?tenant=); empty: the token's.
  void set_tenant(std::string tenant) { target_.tenant = std::move(tenant); }

 private:
  // Sends the request; an Error for no answer or an answer of 400 or more.
  Result<HttpResponse> call(std::string_view method, const std::string& path,
                            std::vector<std::pair<std::string, std::string>> query, std::string body);
  // Sends the request with `headers` besides the usual ones; an Error only for no answer.
  Result<HttpResponse> exchange(std::string_view method, const std::string& path,
                                std::vector<std::pair<std::string, std::string>> query, std::string body,
                                std::vector<std::pair<std::string, std::string>> headers);
  Result<WriteAnswer> write(std::string_view method, const std::string& path, std::string body);

  ApiTarget target_;
  HttpTransport& transport_;
  std::string consistency_;  // of the last write, until the next request carries it
};

// The Error an answer of 400 or more becomes: its problem details when it has them, else its
// status and the start of its body.
Error answer_error(const HttpResponse& response);

}  // namespace kcron::cli
