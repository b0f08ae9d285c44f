#include "cron_command.h"

#include "core/cron_expression.h"
#include "core/rfc3339.h"

namespace kcron::cli {

namespace {

constexpr int kMaxCount = 100'000;

int fail(std::ostream& err, const std::string& message) {
  err << "kcron: " << message << "\n";
  return 1;
}

}  // namespace

CronCommand::CronCommand(CLI::App& app) {
  cron_ = app.add_subcommand("cron", "check cron expressions (no broker needed)");
  cron_->require_subcommand(1);

  next_ = cron_->add_subcommand("next", "print the next fire instants of an expression as RFC 3339 UTC, one per line");
  next_->add_option("expression", expression_, "cron expression, e.g. '0 9 * * MON-FRI' or '@every 90s'")->required();
  next_->add_option("--tz", zone_, "IANA time zone the expression is read in")->capture_default_str();
  next_->add_option("--from", from_, "search after this RFC 3339 instant (default: now)");
  next_->add_option("-n,--count", count_, "how many fire instants to print")->capture_default_str();

  explain_ = cron_->add_subcommand("explain", "say what an expression means in words");
  explain_->add_option("expression", expression_, "cron expression")->required();
}

bool CronCommand::parsed() const {
  return cron_->parsed();
}

int CronCommand::run(std::ostream& out, std::ostream& err) const {
  if (next_->parsed()) return next(out, err);
  if (explain_->parsed()) return explain(out, err);
  return fail(err, "cron: expected next or explain");
}

int CronCommand::next(std::ostream& out, std::ostream& err) const {
  auto expression = cron::CronExpression::parse(expression_);
  if (!expression) return fail(err, expression.error().message());
  auto zone = cron::TimeZone::locate(zone_);
  if (!zone) return fail(err, zone.error().message());
  if (count_ < 1 || count_ > kMaxCount) return fail(err, fmt::format("--count: {} is outside 1-{}", count_, kMaxCount));
  Instant after = SystemClock::instance().now();
  if (!from_.empty()) {
    auto from = cron::parse_rfc3339(from_);
    if (!from) return fail(err, "--from: " + from.error().message());
    after = *from;
  }
  for (int printed = 0; printed < count_; ++printed) {
    auto fire = expression->next_after(after, *zone);
    if (!fire) {
      // Fewer instants than asked for is still an answer; none at all is an error.
      if (printed == 0) return fail(err, fire.error().message());
      err << "kcron: " << fire.error().message() << "\n";
      return 0;
    }
    out << cron::format_rfc3339(*fire) << "\n";
    after = *fire;
  }
  return 0;
}

int CronCommand::explain(std::ostream& out, std::ostream& err) const {
  auto expression = cron::CronExpression::parse(expression_);
  if (!expression) return fail(err, expression.error().message());
  out << expression->explain() << "\n";
  return 0;
}

}  // namespace kcron::cli
