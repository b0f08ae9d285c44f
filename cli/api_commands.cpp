#include "api_commands.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <tuple>

#include "audit_query.h"
#include "batch_lines.h"
#include "kcron/codec.h"
#include "kcron/templates.h"
#include "kcron/tenant.h"
#include "text.h"

namespace kcron::cli {
namespace {

constexpr std::size_t kMaxPageSize = 500;  // the API's largest page
constexpr std::size_t kMaxPages = 10000;   // a sparse filter may page through many short pages

int fail(std::ostream& err, const std::string& message) {
  err << "kcron: " << message << "\n";
  return 1;
}

std::string tenant_suffix(std::string_view word, std::string_view tenant) {
  return tenant.empty() || is_default_tenant(tenant) ? std::string() : fmt::format(" {} tenant {}", word, tenant);
}

std::string_view command_name(v1::Command::CommandCase which) {
  switch (which) {
    case v1::Command::kReplay:
      return "replay";
    case v1::Command::kRetry:
      return "retry";
    case v1::Command::kCompletion:
      return "completion";
    case v1::Command::kPurgeTenant:
      return "purge_tenant";
    default:
      break;
  }
  return "command";
}

// "line N", or "lines N-M".
std::string line_range(std::size_t first, std::size_t last) {
  return first == last ? fmt::format("line {}", first) : fmt::format("lines {}-{}", first, last);
}

}  // namespace

std::string api_refusal(std::string_view command) {
  return fmt::format("{} is not available through the API yet; use Kafka access (without --api)", command);
}

int api_submit_template(ApiClient& client, std::string_view ref, const std::vector<std::string>& params, std::string_view id,
                        std::ostream& out, std::ostream& err) {
  auto parsed = templates::parse_ref(ref, true);
  if (!parsed) return fail(err, parsed.error().message());
  auto values = templates::parse_params(params);
  if (!values) return fail(err, values.error().message());
  nlohmann::json body{{"template", parsed->text()}, {"params", nlohmann::json::object()}};
  for (const auto& [name, value] : *values) body["params"][name] = value;
  if (!id.empty()) body["id"] = std::string(id);
  auto written = client.submit_body(body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
  if (!written) return fail(err, written.error().message());
  out << "submitted " << written->id << " from template " << parsed->text() << tenant_suffix("for", written->tenant) << "\n";
  return 0;
}

int api_submit(ApiClient& client, std::string_view input, std::ostream& out, std::ostream& err) {
  auto command = decode_command(input, "application/json", "");
  if (!command) return fail(err, command.error().message());
  switch (command->command_case()) {
    case v1::Command::kSubmit: {
      auto written = client.submit(command->submit());
      if (!written) return fail(err, written.error().message());
      out << "submitted " << written->id << tenant_suffix("for", written->tenant) << "\n";
      return 0;
    }
    case v1::Command::kUpdate: {
      const auto& job = command->update().job();
      if (job.id().empty()) return fail(err, "the job needs an id");
      auto written = client.update(job);
      if (!written) return fail(err, written.error().message());
      out << "submitted " << job.id() << tenant_suffix("for", client.target().tenant) << "\n";
      return 0;
    }
    case v1::Command::kCancel: {
      const auto& cancel = command->cancel();
      // The body's tenant is where the cancel acts: the API checks the token may act there.
      if (!cancel.tenant().empty()) {
        const auto named = tenant_or_default(cancel.tenant());
        if (client.target().tenant.empty()) {
          client.set_tenant(std::string(named));
        } else if (client.target().tenant != named) {
          return fail(err, fmt::format("the JSON names tenant '{}' but --tenant is '{}'", named, client.target().tenant));
        }
      }
      return api_cancel(client, cancel.job_id(), cancel.reason(), out, err);
    }
    default:
      return fail(err, api_refusal(fmt::format("a {} command", command_name(command->command_case()))));
  }
}

namespace {

// One chunk sent, and sent again while kcron-api refuses it with a wait (within the bounds of
// `options`; `waited` counts every wait of the run): the body of its 200.
Result<std::string> send_chunk(ApiClient& client, const ApiBatchChunk& chunk, const std::string& key,
                               const ApiBatchOptions& options, std::chrono::milliseconds& waited, std::string_view lines,
                               std::ostream& err) {
  for (std::size_t resends = 0;; ++resends) {
    auto reply = client.submit_batch(chunk.body, key);
    if (!reply) return reply.error();
    if (!reply->resend()) return std::move(reply->body);
    const auto wait = std::min<std::chrono::milliseconds>(reply->retry_after, options.max_wait);
    if (resends == options.max_resends || waited + wait > options.max_total_wait) {
      return make_error("{}; sent {} time{}, waited {} s in all: stopped", reply->refusal, resends + 1, resends == 0 ? "" : "s",
                        std::chrono::duration_cast<std::chrono::seconds>(waited).count());
    }
    err << fmt::format("kcron: {}: {}; sending them again in {} ms\n", lines, reply->refusal, wait.count());
    options.sleep(wait);
    waited += wait;
  }
}

}  // namespace

int api_submit_batch(ApiClient& client, std::string_view text, const ApiBatchOptions& options, std::ostream& out,
                     std::ostream& err) {
  auto chunks = api_batch_chunks(text);
  if (!chunks) return fail(err, chunks.error().message());
  std::size_t accepted = 0;
  std::size_t refused = 0;
  std::size_t requests = 0;
  std::string tenant = client.target().tenant;
  std::string unanswered;  // "lines N-M": from the first chunk without a result per line to the end
  std::chrono::milliseconds waited{0};
  for (std::size_t index = 0; index < chunks->size(); ++index) {
    const auto& chunk = (*chunks)[index];
    const auto lines = line_range(chunk.lines.front(), chunk.lines.back());
    const auto key = options.run_key.empty() ? std::string() : fmt::format("{}#c{}", options.run_key, index);
    auto answer = send_chunk(client, chunk, key, options, waited, lines, err);
    auto read = answer ? api_batch_outcomes(*answer, chunk.lines) : Result<ApiBatchAnswer>(answer.error());
    if (!read) {
      err << "kcron: " << lines << ": " << read.error().message() << "\n";
      unanswered = line_range(chunk.lines.front(), chunks->back().lines.back());
      break;
    }
    ++requests;
    if (!read->tenant.empty()) tenant = read->tenant;
    for (const auto& outcome : read->outcomes) {
      if (outcome.accepted()) {
        ++accepted;
        out << fmt::format("line {}: submitted {}{}\n", outcome.line, outcome.id,
                           outcome.template_ref.empty() ? "" : " from template " + outcome.template_ref);
        continue;
      }
      ++refused;
      std::string where = fmt::format("HTTP {}", outcome.status);
      if (!outcome.field.empty()) where += ", field " + outcome.field;
      if (!read->request_id.empty()) where += ", request " + read->request_id;
      err << fmt::format("kcron: line {}: {} ({})\n", outcome.line, one_line(outcome.detail, 500), where);
    }
  }
  std::string summary = fmt::format("submitted {} job{} in {} request{}{}", accepted, accepted == 1 ? "" : "s", requests,
                                    requests == 1 ? "" : "s", tenant_suffix("for", tenant));
  if (refused > 0) summary += fmt::format("; {} line{} refused", refused, refused == 1 ? "" : "s");
  if (!unanswered.empty() && options.run_key.empty()) {
    summary += fmt::format("; {} not confirmed: send them again (a job with an id is submitted once)", unanswered);
  } else if (!unanswered.empty()) {
    summary += fmt::format(
        "; {} not confirmed: send the file again with --idempotency-key {} (its lines keep their ids, so none is submitted "
        "twice)",
        unanswered, options.run_key);
  }
  out << summary << "\n";
  return refused > 0 || !unanswered.empty() ? 1 : 0;
}

int api_cancel(ApiClient& client, const std::string& job_id, const std::string& reason, std::ostream& out, std::ostream& err) {
  if (job_id.empty()) return fail(err, "the cancel needs a job id");
  auto written = client.cancel(job_id, reason);
  if (!written) return fail(err, written.error().message());
  out << "cancel sent for " << job_id << tenant_suffix("of", client.target().tenant) << "\n";
  return 0;
}

std::string_view shown_state(v1::JobState state) {
  return state == v1::JOB_STATE_UNSPECIFIED ? std::string_view("SUBMITTED") : state_name(state);
}

std::string job_view_text(const v1::JobView& view) {
  std::string text =
      fmt::format("job {}: {} (attempt {}) at {}{}\n", view.id(), shown_state(view.state()), view.attempt(),
                  rfc3339_ms(view.updated_ms()), view.reason().empty() ? "" : " - " + one_line(view.reason(), 200));
  text += fmt::format("  {:<10} {}\n", "queue", view.queue().empty() ? "-" : view.queue());
  text += fmt::format("  {:<10} {}\n", "due", rfc3339_ms(view.due_ms()));
  text += fmt::format("  {:<10} {}\n", "updated", rfc3339_ms(view.updated_ms()));
  text += fmt::format("  {:<10} {}{}\n", "submitted", rfc3339_ms(view.submitted_ms()),
                      view.submitted_by().empty() ? "" : " by " + view.submitted_by());
  if (!view.schedule_id().empty()) text += fmt::format("  {:<10} {}\n", "schedule", view.schedule_id());
  if (!view.labels().empty()) {
    const std::map<std::string, std::string> sorted(view.labels().begin(), view.labels().end());
    std::string labels;
    for (const auto& [key, value] : sorted) labels += fmt::format("{}{}={}", labels.empty() ? "" : ",", key, value);
    text += fmt::format("  {:<10} {}\n", "labels", one_line(labels, 200));
  }
  if (view.history_size() > 0) {
    text += fmt::format("{:<25} {:<10} {:>7}  {:<10} {}\n", "AT", "STATE", "ATTEMPT", "BY", "REASON");
    for (const auto& entry : view.history()) {
      text += fmt::format("{:<25} {:<10} {:>7}  {:<10} {}\n", rfc3339_ms(entry.at_ms()), shown_state(entry.state()),
                          entry.attempt(), entry.component(), one_line(entry.reason()));
    }
  }
  return text;
}

int api_status(ApiClient& client, const std::string& job_id, bool json, std::ostream& out, std::ostream& err) {
  auto read = client.job(job_id);
  if (!read) return fail(err, read.error().message());
  if (json) {
    out << read->json << "\n";
  } else {
    out << job_view_text(read->view);
  }
  return 0;
}

std::string jobs_table_header() {
  return fmt::format("{:<32} {:<10} {:>7}  {:<12} {:<25} {:<25} {}\n", "JOB", "STATE", "ATTEMPT", "QUEUE", "SUBMITTED", "DUE",
                     "REASON");
}

std::string jobs_table_row(const v1::JobView& view) {
  return fmt::format("{:<32} {:<10} {:>7}  {:<12} {:<25} {:<25} {}\n", view.id(), shown_state(view.state()), view.attempt(),
                     view.queue().empty() ? "-" : view.queue(), rfc3339_ms(view.submitted_ms()), rfc3339_ms(view.due_ms()),
                     one_line(view.reason(), 80));
}

int api_jobs(ApiClient& client, const JobsOptions& options, std::ostream& out, std::ostream& err) {
  if (options.limit == 0 || options.limit > kMaxJobsLimit) return fail(err, fmt::format("--limit takes 1-{}", kMaxJobsLimit));
  std::size_t printed = 0;
  std::string page_token;
  for (std::size_t pages = 0; printed < options.limit; ++pages) {
    if (pages == kMaxPages) {
      return fail(err, fmt::format("stopped after {} pages with {} jobs; narrow the filter (--since, --state, --queue)",
                                   kMaxPages, printed));
    }
    auto page = client.list(options.filter, std::min(options.limit - printed, kMaxPageSize), page_token);
    if (!page) return fail(err, page.error().message());
    if (pages == 0 && !options.json) out << jobs_table_header();
    for (const auto& job : page->jobs) {
      if (printed == options.limit) break;
      out << (options.json ? job.json + "\n" : jobs_table_row(job.view));
      ++printed;
    }
    if (page->next_page_token.empty()) break;
    page_token = page->next_page_token;
  }
  return 0;
}

JobsCommand::JobsCommand(CLI::App& app) {
  jobs_ = app.add_subcommand("jobs", "the tenant's jobs from kcron-api, newest first (needs --api)");
  jobs_->add_option("--state", state_, "only jobs in this state (PENDING, QUEUED, RUNNING, SUCCEEDED, FAILED, DEAD, ...)");
  jobs_->add_option("--queue", queue_, "only jobs of this queue");
  jobs_->add_option("--schedule", schedule_, "only runs of this schedule");
  jobs_->add_option("--label", label_, "only jobs with this label: key=value");
  jobs_->add_option("--since", since_, "submitted at or after: a duration back from now (15m, 2h, 7d) or an RFC 3339 instant");
  jobs_->add_option("--until", until_, "submitted before: a duration back from now or an RFC 3339 instant");
  jobs_->add_option("-n,--limit", limit_, "at most this many jobs (1-100000)")->capture_default_str();
  jobs_->add_flag("--json", json_, "one JobView as JSON per line instead of a table");
}

bool JobsCommand::parsed() const {
  return jobs_->parsed();
}

int JobsCommand::run(ApiClient& client, Instant now, std::ostream& out, std::ostream& err) const {
  JobsOptions options;
  options.filter.state = state_;
  std::transform(options.filter.state.begin(), options.filter.state.end(), options.filter.state.begin(),
                 [](char c) { return static_cast<char>(std::toupper(static_cast<unsigned char>(c))); });
  options.filter.queue = queue_;
  options.filter.schedule = schedule_;
  options.filter.label = label_;
  // Both take what `audit --since` takes; its errors name --since, so --until's are renamed.
  for (auto [text, target, name] :
       {std::tuple(&since_, &options.filter.since, "--since"), std::tuple(&until_, &options.filter.until, "--until")}) {
    if (text->empty()) continue;
    auto instant = parse_since(*text, now);
    if (!instant) {
      auto message = instant.error().message();
      if (message.starts_with("--since")) message.replace(0, 7, name);
      return fail(err, message);
    }
    *target = std::to_string(to_epoch_ms(*instant));
  }
  if (limit_ < 1 || static_cast<std::size_t>(limit_) > kMaxJobsLimit)
    return fail(err, fmt::format("--limit takes 1-{}", kMaxJobsLimit));
  options.limit = static_cast<std::size_t>(limit_);
  options.json = json_;
  return api_jobs(client, options, out, err);
}

int api_workers(ApiClient& client, bool json, Instant now, std::ostream& out, std::ostream& err) {
  auto workers = client.workers();
  if (!workers) return fail(err, workers.error().message());
  std::sort(workers->begin(), workers->end(),
            [](const WorkerEntry& a, const WorkerEntry& b) { return a.heartbeat.worker_id() < b.heartbeat.worker_id(); });
  const auto now_ms = to_epoch_ms(now);
  if (!json) out << workers_table_header();
  for (const auto& [beat, alive] : *workers) {
    if (!beat.role().empty()) continue;  // a dispatcher's (features for the upgrade gate), not a worker's
    // The API's "alive" is its own judgement (two intervals); lost and stopped as over Kafka.
    const std::string_view state = alive ? "live" : (beat.stopped() ? "stopped" : "lost");
    if (json) {
      out << fmt::format(R"({{"state":"{}","heartbeat":{}}})", state, to_json(beat)) << "\n";
      continue;
    }
    out << workers_table_row(beat, state, now_ms);
  }
  return 0;
}

namespace {

// Every dead letter of the tenant, newest first, up to `limit`.
Result<std::vector<v1::DeadLetter>> newest_letters(ApiClient& client, std::size_t limit) {
  std::vector<v1::DeadLetter> letters;
  std::string token;
  for (std::size_t pages = 0; pages < kMaxPages && letters.size() < limit; ++pages) {
    auto page = client.dead_letters(std::min(kMaxPageSize, limit - letters.size()), token);
    if (!page) return page.error();
    for (auto& letter : page->letters) letters.push_back(std::move(letter));
    if (page->next_page_token.empty()) break;
    token = std::move(page->next_page_token);
  }
  if (letters.size() > limit) letters.resize(limit);
  return letters;
}

}  // namespace

int api_dead_letters(ApiClient& client, std::size_t max, bool json, std::ostream& out, std::ostream& err) {
  auto letters = newest_letters(client, max > 0 ? std::min(max, kMaxListedLetters) : kMaxListedLetters);
  if (!letters) return fail(err, letters.error().message());
  std::reverse(letters->begin(), letters->end());  // oldest first, as over Kafka
  if (!json) out << dead_letters_table_header();
  for (const auto& letter : *letters) {
    if (json) {
      out << to_json(letter) << "\n";
      continue;
    }
    const auto& tenant = !letter.tenant().empty() ? letter.tenant() : letter.job().tenant();
    out << dead_letters_table_row(letter, tenant_or_default(tenant));
  }
  return 0;
}

int api_replay(ApiClient& client, const std::vector<std::string>& ids, bool all, std::ostream& out, std::ostream& err) {
  std::set<std::string> given(ids.begin(), ids.end());
  std::vector<std::string> chosen(given.begin(), given.end());
  if (all) {
    auto letters = newest_letters(client, kMaxListedLetters);
    if (!letters) return fail(err, letters.error().message());
    std::set<std::string> dead;
    for (const auto& letter : *letters) {
      if (letter.state() == v1::DEAD && letter.has_job() && !letter.job().id().empty()) dead.insert(letter.job().id());
    }
    for (const auto& id : dead) {
      if (given.insert(id).second) chosen.push_back(id);
    }
  }
  if (chosen.empty()) return fail(err, "name the job ids to replay, or --all");
  int failed = 0;
  for (const auto& id : chosen) {
    auto replayed = client.replay_dead_letter(id);
    if (!replayed) {
      err << fmt::format("kcron: {}: {}\n", id, replayed.error().message());
      ++failed;
      continue;
    }
    out << "replay sent for " << id << "\n";
  }
  return failed == 0 ? 0 : 1;
}

int api_audit(ApiClient& client, const AuditFilter& filter, std::size_t max, bool json, std::ostream& out, std::ostream& err) {
  AuditSelection selection(filter, max);
  std::string token;
  const auto since_ms = to_epoch_ms(filter.since);
  for (std::size_t pages = 0; pages < kMaxPages; ++pages) {
    auto page = client.audit(filter.job_id, kMaxPageSize, token);
    if (!page) return fail(err, page.error().message());
    bool older = false;
    for (auto& record : page->records) {
      // Newest first: once a page reaches before --since, the rest is older still.
      if (record.at_ms() < since_ms) {
        older = true;
        continue;
      }
      selection.offer(std::move(record));
    }
    // Newest first: once `max` matched, every later record is older than those kept.
    if (older || page->next_page_token.empty() || (max > 0 && selection.matched() >= max)) break;
    if (pages + 1 == kMaxPages) {
      err << fmt::format("kcron: warning: stopped after {} pages of {}; narrow --since or --job\n", kMaxPages, kMaxPageSize);
    }
    token = std::move(page->next_page_token);
  }
  const auto records = selection.records();
  out << (json ? audit_json_lines(records) : audit_table(records));
  out.flush();
  if (selection.cut()) err << "kcron: " << audit_cut_notice(records.size(), selection.matched()) << "\n";
  return 0;
}

int api_schedule_put(ApiClient& client, std::string_view input, std::ostream& out, std::ostream& err) {
  v1::Schedule schedule;
  if (auto decoded = decode_message(input, "application/json", schedule); !decoded) return fail(err, decoded.error().message());
  auto written = client.put_schedule(schedule);
  if (!written) return fail(err, written.error().message());
  out << "put schedule " << schedule.id() << "\n";
  return 0;
}

int api_schedule_delete(ApiClient& client, const std::string& id, std::ostream& out, std::ostream& err) {
  auto written = client.delete_schedule(id);
  if (!written) return fail(err, written.error().message());
  out << "deleted schedule " << id << "\n";
  return 0;
}

}  // namespace kcron::cli
