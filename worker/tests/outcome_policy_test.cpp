// The worker README's table "Outcome of an attempt -> records", row by row, plus the stop-reason
// mapping and the reduced form of an outcome that cannot be published in full.
#include "core/outcome_policy.h"

#include <algorithm>
#include <catch2/catch.hpp>

#include "kcron/codec.h"

using namespace kcron;
using namespace kcron::worker;
using std::chrono::milliseconds;

namespace {

const Instant kStarted = instant_from_ms(1'700'000'000'000);
const Instant kFinished = kStarted + milliseconds(250);

OutcomeSettings settings() {
  OutcomeSettings settings;
  settings.names = TopicNames("t.");
  settings.worker_id = "w-1";
  settings.exec_partitions = 4;
  settings.max_history = 2;
  settings.default_backoff = {milliseconds(1000), 2.0, milliseconds(60000), false};
  settings.emit_events = true;  // the status + events rows of the table; a test below turns them off
  return settings;
}

Attempt attempt_of(v1::Job job, Outcome outcome) {
  Attempt attempt;
  attempt.source = {"t.exec.default.normal", 6, 42};
  *attempt.execution.mutable_job() = std::move(job);
  attempt.execution.set_due_ms(to_epoch_ms(kStarted) - 5);
  attempt.started = kStarted;
  attempt.finished = kFinished;
  attempt.outcome = std::move(outcome);
  return attempt;
}

v1::Job job_with(std::uint32_t max_retries, std::uint32_t attempt = 0) {
  v1::Job job;
  job.set_id("job-1");
  job.set_tenant("acme");
  job.mutable_noop();
  job.set_attempt(attempt);
  job.mutable_retry()->set_max_retries(max_retries);
  return job;
}

std::vector<std::string> topics_of(const std::vector<OutRecord>& records) {
  std::vector<std::string> topics;
  for (const auto& record : records) topics.push_back(record.topic);
  return topics;
}

bool has_type(const OutRecord& record, std::string_view type) {
  return type.empty() || std::any_of(record.headers.begin(), record.headers.end(),
                                     [&](const auto& entry) { return entry.first == header::kType && entry.second == type; });
}

std::size_t count_of(const std::vector<OutRecord>& records, const std::string& topic, std::string_view type = {}) {
  return static_cast<std::size_t>(std::count_if(
      records.begin(), records.end(), [&](const OutRecord& record) { return record.topic == topic && has_type(record, type); }));
}

const OutRecord& only(const std::vector<OutRecord>& records, const std::string& topic, std::string_view type = {}) {
  const OutRecord* found = nullptr;
  for (const auto& record : records) {
    if (record.topic != topic || !has_type(record, type)) continue;
    REQUIRE(found == nullptr);
    found = &record;
  }
  REQUIRE(found != nullptr);
  return *found;
}

std::string header_of(const OutRecord& record, std::string_view name) {
  for (const auto& [key, value] : record.headers) {
    if (key == name) return value;
  }
  return "<none>";
}

template <typename Message>
Message decoded(const OutRecord& record) {
  Message message;
  REQUIRE(message.ParseFromString(record.value));
  return message;
}

// Decides and publishes an attempt as the loop does.
std::vector<OutRecord> publish(const OutcomePolicy& policy, Attempt& attempt, double draw = 0.5) {
  attempt.verdict = policy.decide(attempt.execution.job(), attempt.outcome, draw);
  return policy.publish(attempt);
}

}  // namespace

