#include "core/job_view.h"

#include <string>

#include "kcron/tenant.h"

namespace kcron::api {
namespace {

void name_job(v1::JobView& view, std::string_view tenant, std::string_view id) {
  if (view.id().empty()) view.set_id(std::string(id));
  if (view.tenant().empty()) view.set_tenant(std::string(tenant_or_default(tenant)));
}

void add_transition(v1::JobView& view, const v1::StatusRecord& status) {
  auto& history = *view.mutable_history();
  if (static_cast<std::size_t>(history.size()) >= kMaxTransitions) history.DeleteSubrange(1, 1);  // keep the first
  auto* transition = history.Add();
  transition->set_state(status.state());
  transition->set_attempt(status.attempt());
  transition->set_at_ms(status.at_ms());
  transition->set_reason(status.reason());
  transition->set_component(status.component());
}

}  // namespace

bool is_terminal(v1::JobState state) {
  switch (state) {
    case v1::SUCCEEDED:
    case v1::DEAD:
    case v1::CANCELLED:
    case v1::SKIPPED:
    case v1::REJECTED:
    case v1::UPSTREAM_FAILED:
      return true;
    default:
      return false;
  }
}

void fold_definition(v1::JobView& view, const v1::Job& job, std::int64_t record_ms, std::string_view source, bool update) {
  name_job(view, job.tenant(), job.id());
  if (!update && view.source().empty()) {
    // The submit record is the same on every instance: its time is the job's submit time even
    // when another record of the job was read first, so keyset page tokens mean the same
    // everywhere. Only a submit sets `source`.
    view.set_submitted_ms(record_ms);
    view.set_source(std::string(source));
  } else if (!view.has_job() && view.submitted_ms() == 0) {
    view.set_submitted_ms(record_ms);
  }
  *view.mutable_job() = job;
  view.mutable_job()->clear_history();  // the results carry them
  view.set_queue(job.queue().empty() ? "default" : job.queue());
  *view.mutable_labels() = job.labels();
  view.set_schedule_id(job.has_schedule_run() ? job.schedule_run().schedule_id() : "");
  if (!job.submitted_by().empty()) view.set_submitted_by(job.submitted_by());
  if (view.updated_ms() < record_ms) view.set_updated_ms(record_ms);
}

bool fold_status(v1::JobView& view, const v1::StatusRecord& status) {
  name_job(view, status.tenant(), status.job_id());
  const bool same = status.attempt() == view.attempt() && status.sequence() == view.sequence();
  const bool newer = status.attempt() > view.attempt() ||
                     (status.attempt() == view.attempt() && status.sequence() > view.sequence()) ||
                     view.state() == v1::JOB_STATE_UNSPECIFIED;
  // The record a changelog entry stood in for: it replaces the provisional transition.
  const bool confirms = same && !view.history().empty() && view.history().rbegin()->component() == kChangelogComponent &&
                        status.component() != kChangelogComponent;
  if (!newer && !confirms) return false;
  view.set_state(status.state());
  view.set_attempt(status.attempt());
  view.set_sequence(status.sequence());
  view.set_reason(status.reason());
  if (status.due_ms() != 0) view.set_due_ms(status.due_ms());
  if (view.submitted_ms() == 0) view.set_submitted_ms(status.at_ms());  // its submit record is gone or not read yet
  if (view.updated_ms() < status.at_ms()) view.set_updated_ms(status.at_ms());
  if (confirms) view.mutable_history()->RemoveLast();
  add_transition(view, status);
  return true;
}

bool changelog_entry_may_apply(const v1::DispatcherEntry& entry, std::int64_t record_ms, std::int64_t now_ms) {
  switch (entry.state()) {
    case v1::DispatcherEntry::PENDING:
      return changelog_entry_creates(entry);
    case v1::DispatcherEntry::FIRED:
    case v1::DispatcherEntry::CANCELLED:
    case v1::DispatcherEntry::DEAD:
    case v1::DispatcherEntry::SKIPPED:
      return record_ms <= now_ms - kChangelogSettledMs;
    default:
      return false;
  }
}

bool changelog_entry_creates(const v1::DispatcherEntry& entry) {
  return entry.state() == v1::DispatcherEntry::PENDING && entry.has_job() && !entry.job().id().empty();
}

bool fold_changelog_entry(v1::JobView& view, const v1::DispatcherEntry& entry, std::int64_t record_ms, std::string_view source,
                          std::int64_t now_ms) {
  v1::StatusRecord status;
  status.set_job_id(view.id());
  status.set_tenant(view.tenant());
  status.set_attempt(entry.attempt());
  status.set_sequence(entry.sequence());
  status.set_at_ms(record_ms);
  status.set_due_ms(entry.due_ms());
  status.set_component(std::string(kChangelogComponent));
  const bool newer =
      entry.attempt() > view.attempt() || (entry.attempt() == view.attempt() && entry.sequence() > view.sequence());
  switch (entry.state()) {
    case v1::DispatcherEntry::PENDING:
      if (!changelog_entry_creates(entry)) return false;
      if (view.state() != v1::JOB_STATE_UNSPECIFIED && !newer) return false;
      // The entry holds the definition as it will fire: a later update than any the view read.
      // Not a submit: the job's submit record, if the view reads it, still sets its submit time.
      fold_definition(view, entry.job(), record_ms, source, true);
      status.set_state(entry.attempt() > 0 ? v1::RETRYING : v1::PENDING);
      break;
    case v1::DispatcherEntry::FIRED:
    case v1::DispatcherEntry::CANCELLED:
    case v1::DispatcherEntry::DEAD:
    case v1::DispatcherEntry::SKIPPED:
      // Only moves on a job the view holds as waiting, and only what the status topic may have
      // lost by now: it says the rest, with reasons.
      if (view.state() != v1::PENDING && view.state() != v1::RETRYING) return false;
      if (record_ms > now_ms - kChangelogSettledMs) return false;
      if (!newer) return false;
      status.set_state(entry.state() == v1::DispatcherEntry::FIRED       ? v1::QUEUED
                       : entry.state() == v1::DispatcherEntry::CANCELLED ? v1::CANCELLED
                       : entry.state() == v1::DispatcherEntry::DEAD      ? v1::DEAD
                                                                         : v1::SKIPPED);
      break;
    default:
      return false;
  }
  return fold_status(view, status);
}

bool fold_result(v1::JobView& view, const v1::Result& result) {
  name_job(view, result.tenant(), result.job_id());
  if (view.has_result() && view.result().attempt() > result.attempt()) return false;
  *view.mutable_result() = result;
  if (view.updated_ms() < result.finished_ms()) view.set_updated_ms(result.finished_ms());
  if (view.submitted_ms() == 0) view.set_submitted_ms(result.started_ms());
  return true;
}

}  // namespace kcron::api
