// `kcron submit | cancel | status | jobs` through kcron-api (--api URL): the same subcommands as
// over Kafka, for users without Kafka access. Each runs its requests on an ApiClient and prints
// what the Kafka path prints (status: the API's view of the job; jobs: its list, API only). Pure:
// the transport is the ApiClient's.
#pragma once

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstddef>
#include <functional>
#include <ostream>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "api_client.h"
#include "audit_query.h"
#include "kcron.pb.h"
#include "kcron/clock.h"

namespace kcron::cli {

// "<command> is not available through the API yet; use Kafka access (without --api)".
std::string api_refusal(std::string_view command);

// submit: a JSON Job (POST /v1/jobs), or a Command whose submit, update (PUT) or cancel (:cancel)
// maps to its route; prints "submitted <id>" (" for tenant T" outside the default tenant), or for
// a cancel what `kcron cancel` prints. Returns the exit code; errors go to `err`.
int api_submit(ApiClient& client, std::string_view input, std::ostream& out, std::ostream& err);
// `kcron submit --template NAME@VERSION --param k=v... [--id ID] --api`: kcron-api renders the job
// (POST /v1/jobs with a template body, docs/api.md#templates) and waits for a version it has not
// seen yet (api.template_wait_ms). Prints "submitted <id> from template <ref>".
int api_submit_template(ApiClient& client, std::string_view ref, const std::vector<std::string>& params, std::string_view id,
                        std::ostream& out, std::ostream& err);

// How `kcron submit --batch FILE --api` sends its requests again and names them.
struct ApiBatchOptions {
  // Chunk c (from 0) goes with Idempotency-Key "<run_key>#c<c>" (kcron-api makes its item i's
  // "<run_key>#c<c>#<i>"): the same file sent again with the same run key gives its lines without
  // an id the same ids, so the dispatcher keeps one job of each.
  std::string run_key;
  std::chrono::milliseconds max_wait{30000};         // the longest one Retry-After is waited
  std::chrono::milliseconds max_total_wait{300000};  // all waits of a run together
  std::size_t max_resends = 20;                      // per chunk
  std::function<void(std::chrono::milliseconds)> sleep = [](std::chrono::milliseconds wait) {
    std::this_thread::sleep_for(wait);
  };
};

// `kcron submit --batch FILE.jsonl --api` (docs/batch.md#through-kcron-api): the file's lines
// (`text`) in POST /v1/jobs:batch requests of up to 1,000 items under 1 MiB, template lines as
// template bodies that kcron-api renders. A chunk refused as a whole with a wait (429 over the
// tenant's rate, 503 with Retry-After) is sent again after Retry-After (at most `max_wait` each,
// `max_resends` times, `max_total_wait` in all), with a note on `err`. Prints "line N: submitted
// <id>" for each accepted line and "kcron: line N: <detail> (HTTP <status>, field F, request R)" on
// `err` for each refused one, then "submitted A jobs in R requests" (and "; F lines refused"). Exit
// 1 if any line was refused or a request failed as a whole (later chunks are then not sent: the
// summary names the lines not confirmed and the run key to send the file again with).
int api_submit_batch(ApiClient& client, std::string_view text, const ApiBatchOptions& options, std::ostream& out,
                     std::ostream& err);

// cancel: prints "cancel sent for <id>" (" of tenant T" when --tenant names one).
int api_cancel(ApiClient& client, const std::string& job_id, const std::string& reason, std::ostream& out, std::ostream& err);

// status: the job's state, attempt, instants and history as text, or with `json` the JobView as
// the API sent it.
int api_status(ApiClient& client, const std::string& job_id, bool json, std::ostream& out, std::ostream& err);

// The text `kcron status` prints for a JobView.
std::string job_view_text(const v1::JobView& view);

// The state as the CLI shows it: SUBMITTED for a job no dispatcher has decided on yet.
std::string_view shown_state(v1::JobState state);

// jobs: the tenant's jobs, newest first, following next_page_token until `limit` are printed or
// the list ends.
struct JobsOptions {
  JobFilter filter;
  std::size_t limit = 100;
  bool json = false;  // one JobView per line instead of a table
};
inline constexpr std::size_t kMaxJobsLimit = 100000;
int api_jobs(ApiClient& client, const JobsOptions& options, std::ostream& out, std::ostream& err);

// workers: every worker's latest heartbeat as the API's view holds it, printed as `kcron workers`
// prints them (dispatchers' heartbeats left out). `now` gives SEEN_S_AGO.
int api_workers(ApiClient& client, bool json, Instant now, std::ostream& out, std::ostream& err);

// dlq list: the tenant's dead letters oldest first, as `kcron dlq list` prints them; `max` > 0 keeps
// the newest `max`. At most kMaxListedLetters are read.
inline constexpr std::size_t kMaxListedLetters = 100000;
int api_dead_letters(ApiClient& client, std::size_t max, bool json, std::ostream& out, std::ostream& err);

// dlq replay: each id through POST /v1/dead-letters/{id}:replay ("replay sent for <id>"); with
// `all`, every DEAD job of the tenant's dead letters. An id that fails is reported and the others
// go on; exit 1 if any failed.
int api_replay(ApiClient& client, const std::vector<std::string>& ids, bool all, std::ostream& out, std::ostream& err);

// audit: the tenant's audit records through GET /v1/audit, filtered (job, outcome, since) and cut
// to the newest `max` (0: all) as `kcron audit` does; the API holds the tenant's records only.
int api_audit(ApiClient& client, const AuditFilter& filter, std::size_t max, bool json, std::ostream& out, std::ostream& err);

// schedule put: a JSON Schedule (its id required) through PUT /v1/schedules/{id}, checked by the
// API as the cron-producer checks it; prints "put schedule <id>". schedule delete: DELETE;
// prints "deleted schedule <id>".
int api_schedule_put(ApiClient& client, std::string_view input, std::ostream& out, std::ostream& err);
int api_schedule_delete(ApiClient& client, const std::string& id, std::ostream& out, std::ostream& err);

std::string jobs_table_header();
std::string jobs_table_row(const v1::JobView& view);

// Registers `jobs [--state S] [--queue Q] [--schedule ID] [--label k=v] [--since T] [--until T]
// [-n/--limit N] [--json]`; the options bind to this object, so it stays where it was constructed.
class JobsCommand {
 public:
  explicit JobsCommand(CLI::App& app);
  JobsCommand(const JobsCommand&) = delete;
  JobsCommand& operator=(const JobsCommand&) = delete;

  bool parsed() const;
  // --since/--until as durations back from `now` or instants; then api_jobs.
  int run(ApiClient& client, Instant now, std::ostream& out, std::ostream& err) const;

 private:
  CLI::App* jobs_ = nullptr;
  std::string state_;
  std::string queue_;
  std::string schedule_;
  std::string label_;
  std::string since_;
  std::string until_;
  long limit_ = 100;
  bool json_ = false;
};

}  // namespace kcron::cli
