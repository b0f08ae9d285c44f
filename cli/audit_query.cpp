#include "audit_query.h"

#include <fmt/chrono.h>
#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <ctime>
#include <functional>
#include <optional>
#include <utility>

#include "core/rfc3339.h"
#include "kcron/codec.h"
#include "kcron/tenant.h"
#include "text.h"

namespace kcron::cli {
namespace {

constexpr std::int64_t kMaxSinceMs = Millis(std::chrono::days(100 * 366)).count();

// Milliseconds of one duration unit; 0 for a character that is not one.
std::int64_t unit_ms(char unit) {
  switch (unit) {
    case 's':
      return Millis(std::chrono::seconds(1)).count();
    case 'm':
      return Millis(std::chrono::minutes(1)).count();
    case 'h':
      return Millis(std::chrono::hours(1)).count();
    case 'd':
      return Millis(std::chrono::days(1)).count();
    case 'w':
      return Millis(std::chrono::weeks(1)).count();
    default:
      return 0;
  }
}

bool is_digit(char c) {
  return std::isdigit(static_cast<unsigned char>(c)) != 0;
}

// "15m", "1h30m": terms of digits and a unit. Nothing when the text is not of that form.
std::optional<Result<Millis>> parse_duration(std::string_view text) {
  if (text.empty() || !is_digit(text.front())) return std::nullopt;
  std::int64_t total_ms = 0;
  for (std::size_t at = 0; at < text.size();) {
    std::int64_t number = 0;
    const std::size_t digits_from = at;
    while (at < text.size() && is_digit(text[at])) {
      number = number * 10 + (text[at] - '0');
      if (number > kMaxSinceMs) return Result<Millis>(make_error("--since '{}': more than 100 years", text));
      ++at;
    }
    if (at == digits_from || at == text.size() || unit_ms(text[at]) == 0) return std::nullopt;
    if (number > kMaxSinceMs / unit_ms(text[at])) return Result<Millis>(make_error("--since '{}': more than 100 years", text));
    total_ms += number * unit_ms(text[at]);
    if (total_ms > kMaxSinceMs) return Result<Millis>(make_error("--since '{}': more than 100 years", text));
    ++at;
  }
  if (total_ms == 0) return Result<Millis>(make_error("--since '{}': a duration must be longer than 0", text));
  return Result<Millis>(Millis(total_ms));
}

std::string or_dash(const std::string& text) {
  return text.empty() ? "-" : text;
}

}  // namespace

Result<Instant> parse_since(std::string_view text, Instant now) {
  if (text.empty()) return now - kDefaultAuditWindow;
  if (auto duration = parse_duration(text)) {
    if (!*duration) return duration->error();
    return now - **duration;
  }
  auto instant = cron::parse_rfc3339(text);
  if (instant) return *instant;
  // Text that starts like a date gets the instant's error; anything else gets both forms.
  if (text.size() >= 5 && is_digit(text[0]) && text[4] == '-')
    return make_error("--since '{}': {}", text, instant.error().message());
  return make_error("--since '{}': neither a duration (15m, 2h, 7d) nor an RFC 3339 instant (2026-03-01T09:00:00Z)", text);
}

const std::vector<std::string_view>& audit_outcomes() {
  static const std::vector<std::string_view> outcomes = {"ACCEPTED", "QUEUED",   "CANCELLED", "CANCEL_SENT", "CANCEL_MARKED",
                                                         "UPDATED",  "REPLAYED", "PURGED",    "REJECTED"};
  return outcomes;
}

Result<AuditFilter> make_audit_filter(std::string_view tenant, std::string_view job_id, std::string_view outcome, Instant since) {
  AuditFilter filter;
  if (!tenant.empty()) {
    if (auto valid = validate_tenant_name(tenant); !valid) return valid.error().within("--tenant");
    filter.tenant = tenant;
  }
  filter.job_id = job_id;
  for (const char c : outcome) filter.outcome += static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  if (!filter.outcome.empty() &&
      std::find(audit_outcomes().begin(), audit_outcomes().end(), filter.outcome) == audit_outcomes().end()) {
    return make_error("--outcome '{}' is not one of {}", outcome, fmt::join(audit_outcomes(), ", "));
  }
  filter.since = since;
  return filter;
}

bool audit_matches(const AuditFilter& filter, const v1::AuditRecord& record) {
  if (!filter.tenant.empty() && tenant_or_default(record.tenant()) != filter.tenant) return false;
  if (!filter.job_id.empty() && record.job_id() != filter.job_id) return false;
  if (!filter.outcome.empty() && record.outcome() != filter.outcome) return false;
  return record.at_ms() >= to_epoch_ms(filter.since);
}

bool AuditSelection::newer(const Kept& a, const Kept& b) {
  return std::pair(a.at_ms, a.order) > std::pair(b.at_ms, b.order);
}

AuditSelection::AuditSelection(AuditFilter filter, std::size_t max_lines) : filter_(std::move(filter)), max_lines_(max_lines) {}

void AuditSelection::offer(const Read& record) {
  v1::AuditRecord decision;
  if (record.tombstone || !decode_message(record.value, record.content_type, decision)) {
    ++undecodable_;
    return;
  }
  offer(std::move(decision));
}

void AuditSelection::offer(v1::AuditRecord record) {
  const std::uint64_t order = offered_++;
  if (!audit_matches(filter_, record)) return;
  ++matched_;
  Kept candidate{record.at_ms(), order, std::move(record)};
  if (max_lines_ == 0 || kept_.size() < max_lines_) {
    kept_.push_back(std::move(candidate));
    if (max_lines_ != 0 && kept_.size() == max_lines_) std::make_heap(kept_.begin(), kept_.end(), newer);
    return;
  }
  if (!newer(candidate, kept_.front())) return;  // older than everything kept
  std::pop_heap(kept_.begin(), kept_.end(), newer);
  kept_.back() = std::move(candidate);
  std::push_heap(kept_.begin(), kept_.end(), newer);
}

std::vector<v1::AuditRecord> AuditSelection::records() const {
  std::vector<const Kept*> sorted;
  sorted.reserve(kept_.size());
  for (const auto& kept : kept_) sorted.push_back(&kept);
  std::sort(sorted.begin(), sorted.end(), [](const Kept* a, const Kept* b) { return newer(*b, *a); });
  std::vector<v1::AuditRecord> records;
  records.reserve(sorted.size());
  for (const auto* kept : sorted) records.push_back(kept->record);
  return records;
}

std::string audit_table(const std::vector<v1::AuditRecord>& records) {
  constexpr std::size_t kColumns = 8;
  using Row = std::array<std::string, kColumns>;
  std::vector<Row> rows;
  rows.push_back({"AT", "TENANT", "ACTION", "JOB", "OUTCOME", "REASON", "COMPONENT", "SOURCE"});
  for (const auto& record : records) {
    rows.push_back({rfc3339_ms(record.at_ms()), std::string(tenant_or_default(record.tenant())), or_dash(record.action()),
                    or_dash(one_line(record.job_id(), 100)), or_dash(record.outcome()), or_dash(one_line(record.reason(), 100)),
                    or_dash(record.component()), or_dash(record.source())});
  }
  std::array<std::size_t, kColumns> widths{};
  for (const auto& row : rows) {
    for (std::size_t column = 0; column < kColumns; ++column) widths[column] = std::max(widths[column], row[column].size());
  }
  std::string table;
  for (const auto& row : rows) {
    std::string line;
    for (std::size_t column = 0; column < kColumns; ++column) {
      line += column + 1 < kColumns ? fmt::format("{:<{}}  ", row[column], widths[column]) : row[column];
    }
    table += line + "\n";
  }
  return table;
}

std::string audit_json_lines(const std::vector<v1::AuditRecord>& records) {
  std::string lines;
  for (const auto& record : records) lines += to_json(record) + "\n";
  return lines;
}

std::string audit_cut_notice(std::size_t shown, std::size_t matched) {
  return fmt::format(
      "showing the newest {} of {} matching decisions (--max 0 shows all; --since, --tenant, --job or --outcome narrow them)",
      shown, matched);
}

}  // namespace kcron::cli
