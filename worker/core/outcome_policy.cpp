#include "core/outcome_policy.h"

#include <fmt/format.h>

#include <algorithm>
#include <optional>

#include "kcron/codec.h"
#include "kcron/records.h"
#include "kcron/routing.h"
#include "kcron/tenant.h"

namespace kcron::worker {
namespace {

std::int64_t duration_ms(const google::protobuf::Duration& duration) {
  constexpr std::int64_t kMaxSeconds = 315'576'000'000;  // protobuf's Duration range (10,000 years)
  return std::clamp<std::int64_t>(duration.seconds(), -kMaxSeconds, kMaxSeconds) * 1000 + duration.nanos() / 1'000'000;
}

std::string bounded(const std::string& text, std::size_t limit) {
  return text.size() <= limit ? text : text.substr(0, limit) + "...";
}

// A kafka job's record carries the user's bytes and only kcron's id headers (no content-type).
std::vector<std::pair<std::string, std::string>> kafka_job_headers(const v1::Job& job) {
  std::vector<std::pair<std::string, std::string>> headers = {{std::string(header::kType), "kafka-job"},
                                                              {std::string(header::kJobId), job.id()}};
  if (!is_default_tenant(job.tenant())) headers.emplace_back(header::kTenant, job.tenant());
  return headers;
}

// What the dispatcher counts of a record on the jobs topic: key, value and the two headers it reads.
std::size_t jobs_record_bytes(const OutRecord& record) {
  std::size_t bytes = record.key.size() + record.value.size();
  for (const auto& [name, value] : record.headers) {
    if (name == header::kContentType || name == header::kType) bytes += value.size();
  }
  return bytes;
}

}  // namespace

Millis attempt_timeout(const v1::Job& job, Millis default_timeout) {
  if (job.has_timeout() && duration_ms(job.timeout()) > 0) return Millis(duration_ms(job.timeout()));
  return default_timeout;
}

Outcome after_stop(Outcome outcome, StopReason reason, Millis timeout, std::string_view cancel_reason) {
  if (outcome.state == v1::SUCCEEDED) return outcome;
  if (reason == StopReason::kTimeout) {
    outcome.state = v1::FAILED;
    outcome.retriable = true;
    outcome.error = fmt::format("timed out after {} ms{}", timeout.count(), outcome.error.empty() ? "" : "; " + outcome.error);
  } else if (reason == StopReason::kCancel) {
    outcome.state = v1::CANCELLED;
    outcome.error = cancel_reason.empty() ? "cancelled while running" : fmt::format("cancelled: {}", cancel_reason);
  }
  return outcome;
}

Outcome cancelled_before_start(std::string_view reason) {
  Outcome outcome;
  outcome.state = v1::CANCELLED;
  outcome.error = reason.empty() ? "cancelled before it started" : fmt::format("cancelled before it started: {}", reason);
  return outcome;
}

OutcomePolicy::OutcomePolicy(OutcomeSettings settings) : settings_(std::move(settings)) {}

Verdict OutcomePolicy::decide(const v1::Job& job, const Outcome& outcome, double unit_random) const {
  Verdict verdict;
  verdict.final_state = outcome.state;
  if (outcome.state != v1::FAILED) return verdict;
  Backoff backoff = settings_.default_backoff;
  if (job.retry().has_initial_backoff()) backoff.initial = Millis(duration_ms(job.retry().initial_backoff()));
  if (job.retry().multiplier() > 0) backoff.multiplier = job.retry().multiplier();
  if (job.retry().has_max_backoff()) backoff.max = Millis(duration_ms(job.retry().max_backoff()));
  backoff.full_jitter = job.retry().full_jitter();
  verdict.retry = decide_retry(backoff, job.retry().max_retries(), job.attempt(), outcome.retriable, unit_random);
  verdict.final_state = verdict.retry.retry ? v1::FAILED : v1::DEAD;
  return verdict;
}

bool OutcomePolicy::publishable(const std::vector<OutRecord>& records) const {
  return std::none_of(records.begin(), records.end(), [this](const OutRecord& record) {
    if (record.topic == settings_.names.jobs()) return jobs_record_bytes(record) > kMaxJobsRecordBytes;
    return record.key.size() + record.value.size() > kMaxPublishedRecordBytes;
  });
}

std::vector<OutRecord> OutcomePolicy::publish(Attempt& attempt) const {
  auto out = records(attempt);
  if (attempt.reduced || publishable(out)) return out;
  attempt.reduced = true;
  return records(attempt);
}

Attempt OutcomePolicy::reduced_form(const Attempt& original) const {
  Attempt reduced = original;
  auto* job = reduced.execution.mutable_job();
  job->clear_history();
  job->clear_payload();
  if (job->has_kafka()) job->mutable_kafka()->clear_value();
  if (job->has_http()) job->mutable_http()->clear_body();
  reduced.outcome.output.clear();
  reduced.outcome.error = "its outcome could not be published in full (too large or refused by the broker): " +
                          bounded(original.outcome.error, kHistoryTextBytes);
  // A kafka job whose record could not be written did not succeed.
  const bool succeeded = original.verdict.final_state == v1::SUCCEEDED && !original.execution.job().has_kafka();
  reduced.verdict.final_state = succeeded ? v1::SUCCEEDED : v1::DEAD;
  if (!succeeded) {
    reduced.outcome.state = v1::FAILED;
    reduced.outcome.retriable = false;  // DEAD: its result must not say it would be retried
  }
  reduced.verdict.retry = {false, {}, "its outcome could not be published in full"};
  return reduced;
}

std::vector<OutRecord> OutcomePolicy::records(const Attempt& original) const {
  const std::optional<Attempt> reduced = original.reduced ? std::optional(reduced_form(original)) : std::nullopt;
  const Attempt& attempt = reduced ? *reduced : original;
  const auto& job = attempt.execution.job();
  const auto& names = settings_.names;
  const auto state = attempt.verdict.final_state;
  const std::int64_t started_ms = to_epoch_ms(attempt.started);
  const std::int64_t finished_ms = to_epoch_ms(attempt.finished);
  std::vector<OutRecord> out;

  v1::Result result;
  result.set_job_id(job.id());
  result.set_attempt(job.attempt());
  result.set_state(attempt.outcome.state);
  result.set_due_ms(attempt.execution.due_ms());
  result.set_started_ms(started_ms);
  result.set_finished_ms(finished_ms);
  result.set_worker_id(settings_.worker_id);
  result.set_exit_code(attempt.outcome.exit_code);
  result.set_output(attempt.outcome.output);
  result.set_error(attempt.outcome.error);
  result.set_tenant(job.tenant());
  result.set_http_status(attempt.outcome.http_status);
  result.set_retriable(attempt.outcome.state == v1::FAILED && attempt.outcome.retriable);
  result.set_exec_topic(attempt.source.topic);
  result.set_exec_partition(attempt.source.partition);
  result.set_exec_offset(attempt.source.offset);
  for (const auto& object : attempt.outcome.objects) *result.add_objects() = object;
  // Every record is keyed by the job's tenant-scoped key (kcron/tenant.h): (tenant, id) is its identity.
  const std::string key = scoped_key(job.tenant(), job.id());
  const std::string_view tenant = job.tenant();
  auto headers = typed_headers("result", job.id(), tenant);
  headers.emplace_back(header::kStatus, state_name(attempt.outcome.state));
  out.push_back({names.results(), -1, key, encode(result), false, headers});

  std::string reason = attempt.outcome.error;
  if (state == v1::DEAD) reason = fmt::format("{} ({})", attempt.outcome.error, attempt.verdict.retry.reason);
  append_status({.job_id = job.id(),
                 .state = state,
                 .attempt = job.attempt(),
                 .sequence = kWorkerSequence,
                 .at = attempt.finished,
                 .reason = reason,
                 .component = "worker",
                 .due = instant_from_ms(attempt.execution.due_ms()),
                 .tenant = job.tenant()},
                names, settings_.emit_events, out);

  const std::string routing_key = scoped_routing_key(tenant, job.id());
  if (state == v1::FAILED) {
    // Back to the dispatcher, which keeps the next attempt in its delay buckets until due.
    v1::Command command;
    auto* retry = command.mutable_retry();
    *retry->mutable_job() = job;
    retry->mutable_job()->set_attempt(job.attempt() + 1);
    auto* history = retry->mutable_job()->mutable_history();
    auto* earlier = history->Add();
    *earlier = result;
    earlier->clear_exec_topic();  // the done-marker fields say nothing to a later attempt
    earlier->clear_exec_partition();
    earlier->clear_exec_offset();
    earlier->set_output(bounded(result.output(), kHistoryTextBytes));
    earlier->set_error(bounded(result.error(), kHistoryTextBytes));
    while (static_cast<std::size_t>(history->size()) > settings_.max_history) history->DeleteSubrange(0, 1);
    retry->set_due_ms(finished_ms + attempt.verdict.retry.delay.count());
    retry->set_error(bounded(attempt.outcome.error, kHistoryTextBytes));
    out.push_back({names.jobs(), -1, routing_key, encode(command), false, typed_headers("retry", job.id(), tenant)});
  }
  if (state == v1::DEAD) {
    v1::DeadLetter letter;
    letter.set_state(v1::DEAD);
    letter.set_reason(fmt::format("attempt {} failed: {}; dead because {}", job.attempt(), attempt.outcome.error,
                                  attempt.verdict.retry.reason));
    *letter.mutable_job() = job;
    letter.mutable_job()->clear_history();
    *letter.mutable_history() = job.history();
    *letter.add_history() = result;
    letter.set_source_topic(attempt.source.topic);
    letter.set_source_partition(attempt.source.partition);
    letter.set_source_offset(attempt.source.offset);
    letter.set_at_ms(finished_ms);
    letter.set_component("worker");
    letter.set_tenant(std::string(tenant_field(tenant)));
    append_dead_letter(letter, job.id(), names, out);
  }
  if (state == v1::SUCCEEDED && job.has_kafka() && !attempt.reduced) {
    // The user's record: no content-type (the value is the user's bytes).
    out.push_back({job.kafka().topic(), -1, job.kafka().key(), job.kafka().value(), false, kafka_job_headers(job)});
  }
  const bool schedule_run = job.has_schedule_run() && !job.schedule_run().schedule_id().empty();
  const bool flow_node = job.has_flow() && !job.flow().id().empty();
  if (state != v1::FAILED && (schedule_run || flow_node || state == v1::DEAD)) {
    // The dispatcher partition that owns the job (for a schedule run: the schedule; for a flow's
    // node: the flow) learns that it is over: it enforces the overlap policy with it, lets a DEAD
    // job be replayed, and decides the flow node's children.
    v1::Command command;
    command.mutable_completion()->set_job_id(job.id());
    command.mutable_completion()->set_tenant(std::string(tenant_field(tenant)));
    command.mutable_completion()->set_attempt(job.attempt());
    command.mutable_completion()->set_state(state);
    if (flow_node) {
      // The output handed to the node's children: whole up to the bound, else its size only.
      command.mutable_completion()->set_output_size(result.output().size());
      command.mutable_completion()->set_error(bounded(state == v1::DEAD ? reason : attempt.outcome.error, kHistoryTextBytes));
      if (result.output().size() <= kFlowOutputBytes) command.mutable_completion()->set_output(result.output());
    }
    out.push_back({names.jobs(), -1, routing_key, encode(command), false, typed_headers("completion", job.id(), tenant)});
  }

  if (!settings_.done_markers) return out;  // the result above is the done marker
  v1::DoneMarker marker;
  marker.set_job_id(job.id());
  marker.set_attempt(job.attempt());
  marker.set_at_ms(finished_ms);
  marker.set_exec_topic(attempt.source.topic);
  marker.set_exec_partition(attempt.source.partition);
  marker.set_exec_offset(attempt.source.offset);
  marker.set_tenant(std::string(tenant_field(tenant)));
  auto done_headers = typed_headers("done", job.id(), tenant);
  done_headers.emplace_back(header::kStatus, state_name(state));
  out.push_back({names.worker_done(), attempt.source.partition % settings_.exec_partitions,
                 fmt::format("{}#{}", key, job.attempt()), encode(marker), false, std::move(done_headers)});
  return out;
}

PublishPlan plan_publication(int consecutive_aborts, std::size_t waiting_outcomes) {
  PublishPlan plan;
  plan.outcomes = consecutive_aborts >= kIsolateAfterAborts ? std::min<std::size_t>(1, waiting_outcomes) : waiting_outcomes;
  plan.reduce_first = plan.outcomes == 1 && consecutive_aborts >= kReduceAfterAborts;
  return plan;
}

}  // namespace kcron::worker