TEST_CASE("a succeeded attempt publishes its result, status, event and done marker, and nothing else") {
  const OutcomePolicy policy(settings());
  Outcome outcome;
  outcome.output = "hello";
  auto attempt = attempt_of(job_with(3), outcome);
  const auto records = publish(policy, attempt);
  CHECK(topics_of(records) == std::vector<std::string>{"t.results", "t.events", "t.status", "t.worker-done"});

  const auto& result_record = only(records, "t.results");
  CHECK(result_record.key == "acme~job-1");  // the tenant-scoped key
  CHECK(result_record.partition == -1);      // the producer's murmur2 of the key
  CHECK(header_of(result_record, "kcron-type") == "result");
  CHECK(header_of(result_record, "kcron-job-id") == "job-1");
  CHECK(header_of(result_record, "kcron-tenant") == "acme");
  CHECK(header_of(result_record, "kcron-status") == "SUCCEEDED");
  CHECK(header_of(only(records, "t.status"), "kcron-status") == "SUCCEEDED");
  CHECK(header_of(only(records, "t.worker-done"), "kcron-status") == "SUCCEEDED");
  const auto result = decoded<v1::Result>(result_record);
  CHECK(result.state() == v1::SUCCEEDED);
  CHECK(result.output() == "hello");
  CHECK(result.started_ms() == to_epoch_ms(kStarted));
  CHECK(result.finished_ms() == to_epoch_ms(kFinished));
  CHECK(result.worker_id() == "w-1");
  CHECK(result.tenant() == "acme");
  CHECK_FALSE(result.retriable());

  const auto status = decoded<v1::StatusRecord>(only(records, "t.status"));
  CHECK(status.state() == v1::SUCCEEDED);
  CHECK(status.sequence() == kWorkerSequence);
  CHECK(status.at_ms() == to_epoch_ms(kFinished));
  CHECK(status.component() == "worker");
  CHECK(only(records, "t.events").value == only(records, "t.status").value);
}

TEST_CASE("the done marker goes to the exec partition's worker-done partition, keyed by the scoped key and attempt") {
  const OutcomePolicy policy(settings());
  auto attempt = attempt_of(job_with(3, 2), {});
  const auto records = publish(policy, attempt);
  const auto& marker_record = only(records, "t.worker-done");
  CHECK(marker_record.partition == 6 % 4);
  CHECK(marker_record.key == "acme~job-1#2");
  const auto marker = decoded<v1::DoneMarker>(marker_record);
  CHECK(marker.exec_topic() == "t.exec.default.normal");
  CHECK(marker.exec_partition() == 6);
  CHECK(marker.exec_offset() == 42);
}

TEST_CASE("events are not written when they are turned off") {
  auto no_events = settings();
  no_events.emit_events = false;
  const OutcomePolicy policy(no_events);
  auto attempt = attempt_of(job_with(0), {});
  CHECK(topics_of(publish(policy, attempt)) == std::vector<std::string>{"t.results", "t.status", "t.worker-done"});
}

TEST_CASE("a succeeded kafka job also writes its record to the target topic, with only kcron's id and tenant headers") {
  const OutcomePolicy policy(settings());
  auto job = job_with(0);
  job.mutable_kafka()->set_topic("orders");
  job.mutable_kafka()->set_key("k");
  job.mutable_kafka()->set_value("v");
  auto attempt = attempt_of(job, {});
  const auto records = publish(policy, attempt);
  const auto& record = only(records, "orders");
  CHECK(record.key == "k");
  CHECK(record.value == "v");
  CHECK(record.headers == std::vector<std::pair<std::string, std::string>>{
                              {"kcron-type", "kafka-job"}, {"kcron-job-id", "job-1"}, {"kcron-tenant", "acme"}});
}

TEST_CASE("a succeeded schedule run tells its schedule's dispatcher partition with a Completion") {
  const OutcomePolicy policy(settings());
  auto job = job_with(0);
  job.set_id("nightly@1700000000000");
  job.mutable_schedule_run()->set_schedule_id("nightly");
  auto attempt = attempt_of(job, {});
  const auto records = publish(policy, attempt);
  const auto& record = only(records, "t.jobs", "completion");
  CHECK(record.key == "acme~nightly");
  const auto command = decoded<v1::Command>(record);
  CHECK(command.completion().job_id() == "nightly@1700000000000");
  CHECK(command.completion().state() == v1::SUCCEEDED);
}

