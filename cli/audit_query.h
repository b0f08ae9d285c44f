// The pure half of `kcron audit`: what --since means, which AuditRecords a query keeps (tenant,
// job, outcome, time; the newest --max of them), and the table or JSON lines it prints. No Kafka;
// the command (audit_command.h) reads the audit topic from `since` on and offers each record here.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "inspect_command.h"
#include "kcron.pb.h"
#include "kcron/clock.h"
#include "kcron/result.h"

namespace kcron::cli {

// How far back a query looks without --since.
inline constexpr Millis kDefaultAuditWindow = std::chrono::hours(24);

// --since: a duration back from `now` ("15m", "2h", "7d", "1h30m"; units s, m, h, d, w), or an
// RFC 3339 instant ("2026-03-01T09:00:00Z", "2026-03-01T10:00:00+01:00"). Empty: now - 24 h.
// A duration is positive and at most 100 years.
Result<Instant> parse_since(std::string_view text, Instant now);

// The outcomes the dispatcher writes (schemas/kcron.proto, AuditRecord.outcome).
const std::vector<std::string_view>& audit_outcomes();

// What a query keeps. An empty field matches every record.
struct AuditFilter {
  std::string tenant;   // a tenant name; "default" matches the records whose tenant field is empty
  std::string job_id;   // the job id as its tenant names it
  std::string outcome;  // one of audit_outcomes()
  Instant since{};      // records decided (at_ms) before it are left out
};

// The filter from the command's options: the tenant must be a valid name, the outcome one of
// audit_outcomes() in any case ("rejected" is REJECTED).
Result<AuditFilter> make_audit_filter(std::string_view tenant, std::string_view job_id, std::string_view outcome, Instant since);

bool audit_matches(const AuditFilter& filter, const v1::AuditRecord& record);

// The newest `max_lines` records (0: no cap) that match the filter, of all offered, in bounded
// memory. Records are offered in any order (partitions interleave).
class AuditSelection {
 public:
  AuditSelection(AuditFilter filter, std::size_t max_lines);
  // Decodes one record of the audit topic and keeps it if it matches; a tombstone or a value that
  // does not decode as an AuditRecord is counted in undecodable(), not kept.
  void offer(const Read& record);
  void offer(v1::AuditRecord record);
  // The kept records, oldest first by at_ms (ties: the order they were offered).
  std::vector<v1::AuditRecord> records() const;
  std::size_t matched() const { return matched_; }
  std::size_t undecodable() const { return undecodable_; }
  // More records matched than are kept.
  bool cut() const { return matched_ > kept_.size(); }

 private:
  struct Kept {
    std::int64_t at_ms = 0;
    std::uint64_t order = 0;
    v1::AuditRecord record;
  };
  // The heap order: with it, the oldest kept record is on top.
  static bool newer(const Kept& a, const Kept& b);
  AuditFilter filter_;
  std::size_t max_lines_;
  std::vector<Kept> kept_;  // a min-heap on (at_ms, order) once it holds max_lines_ records
  std::uint64_t offered_ = 0;
  std::size_t matched_ = 0;
  std::size_t undecodable_ = 0;
};

// A header line and one line per record: AT (RFC 3339 UTC, ms), TENANT (an empty field shows as
// "default"), ACTION, JOB, OUTCOME, REASON (one line, at most 100 characters), COMPONENT, SOURCE.
// Columns are as wide as their widest value; an empty value shows as "-".
std::string audit_table(const std::vector<v1::AuditRecord>& records);
// One canonical JSON object (to_json) per line.
std::string audit_json_lines(const std::vector<v1::AuditRecord>& records);
// What the command says on stderr when --max cut the output.
std::string audit_cut_notice(std::size_t shown, std::size_t matched);

}  // namespace kcron::cli
