#include "cron_command.h"

#include <date/date.h>
#include <fmt/format.h>

#include <algorithm>
#include <vector>

#include "core/cron_expression.h"
#include "core/rfc3339.h"

namespace kcron::cli {

namespace {

constexpr int kMaxCount = 100'000;

int fail(std::ostream& err, const std::string& message) {
  err << "kcron: " << message << "\n";
  return 1;
}

struct Fires {
  std::vector<Instant> instants;
  std::optional<Error> stopped;  // why there are fewer than asked for
};

// The first `count` fire instants strictly after `after`, or as many as there are.
Fires next_fires(const cron::CronExpression& expression, const cron::TimeZone& zone, Instant after, int count) {
  Fires fires;
  for (int found = 0; found < count; ++found) {
    auto fire = expression.next_after(after, zone);
    if (!fire) {
      fires.stopped = fire.error();
      break;
    }
    fires.instants.push_back(*fire);
    after = *fire;
  }
  return fires;
}

}  // namespace

std::string wall_time_text(Instant instant, const cron::TimeZone& zone) {
  const date::sys_info period = zone.period_at(date::floor<std::chrono::seconds>(instant));
  const auto wall = date::local_time<Millis>{instant.time_since_epoch() + period.offset};
  const auto day = date::floor<date::days>(wall);
  const date::hh_mm_ss<Millis> time(wall - day);
  const auto offset_minutes = std::chrono::duration_cast<std::chrono::minutes>(period.offset).count();
  const auto magnitude = offset_minutes < 0 ? -offset_minutes : offset_minutes;
  std::string text = date::format("%a %F ", day) +
                     fmt::format("{:02}:{:02}:{:02}", time.hours().count(), time.minutes().count(), time.seconds().count());
  if (time.subseconds().count() != 0) text += fmt::format(".{:03}", time.subseconds().count());
  text += fmt::format(" {}{:02}:{:02}", offset_minutes < 0 ? '-' : '+', magnitude / 60, magnitude % 60);
  // Zones without a name for their offset abbreviate it as the offset ("-03", "+0545").
  if (!period.abbrev.empty() && period.abbrev.front() != '+' && period.abbrev.front() != '-') text += " " + period.abbrev;
  return text;
}

CronCommand::CronCommand(CLI::App& app) {
  cron_ = app.add_subcommand("cron", "check cron expressions (no broker needed)");
  cron_->require_subcommand(1);

  next_ = cron_->add_subcommand("next", "print the next fire instants of an expression as RFC 3339 UTC, one per line");
  next_->add_option("expression", expression_, "cron expression, e.g. '0 9 * * MON-FRI' or '@every 90s'")->required();
  next_->add_option("--tz", zone_, "IANA time zone the expression is read in")->capture_default_str();
  next_->add_option("--from", from_, "search after this RFC 3339 instant (default: now)");
  next_->add_option("-n,--count", count_, "how many fire instants to print")->capture_default_str();

  explain_ = cron_->add_subcommand("explain", "say what an expression means in words, then its next fire instants in its zone");
  explain_->add_option("expression", expression_, "cron expression")->required();
  explain_->add_option("--tz", zone_, "IANA time zone the expression is read in")->capture_default_str();
  explain_->add_option("--from", from_, "search after this RFC 3339 instant (default: now)");
  explain_->add_option("-n,--count", explain_count_, "how many fire instants to print (0: only the words)")
      ->capture_default_str();
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
  const Fires fires = next_fires(*expression, *zone, after, count_);
  // Fewer instants than asked for is still an answer; none at all is an error.
  if (fires.instants.empty()) return fail(err, fires.stopped->message());
  for (const Instant fire : fires.instants) out << cron::format_rfc3339(fire) << "\n";
  if (fires.stopped) err << "kcron: " << fires.stopped->message() << "\n";
  return 0;
}

int CronCommand::explain(std::ostream& out, std::ostream& err) const {
  auto expression = cron::CronExpression::parse(expression_);
  if (!expression) return fail(err, expression.error().message());
  auto zone = cron::TimeZone::locate(zone_);
  if (!zone) return fail(err, zone.error().message());
  if (explain_count_ < 0 || explain_count_ > kMaxCount) {
    return fail(err, fmt::format("--count: {} is outside 0-{}", explain_count_, kMaxCount));
  }
  Instant after = SystemClock::instance().now();
  if (!from_.empty()) {
    auto from = cron::parse_rfc3339(from_);
    if (!from) return fail(err, "--from: " + from.error().message());
    after = *from;
  }
  out << expression->explain() << "\n";
  if (explain_count_ == 0) return 0;
  const Fires fires = next_fires(*expression, *zone, after, explain_count_);
  if (fires.instants.empty()) return fail(err, fires.stopped->message());
  out << fmt::format("next in {} after {}:\n", zone->name(), cron::format_rfc3339(after));
  std::vector<std::string> walls;
  std::size_t width = 0;
  for (const Instant fire : fires.instants) {
    walls.push_back(wall_time_text(fire, *zone));
    width = std::max(width, walls.back().size());
  }
  for (std::size_t line = 0; line < walls.size(); ++line) {
    out << fmt::format("  {:<{}}  {}\n", walls[line], width, cron::format_rfc3339(fires.instants[line]));
  }
  if (fires.stopped) err << "kcron: " << fires.stopped->message() << "\n";
  return 0;
}

}  // namespace kcron::cli