TEST_CASE("a flow node's ending, succeeded or cancelled, goes to its flow's partition with its output, or its size when large") {
  const OutcomePolicy policy(settings());
  auto job = job_with(0);
  job.set_id("etl/extract");
  job.mutable_flow()->set_id("etl");
  job.mutable_flow()->set_node("extract");
  auto attempt = attempt_of(job, {});
  attempt.outcome.output = "rows=42";
  auto records = publish(policy, attempt);
  const auto& record = only(records, "t.jobs", "completion");
  CHECK(record.key == "acme~etl");
  auto command = decoded<v1::Command>(record);
  CHECK(command.completion().job_id() == "etl/extract");
  CHECK(command.completion().state() == v1::SUCCEEDED);
  CHECK(command.completion().output() == "rows=42");
  CHECK(command.completion().output_size() == 7);

  auto large = attempt_of(job, {});
  large.outcome.output = std::string(kFlowOutputBytes + 1, 'x');
  records = publish(policy, large);
  command = decoded<v1::Command>(only(records, "t.jobs", "completion"));
  CHECK(command.completion().output().empty());
  CHECK(command.completion().output_size() == kFlowOutputBytes + 1);

  auto cancelled = attempt_of(job, cancelled_before_start("flow cancelled"));
  records = publish(policy, cancelled);
  CHECK(decoded<v1::Command>(only(records, "t.jobs", "completion")).completion().state() == v1::CANCELLED);
}

TEST_CASE("a retriable failure with retries left goes back as a Retry due after the backoff, carrying its history") {
  const OutcomePolicy policy(settings());
  auto job = job_with(3, 1);
  for (int earlier = 0; earlier < 2; ++earlier) job.add_history()->set_error(fmt::format("earlier {}", earlier));
  auto attempt = attempt_of(job, failed(std::string(5000, 'e')));
  attempt.outcome.output = std::string(3000, 'o');
  const auto records = publish(policy, attempt);
  CHECK(attempt.verdict.final_state == v1::FAILED);

  const auto result = decoded<v1::Result>(only(records, "t.results"));
  CHECK(result.state() == v1::FAILED);
  CHECK(result.retriable());
  CHECK(decoded<v1::StatusRecord>(only(records, "t.status")).state() == v1::FAILED);

  const auto& record = only(records, "t.jobs", "retry");
  CHECK(record.key == "acme~job-1");
  const auto retry = decoded<v1::Command>(record).retry();
  CHECK(retry.job().attempt() == 2);
  // attempt 1 failed: the second retry waits initial * multiplier = 2 s after the finish.
  CHECK(retry.due_ms() == to_epoch_ms(kFinished) + 2000);
  // At most max_history earlier results, the newest last, each cut to 1 KiB.
  REQUIRE(retry.job().history_size() == 2);
  CHECK(retry.job().history(0).error() == "earlier 1");
  CHECK(retry.job().history(1).error().size() == kHistoryTextBytes + 3);
  CHECK(retry.job().history(1).output().size() == kHistoryTextBytes + 3);
  CHECK(retry.error().size() == kHistoryTextBytes + 3);
  CHECK(count_of(records, "t.dead-letters") == 0);
}

TEST_CASE("backoff fields a job sets override the worker's defaults, and full jitter uses the draw") {
  const OutcomePolicy policy(settings());
  auto job = job_with(5, 0);
  job.mutable_retry()->mutable_initial_backoff()->set_seconds(10);
  job.mutable_retry()->set_full_jitter(true);
  const auto verdict = policy.decide(job, failed("boom"), 0.25);
  CHECK(verdict.final_state == v1::FAILED);
  CHECK(verdict.retry.delay == milliseconds(2500));
}

