#include "schedule_lint.h"

#include <fmt/format.h>

#include <algorithm>
#include <map>
#include <ostream>
#include <vector>

#include "core/cron_expression.h"
#include "core/rfc3339.h"
#include "cron_command.h"
#include "inspect_command.h"
#include "kcron.pb.h"
#include "kcron/codec.h"
#include "kcron/routing.h"
#include "kcron/tenant.h"
#include "kcron/topics.h"

namespace kcron::cli {
namespace {

constexpr int kMaxCount = 1000;

struct StoredSchedule {
  v1::Schedule definition;
  cron::CronExpression expression;
  cron::TimeZone zone;
};

Instant instant_of(const google::protobuf::Timestamp& timestamp) {
  constexpr std::int64_t kLimitSeconds = (std::int64_t{1} << 53) / 1000;  // as the cron-producer clamps
  const std::int64_t seconds = std::clamp(timestamp.seconds(), -kLimitSeconds, kLimitSeconds);
  return instant_from_ms(seconds * 1000 + timestamp.nanos() / 1'000'000);
}

// The schedules in force after these records, as the cron-producer's table holds them: only
// records on the partition their key hashes to count (others are forwarded there), a tombstone
// or empty value deletes, and a record the cron-producer rejects leaves the previous definition.
std::map<std::string, StoredSchedule> schedules_in_force(const std::vector<Read>& records, std::int32_t partitions) {
  std::map<std::string, StoredSchedule> table;
  for (const Read& record : records) {
    if (record.key.empty() || partition_for_key(record.key, partitions).value() != record.partition) continue;
    if (record.value.empty()) {
      table.erase(record.key);
      continue;
    }
    v1::Schedule definition;
    if (!decode_message(record.value, record.content_type, definition)) continue;
    // The cron-producer's identity rule: the key is the schedule's scoped key (kcron/tenant.h).
    if (definition.id().empty()) {
      const auto named = split_scoped_key(record.key);
      definition.set_id(std::string(named.id));
      if (definition.tenant().empty()) definition.set_tenant(std::string(tenant_field(named.tenant)));
    }
    const auto tenant = tenant_or_default(definition.tenant());
    if (!(is_default_tenant(tenant) ? validate_default_tenant_id(definition.id()) : validate_tenant_name(tenant))) continue;
    if (scoped_key(tenant, definition.id()) != record.key) continue;
    auto expression = cron::CronExpression::parse(definition.expression());
    if (!expression) continue;
    auto zone = cron::TimeZone::locate(definition.time_zone().empty() ? "UTC" : definition.time_zone());
    if (!zone) continue;
    table.insert_or_assign(record.key, StoredSchedule{std::move(definition), std::move(*expression), *zone});
  }
  return table;
}

void print_change(const StoredSchedule& schedule, const cron::DayRuleChange& change, std::ostream& out) {
  const v1::Schedule& definition = schedule.definition;
  const auto tenant = tenant_or_default(definition.tenant());
  out << fmt::format("schedule {}{}: '{}' in {}{} fires differently from {}\n", definition.id(),
                     is_default_tenant(tenant) ? "" : fmt::format(" (tenant {})", tenant), definition.expression(),
                     schedule.zone.name(), definition.paused() ? " (paused)" : "", date::format("%a %F", change.first_day));
  out << "  before: " << schedule.expression.with_day_rule(cron::DayRule::kLegacy).explain() << "\n";
  out << "  after:  " << schedule.expression.explain() << "\n";
  std::vector<std::string> before;
  std::vector<std::string> after;
  for (const Instant fire : change.legacy) before.push_back(wall_time_text(fire, schedule.zone));
  for (const Instant fire : change.cronie) after.push_back(wall_time_text(fire, schedule.zone));
  if (before.empty()) before.emplace_back("(no more fires)");
  if (after.empty()) after.emplace_back("(no more fires)");
  std::size_t width = std::string_view("next before").size();
  for (const auto& text : before) width = std::max(width, text.size());
  out << fmt::format("  {:<{}}   {}\n", "next before", width, "next after");
  for (std::size_t line = 0; line < std::max(before.size(), after.size()); ++line) {
    const std::string left = line < before.size() ? before[line] : "";
    const std::string right = line < after.size() ? after[line] : "";
    out << fmt::format("  {:<{}}   {}", left, width, right) << "\n";
  }
}

}  // namespace

ScheduleLint::ScheduleLint(CLI::App& schedule) {
  lint_ = schedule.add_subcommand(
      "lint", "list the stored schedules that fire differently since the day fields combine as in cronie (exit 1 if any)");
  lint_->add_option("--from", from_, "compare the fires after this RFC 3339 instant (default: now)");
  lint_->add_option("-n,--count", count_, "how many next fires to show under each rule")->capture_default_str();
}

bool ScheduleLint::parsed() const {
  return lint_->parsed();
}

int ScheduleLint::run(const Config& config, std::ostream& out, std::ostream& err) const {
  if (count_ < 1 || count_ > kMaxCount) {
    err << fmt::format("kcron: --count: {} is outside 1-{}\n", count_, kMaxCount);
    return 2;
  }
  Instant from = SystemClock::instance().now();
  if (!from_.empty()) {
    auto parsed = cron::parse_rfc3339(from_);
    if (!parsed) {
      err << "kcron: --from: " << parsed.error().message() << "\n";
      return 2;
    }
    from = *parsed;
  }
  const TopicNames names(config.get("topic_prefix"));
  std::int32_t partitions = 0;
  auto records = read_to_end(config, names.schedules(), "", &partitions);
  if (!records) {
    err << "kcron: " << records.error().message() << "\n";
    return 2;
  }
  const auto schedules = schedules_in_force(*records, partitions);
  std::size_t changed = 0;
  for (const auto& [id, schedule] : schedules) {
    const v1::Schedule& definition = schedule.definition;
    // The cron-producer fires from the start (inclusive) up to the end (inclusive).
    const Instant after = definition.has_start() ? std::max(from, instant_of(definition.start()) - Millis(1)) : from;
    const Instant until = definition.has_end() ? instant_of(definition.end()) : Instant::max();
    const auto change = schedule.expression.compare_day_rules(after, until, schedule.zone, static_cast<std::size_t>(count_));
    if (!change) continue;
    if (changed > 0) out << "\n";
    print_change(schedule, *change, out);
    ++changed;
  }
  if (changed == 0) {
    out << fmt::format("no stored schedule fires differently under cronie's day rule ({} checked in {})\n", schedules.size(),
                       names.schedules());
    return 0;
  }
  out << fmt::format("\n{} of {} stored schedules {} differently under cronie's day rule (see cron-producer/README.md)\n",
                     changed, schedules.size(), changed == 1 ? "fires" : "fire");
  return 1;
}

}  // namespace kcron::cli
