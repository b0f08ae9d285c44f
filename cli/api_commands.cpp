#include "api_commands.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <map>
#include <tuple>

#include "audit_query.h"
#include "kcron/codec.h"
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

}  // namespace

std::string api_refusal(std::string_view command) {
  return fmt::format("{} is not available through the API yet; use Kafka access (without --api)", command);
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

}  // namespace kcron::cli