TEST_CASE("a failure on the last attempt is DEAD: a dead letter with the history, and a Completion so it can be replayed") {
  const OutcomePolicy policy(settings());
  auto job = job_with(1, 1);
  job.add_history()->set_error("first try");
  auto attempt = attempt_of(job, failed("second try"));
  const auto records = publish(policy, attempt);
  CHECK(attempt.verdict.final_state == v1::DEAD);

  const auto status = decoded<v1::StatusRecord>(only(records, "t.status"));
  CHECK(status.state() == v1::DEAD);
  CHECK(status.reason() == "second try (1 retries used)");

  CHECK(header_of(only(records, "t.dead-letters"), "kcron-status") == "DEAD");
  CHECK(header_of(only(records, "t.results"), "kcron-status") == "FAILED");
  const auto letter = decoded<v1::DeadLetter>(only(records, "t.dead-letters"));
  CHECK(letter.state() == v1::DEAD);
  CHECK(letter.reason() == "attempt 1 failed: second try; dead because 1 retries used");
  CHECK(letter.job().history_size() == 0);
  REQUIRE(letter.history_size() == 2);
  CHECK(letter.history(0).error() == "first try");
  CHECK(letter.history(1).error() == "second try");
  CHECK(letter.source_topic() == "t.exec.default.normal");
  CHECK(letter.source_offset() == 42);

  const auto completion = decoded<v1::Command>(only(records, "t.jobs", "completion")).completion();
  CHECK(completion.state() == v1::DEAD);
  CHECK(count_of(records, "t.jobs", "retry") == 0);
}

TEST_CASE("a failure that is not retriable is DEAD at once, its retries unused") {
  const OutcomePolicy policy(settings());
  auto attempt = attempt_of(job_with(5), failed("program not allowed", false));
  const auto records = publish(policy, attempt);
  CHECK(attempt.verdict.final_state == v1::DEAD);
  CHECK(decoded<v1::DeadLetter>(only(records, "t.dead-letters")).reason() ==
        "attempt 0 failed: program not allowed; dead because the failure is not retriable");
  CHECK_FALSE(decoded<v1::Result>(only(records, "t.results")).retriable());
}

TEST_CASE("a cancelled attempt is CANCELLED, never retried, and a plain job sends no Completion") {
  const OutcomePolicy policy(settings());
  auto attempt = attempt_of(job_with(5), after_stop(failed("killed by SIGTERM"), StopReason::kCancel, milliseconds(0), "by ops"));
  const auto records = publish(policy, attempt);
  CHECK(attempt.verdict.final_state == v1::CANCELLED);
  CHECK(decoded<v1::Result>(only(records, "t.results")).error() == "cancelled: by ops");
  CHECK(topics_of(records) == std::vector<std::string>{"t.results", "t.events", "t.status", "t.worker-done"});
}

TEST_CASE("a cancelled schedule run tells its schedule's dispatcher partition, so overlap lets the next run through") {
  const OutcomePolicy policy(settings());
  auto job = job_with(0);
  job.set_id("nightly@1700000000000");
  job.mutable_schedule_run()->set_schedule_id("nightly");
  auto attempt = attempt_of(job, after_stop(failed("stopped"), StopReason::kCancel, milliseconds(0), ""));
  const auto records = publish(policy, attempt);
  const auto& record = only(records, "t.jobs", "completion");
  CHECK(record.key == "acme~nightly");
  CHECK(decoded<v1::Command>(record).completion().state() == v1::CANCELLED);
}

TEST_CASE("a job cancelled before a slot took it says so, with the cancel's reason") {
  CHECK(cancelled_before_start("").error == "cancelled before it started");
  CHECK(cancelled_before_start("by ops").error == "cancelled before it started: by ops");
  CHECK(cancelled_before_start("").state == v1::CANCELLED);
}

