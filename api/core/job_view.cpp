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
      return true;
    default:
      return false;
  }
}

void fold_definition(v1::JobView& view, const v1::Job& job, std::int64_t record_ms, std::string_view source, bool update) {
  name_job(view, job.tenant(), job.id());
  if (!update || !view.has_job()) {
    if (view.submitted_ms() == 0) {
      view.set_submitted_ms(record_ms);
      view.set_source(std::string(source));
    }
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
  const bool newer = status.attempt() > view.attempt() ||
                     (status.attempt() == view.attempt() && status.sequence() > view.sequence()) ||
                     view.state() == v1::JOB_STATE_UNSPECIFIED;
  if (!newer) return false;
  view.set_state(status.state());
  view.set_attempt(status.attempt());
  view.set_sequence(status.sequence());
  view.set_reason(status.reason());
  if (status.due_ms() != 0) view.set_due_ms(status.due_ms());
  if (view.submitted_ms() == 0) view.set_submitted_ms(status.at_ms());  // its submit record is gone or not read yet
  if (view.updated_ms() < status.at_ms()) view.set_updated_ms(status.at_ms());
  add_transition(view, status);
  return true;
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
