#include "audit_query.h"

#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "core/rfc3339.h"
#include "kcron/codec.h"

using namespace kcron;
using namespace kcron::cli;
using namespace std::chrono_literals;

namespace {

const Instant kNow = *cron::parse_rfc3339("2026-12-06T12:00:00Z");

v1::AuditRecord decision(std::int64_t at_ms, const std::string& tenant, const std::string& job_id, const std::string& outcome,
                         const std::string& reason = "") {
  v1::AuditRecord record;
  record.set_at_ms(at_ms);
  record.set_tenant(tenant);
  record.set_job_id(job_id);
  record.set_action("submit");
  record.set_outcome(outcome);
  record.set_reason(reason);
  record.set_component("dispatcher");
  record.set_source("kcron.jobs/3@41");
  return record;
}

AuditFilter filter_of(std::string_view tenant, std::string_view job_id, std::string_view outcome, Instant since = Instant{}) {
  auto filter = make_audit_filter(tenant, job_id, outcome, since);
  REQUIRE(filter.ok());
  return *filter;
}

std::vector<std::string> job_ids(const std::vector<v1::AuditRecord>& records) {
  std::vector<std::string> ids;
  for (const auto& record : records) ids.push_back(record.job_id());
  return ids;
}

}  // namespace

TEST_CASE("the --since option takes a duration back from now in s, m, h, d or w, and combinations of them") {
  CHECK(*parse_since("15m", kNow) == kNow - 15min);
  CHECK(*parse_since("2h", kNow) == kNow - 2h);
  CHECK(*parse_since("7d", kNow) == kNow - 7 * 24h);
  CHECK(*parse_since("1w", kNow) == kNow - 7 * 24h);
  CHECK(*parse_since("30s", kNow) == kNow - 30s);
  CHECK(*parse_since("1h30m", kNow) == kNow - 90min);
}

TEST_CASE("the --since option takes an RFC 3339 instant in UTC or with an offset") {
  CHECK(*parse_since("2026-12-05T09:00:00Z", kNow) == *cron::parse_rfc3339("2026-12-05T09:00:00Z"));
  CHECK(*parse_since("2026-12-05T10:00:00+01:00", kNow) == *cron::parse_rfc3339("2026-12-05T09:00:00Z"));
}

TEST_CASE("without --since a query looks back 24 hours") {
  CHECK(*parse_since("", kNow) == kNow - 24h);
}

TEST_CASE(
    "the --since option refuses a unit it does not know, a bare number, a zero and more than 100 years, saying which forms it "
    "takes") {
  const auto unit = parse_since("5x", kNow);
  REQUIRE_FALSE(unit.ok());
  CHECK(unit.error().message() ==
        "--since '5x': neither a duration (15m, 2h, 7d) nor an RFC 3339 instant (2026-03-01T09:00:00Z)");
  CHECK_FALSE(parse_since("15", kNow).ok());
  CHECK_FALSE(parse_since("m", kNow).ok());
  CHECK_FALSE(parse_since("-2h", kNow).ok());
  CHECK_FALSE(parse_since("1h 30m", kNow).ok());
  const auto zero = parse_since("0m", kNow);
  REQUIRE_FALSE(zero.ok());
  CHECK(zero.error().message() == "--since '0m': a duration must be longer than 0");
  const auto far = parse_since("99999999999999999999d", kNow);
  REQUIRE_FALSE(far.ok());
  CHECK(far.error().message() == "--since '99999999999999999999d': more than 100 years");
  CHECK_FALSE(parse_since("40000d", kNow).ok());
}

TEST_CASE("the --since option gives the instant's own error for text that starts like a date") {
  const auto bad = parse_since("2026-13-01T00:00:00Z", kNow);
  REQUIRE_FALSE(bad.ok());
  CHECK_THAT(bad.error().message(), Catch::StartsWith("--since '2026-13-01T00:00:00Z': "));
  CHECK_THAT(bad.error().message(), !Catch::Contains("neither a duration"));
}

TEST_CASE("the tenant filter matches the record's tenant field, and default matches an empty field") {
  const auto acme = filter_of("acme", "", "");
  CHECK(audit_matches(acme, decision(1, "acme", "a", "ACCEPTED")));
  CHECK_FALSE(audit_matches(acme, decision(1, "beta", "a", "ACCEPTED")));
  CHECK_FALSE(audit_matches(acme, decision(1, "", "a", "ACCEPTED")));
  const auto fallback = filter_of("default", "", "");
  CHECK(audit_matches(fallback, decision(1, "", "a", "ACCEPTED")));
  CHECK(audit_matches(fallback, decision(1, "default", "a", "ACCEPTED")));
  CHECK_FALSE(audit_matches(fallback, decision(1, "acme", "a", "ACCEPTED")));
  const auto every = filter_of("", "", "");
  CHECK(audit_matches(every, decision(1, "beta", "a", "ACCEPTED")));
  CHECK(audit_matches(every, decision(1, "", "a", "ACCEPTED")));
}