TEST_CASE("a timeout turns a failure into a retriable FAILED that says so, and a success that beat it stands") {
  const auto timed_out = after_stop(failed("interrupted", false), StopReason::kTimeout, milliseconds(1500), "");
  CHECK(timed_out.state == v1::FAILED);
  CHECK(timed_out.retriable);
  CHECK(timed_out.error == "timed out after 1500 ms; interrupted");
  CHECK(after_stop(Outcome{}, StopReason::kTimeout, milliseconds(1500), "").state == v1::SUCCEEDED);
  CHECK(after_stop(Outcome{}, StopReason::kCancel, milliseconds(0), "").state == v1::SUCCEEDED);
  CHECK(after_stop(failed("x"), StopReason::kNone, milliseconds(0), "").error == "x");
  // A shut-down attempt is handed back, not published: its outcome is left as the slot gave it.
  CHECK(after_stop(failed("x"), StopReason::kShutdown, milliseconds(0), "").error == "x");
}

TEST_CASE("an attempt's timeout is the job's own, else the worker's default") {
  auto job = job_with(0);
  CHECK(attempt_timeout(job, milliseconds(7000)) == milliseconds(7000));
  job.mutable_timeout()->set_seconds(3);
  job.mutable_timeout()->set_nanos(500'000'000);
  CHECK(attempt_timeout(job, milliseconds(7000)) == milliseconds(3500));
  job.mutable_timeout()->set_seconds(-1);
  CHECK(attempt_timeout(job, milliseconds(7000)) == milliseconds(7000));
}

TEST_CASE("an outcome with a record over the broker's limit is published reduced: DEAD with the reason, without its output") {
  const OutcomePolicy policy(settings());
  Outcome outcome = failed("boom", true);
  outcome.output = std::string(kMaxPublishedRecordBytes + 1, 'x');
  auto attempt = attempt_of(job_with(0), outcome);
  const auto records = publish(policy, attempt);
  CHECK(attempt.reduced);
  CHECK(policy.publishable(records));
  CHECK(policy.publish(attempt) == records);  // reduced once: publishing again gives the same records
  const auto result = decoded<v1::Result>(only(records, "t.results"));
  CHECK(result.output().empty());
  CHECK_FALSE(result.retriable());
  CHECK_THAT(result.error(), Catch::StartsWith("its outcome could not be published in full"));
  CHECK(decoded<v1::StatusRecord>(only(records, "t.status")).state() == v1::DEAD);
  CHECK(decoded<v1::DeadLetter>(only(records, "t.dead-letters")).reason() ==
        "attempt 0 failed: its outcome could not be published in full (too large or refused by the broker): boom; dead "
        "because its outcome could not be published in full");
}

TEST_CASE("a reduced plain job that succeeded stays SUCCEEDED, a reduced kafka job is DEAD without its record") {
  const OutcomePolicy policy(settings());
  auto plain = attempt_of(job_with(0), {});
  plain.verdict = policy.decide(plain.execution.job(), plain.outcome, 0.5);
  plain.reduced = true;
  CHECK(decoded<v1::StatusRecord>(only(policy.records(plain), "t.status")).state() == v1::SUCCEEDED);

  auto job = job_with(0);
  job.mutable_kafka()->set_topic("orders");
  job.mutable_kafka()->set_value("v");
  auto kafka = attempt_of(job, {});
  kafka.verdict = policy.decide(kafka.execution.job(), kafka.outcome, 0.5);
  kafka.reduced = true;
  const auto records = policy.records(kafka);
  CHECK(decoded<v1::StatusRecord>(only(records, "t.status")).state() == v1::DEAD);
  CHECK(std::none_of(records.begin(), records.end(), [](const OutRecord& record) { return record.topic == "orders"; }));
}

TEST_CASE("a retry over the dispatcher's input limit is not sent: the attempt is published reduced and DEAD") {
  const OutcomePolicy policy(settings());
  auto job = job_with(3);
  job.set_payload(std::string(kMaxJobsRecordBytes, 'p'));
  auto attempt = attempt_of(job, failed("boom"));
  const auto records = publish(policy, attempt);
  CHECK(attempt.reduced);
  CHECK(count_of(records, "t.jobs", "retry") == 0);
  CHECK(decoded<v1::StatusRecord>(only(records, "t.status")).state() == v1::DEAD);
}

