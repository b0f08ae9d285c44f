#include "audit_command.h"

#include <fmt/format.h>

#include <iostream>

#include "api_commands.h"
#include "audit_query.h"
#include "inspect_command.h"
#include "kcron/clock.h"
#include "kcron/tenant.h"
#include "kcron/topics.h"

namespace kcron::cli {

AuditCommand::AuditCommand(CLI::App& app) {
  audit_ = app.add_subcommand("audit", "the dispatcher's decisions on commands (kcron.audit), oldest first");
  audit_->add_option("--tenant", tenant_,
                     "only this tenant's decisions ('default': the default tenant's; default: every tenant's)");
  audit_->add_option("--since", since_, "from this long ago (15m, 2h, 7d) or this RFC 3339 instant (default: 24h)");
  audit_->add_option("--job", job_id_, "only decisions on this job id");
  audit_->add_option("--outcome", outcome_, "only this outcome, e.g. REJECTED (ACCEPTED, CANCELLED, CANCEL_SENT, ...)");
  audit_->add_flag("--json", json_, "one AuditRecord as JSON per line instead of a table");
  audit_->add_option("-n,--max", max_, "at most the newest N decisions (0: all)")->capture_default_str();
}

bool AuditCommand::parsed() const {
  return audit_->parsed();
}

int AuditCommand::run(const Config& config, std::ostream& out, std::ostream& err) const {
  const auto fail = [&](const std::string& message) {
    err << "kcron: " << message << "\n";
    return 1;
  };
  if (max_ < 0) return fail("--max must be 0 (all) or more");
  const auto since = parse_since(since_, SystemClock::instance().now());
  if (!since) return fail(since.error().message());
  // The tenant: audit's --tenant, else the global one (kcron --tenant, KCRON_TENANT); none: all.
  const std::string tenant = !tenant_.empty() ? tenant_ : config.get("tenant");
  auto filter = make_audit_filter(tenant, job_id_, outcome_, *since);
  if (!filter) return fail(filter.error().message());
  // A job of a named tenant lives on one partition: the one its scoped key hashes to.
  const std::string key = !filter->tenant.empty() && !filter->job_id.empty() ? scoped_key(filter->tenant, filter->job_id) : "";
  AuditSelection selection(*filter, static_cast<std::size_t>(max_));
  const TopicNames names(config.get("topic_prefix"));
  if (auto read = read_since(
          config, names.audit(), *since, [&](Read&& record) { selection.offer(record); }, key);
      !read)
    return fail(read.error().message());
  const auto records = selection.records();
  out << (json_ ? audit_json_lines(records) : audit_table(records));
  out.flush();
  if (selection.undecodable() > 0)
    err << fmt::format("kcron: warning: {} record(s) of {} are not AuditRecords and were skipped\n", selection.undecodable(),
                       names.audit());
  if (selection.cut()) err << "kcron: " << audit_cut_notice(records.size(), selection.matched()) << "\n";
  return 0;
}

int AuditCommand::run_api(ApiClient& client, std::ostream& out, std::ostream& err) const {
  const auto fail = [&](const std::string& message) {
    err << "kcron: " << message << "\n";
    return 1;
  };
  if (max_ < 0) return fail("--max must be 0 (all) or more");
  const auto since = parse_since(since_, SystemClock::instance().now());
  if (!since) return fail(since.error().message());
  // The API answers one tenant's records: the token's, or the one --tenant names (system only).
  if (!tenant_.empty()) client.set_tenant(tenant_);
  auto filter = make_audit_filter("", job_id_, outcome_, *since);
  if (!filter) return fail(filter.error().message());
  return api_audit(client, *filter, static_cast<std::size_t>(max_), json_, out, err);
}

}  // namespace kcron::cli