TEST_CASE("the job and outcome filters match exactly, the outcome in any case, and records before since are left out") {
  const auto since = instant_from_ms(1000);
  const auto filter = filter_of("", "nightly", "rejected", since);
  CHECK(filter.outcome == "REJECTED");
  CHECK(audit_matches(filter, decision(1000, "acme", "nightly", "REJECTED")));
  CHECK_FALSE(audit_matches(filter, decision(999, "acme", "nightly", "REJECTED")));
  CHECK_FALSE(audit_matches(filter, decision(2000, "acme", "nightly-2", "REJECTED")));
  CHECK_FALSE(audit_matches(filter, decision(2000, "acme", "nightly", "ACCEPTED")));
}

TEST_CASE("a filter refuses an invalid tenant name and an outcome the dispatcher does not write") {
  const auto tenant = make_audit_filter("Acme!", "", "", Instant{});
  REQUIRE_FALSE(tenant.ok());
  CHECK_THAT(tenant.error().message(), Catch::StartsWith("--tenant: "));
  const auto outcome = make_audit_filter("", "", "DONE", Instant{});
  REQUIRE_FALSE(outcome.ok());
  CHECK(outcome.error().message() ==
        "--outcome 'DONE' is not one of ACCEPTED, QUEUED, CANCELLED, CANCEL_SENT, CANCEL_MARKED, UPDATED, REPLAYED, PURGED, "
        "REJECTED");
}

TEST_CASE("a selection keeps the newest matching records up to its cap and returns them oldest first") {
  AuditSelection selection(filter_of("acme", "", ""), 3);
  // Partitions interleave: offered out of time order.
  for (const auto& [at_ms, tenant, id] : std::vector<std::tuple<std::int64_t, std::string, std::string>>{
           {50, "acme", "e"}, {10, "acme", "a"}, {40, "acme", "d"}, {60, "beta", "x"}, {30, "acme", "c"}, {20, "acme", "b"}}) {
    selection.offer(decision(at_ms, tenant, id, "ACCEPTED"));
  }
  CHECK(job_ids(selection.records()) == std::vector<std::string>{"c", "d", "e"});
  CHECK(selection.matched() == 5);
  CHECK(selection.cut());
}

TEST_CASE("a selection without a cap keeps every match, and records of one instant stay in the order offered") {
  AuditSelection selection(filter_of("", "", ""), 0);
  selection.offer(decision(20, "", "late", "ACCEPTED"));
  selection.offer(decision(10, "", "first", "ACCEPTED"));
  selection.offer(decision(10, "", "second", "REJECTED"));
  CHECK(job_ids(selection.records()) == std::vector<std::string>{"first", "second", "late"});
  CHECK_FALSE(selection.cut());
}

TEST_CASE("a selection decodes topic records and counts a tombstone or bytes that are not an AuditRecord") {
  AuditSelection selection(filter_of("", "", ""), 10);
  Read good;
  good.value = encode(decision(5, "acme", "j1", "ACCEPTED"));
  good.content_type = "application/x-protobuf";
  selection.offer(good);
  Read tombstone;
  tombstone.tombstone = true;
  selection.offer(tombstone);
  Read garbage;
  garbage.value = "{not json";
  selection.offer(garbage);
  CHECK(job_ids(selection.records()) == std::vector<std::string>{"j1"});
  CHECK(selection.undecodable() == 2);
}

TEST_CASE("the audit table has a column per field in order, the default tenant by name and a dash for an empty value") {
  const auto table = audit_table({decision(1790000000123, "", "job-1", "ACCEPTED"),
                                  decision(1790000001000, "acme", "j2", "REJECTED", "unknown queue 'nope'\n(known: default)")});
  CHECK(table ==
        "AT                        TENANT   ACTION  JOB    OUTCOME   REASON                                 COMPONENT   SOURCE\n"
        "2026-09-21T14:13:20.123Z  default  submit  job-1  ACCEPTED  -                                      dispatcher  "
        "kcron.jobs/3@41\n"
        "2026-09-21T14:13:21.000Z  acme     submit  j2     REJECTED  unknown queue 'nope' (known: default)  dispatcher  "
        "kcron.jobs/3@41\n");
}

TEST_CASE("an empty audit table is its header line") {
  CHECK(audit_table({}) == "AT  TENANT  ACTION  JOB  OUTCOME  REASON  COMPONENT  SOURCE\n");
}

TEST_CASE("the JSON form is one canonical AuditRecord per line") {
  const auto lines = audit_json_lines({decision(7, "acme", "j1", "ACCEPTED"), decision(8, "", "j2", "REJECTED", "no")});
  const auto newline = lines.find('\n');
  REQUIRE(newline != std::string::npos);
  CHECK(lines.substr(0, newline) == to_json(decision(7, "acme", "j1", "ACCEPTED")));
  v1::AuditRecord second;
  REQUIRE(decode_message(lines.substr(newline + 1, lines.size() - newline - 2), "application/json", second).ok());
  CHECK(second.job_id() == "j2");
  CHECK(second.reason() == "no");
  CHECK(lines.back() == '\n');
}

TEST_CASE("the notice of a cut output says how many were shown of how many matched") {
  CHECK(audit_cut_notice(1000, 5234) ==
        "showing the newest 1000 of 5234 matching decisions (--max 0 shows all; --since, --tenant, --job or --outcome narrow "
        "them)");
}