TEST_CASE("after repeated aborts outcomes are published one at a time, then the lone one reduced, then the worker gives up") {
  CHECK(plan_publication(0, 7).outcomes == 7);
  CHECK(plan_publication(kIsolateAfterAborts - 1, 7).outcomes == 7);
  CHECK(plan_publication(kIsolateAfterAborts, 7).outcomes == 1);
  CHECK_FALSE(plan_publication(kIsolateAfterAborts, 7).reduce_first);
  CHECK(plan_publication(kReduceAfterAborts, 7).reduce_first);
  CHECK(plan_publication(kReduceAfterAborts, 0).outcomes == 0);
  CHECK_FALSE(plan_publication(kReduceAfterAborts, 0).reduce_first);
  CHECK_FALSE(give_up_after(kGiveUpAfterAborts));
  CHECK(give_up_after(kGiveUpAfterAborts + 1));
}

TEST_CASE("a default-tenant job's records keep bare keys and carry no tenant header") {
  const OutcomePolicy policy(settings());
  auto job = job_with(0, 1);
  job.clear_tenant();
  auto attempt = attempt_of(job, failed("boom"));
  const auto records = publish(policy, attempt);
  for (const auto& record : records) {
    INFO(record.topic);
    CHECK(header_of(record, "kcron-tenant") == "<none>");
  }
  CHECK(only(records, "t.results").key == "job-1");
  CHECK(only(records, "t.status").key == "job-1");
  CHECK(only(records, "t.dead-letters").key == "job-1");
  CHECK(only(records, "t.worker-done").key == "job-1#1");
  CHECK(only(records, "t.jobs", "completion").key == "job-1");
  CHECK(decoded<v1::Command>(only(records, "t.jobs", "completion")).completion().tenant().empty());
}

TEST_CASE("a tenant's DEAD job tells its dispatcher partition with the tenant, and its dead letter says whose it is") {
  const OutcomePolicy policy(settings());
  auto attempt = attempt_of(job_with(0), failed("boom"));
  const auto records = publish(policy, attempt);
  const auto& completion = only(records, "t.jobs", "completion");
  CHECK(completion.key == "acme~job-1");
  CHECK(decoded<v1::Command>(completion).completion().tenant() == "acme");
  const auto& letter = only(records, "t.dead-letters");
  CHECK(letter.key == "acme~job-1");
  CHECK(decoded<v1::DeadLetter>(letter).tenant() == "acme");
  CHECK(decoded<v1::DoneMarker>(only(records, "t.worker-done")).tenant() == "acme");
}

TEST_CASE("a result names the exec record it came from, and doubles as the done marker once markers are off") {
  auto settings_without_markers = settings();
  settings_without_markers.done_markers = false;
  settings_without_markers.emit_events = false;
  const OutcomePolicy policy(settings_without_markers);
  auto attempt = attempt_of(job_with(0), {});
  const auto records = publish(policy, attempt);
  CHECK(topics_of(records) == std::vector<std::string>{"t.results", "t.status"});
  const auto result = decoded<v1::Result>(records[0]);
  CHECK(result.exec_topic() == "t.exec.default.normal");
  CHECK(result.exec_partition() == 6);
  CHECK(result.exec_offset() == 42);
}

TEST_CASE("a retried job's history does not carry the done-marker fields of its earlier results") {
  const OutcomePolicy policy(settings());
  auto attempt = attempt_of(job_with(3), failed("boom"));
  const auto records = publish(policy, attempt);
  const auto retry =
      std::find_if(records.begin(), records.end(), [](const OutRecord& record) { return record.topic == "t.jobs"; });
  REQUIRE(retry != records.end());
  const auto command = decoded<v1::Command>(*retry);
  REQUIRE(command.retry().job().history_size() == 1);
  CHECK(command.retry().job().history(0).exec_topic().empty());
  CHECK(command.retry().job().history(0).exec_offset() == 0);
}
