#include "core/job_view.h"

#include <catch2/catch.hpp>

namespace {

kcron::v1::StatusRecord status(kcron::v1::JobState state, std::uint32_t attempt, std::uint64_t sequence, std::int64_t at_ms) {
  kcron::v1::StatusRecord record;
  record.set_job_id("j1");
  record.set_tenant("acme");
  record.set_state(state);
  record.set_attempt(attempt);
  record.set_sequence(sequence);
  record.set_at_ms(at_ms);
  return record;
}

kcron::v1::Job job() {
  kcron::v1::Job definition;
  definition.set_id("j1");
  definition.set_tenant("acme");
  definition.set_queue("reports");
  definition.set_submitted_by("alice");
  (*definition.mutable_labels())["team"] = "data";
  definition.mutable_noop();
  return definition;
}

}  // namespace

TEST_CASE("a submit names the job, its queue, labels and submitter, and fixes its submit time") {
  kcron::v1::JobView view;
  kcron::api::fold_definition(view, job(), 1000, "kcron.jobs/3@7", false);
  CHECK(view.id() == "j1");
  CHECK(view.tenant() == "acme");
  CHECK(view.queue() == "reports");
  CHECK(view.submitted_by() == "alice");
  CHECK(view.labels().at("team") == "data");
  CHECK(view.submitted_ms() == 1000);
  CHECK(view.source() == "kcron.jobs/3@7");
  CHECK(view.state() == kcron::v1::JOB_STATE_UNSPECIFIED);
  auto updated = job();
  updated.set_queue("urgent");
  kcron::api::fold_definition(view, updated, 2000, "kcron.jobs/3@9", true);
  CHECK(view.queue() == "urgent");
  CHECK(view.submitted_ms() == 1000);  // the list's order never moves
  CHECK(view.source() == "kcron.jobs/3@7");
}

TEST_CASE("status records apply in (attempt, sequence) order whatever order they arrive in") {
  kcron::v1::JobView view;
  CHECK(kcron::api::fold_status(view, status(kcron::v1::QUEUED, 0, 2, 1100)));
  CHECK(kcron::api::fold_status(view, status(kcron::v1::SUCCEEDED, 0, 4, 1300)));
  CHECK_FALSE(kcron::api::fold_status(view, status(kcron::v1::RUNNING, 0, 3, 1200)));    // late: older
  CHECK_FALSE(kcron::api::fold_status(view, status(kcron::v1::SUCCEEDED, 0, 4, 1300)));  // repeated: a replay after restart
  CHECK(view.state() == kcron::v1::SUCCEEDED);
  CHECK(view.history_size() == 2);
  CHECK(kcron::api::fold_status(view, status(kcron::v1::QUEUED, 1, 1, 1500)));  // replayed: a new attempt
  CHECK(view.state() == kcron::v1::QUEUED);
  CHECK(view.attempt() == 1);
  CHECK(view.updated_ms() == 1500);
}

TEST_CASE("a status before its submit record still makes a job, and the submit fills it in") {
  kcron::v1::JobView view;
  kcron::api::fold_status(view, status(kcron::v1::QUEUED, 0, 1, 1100));
  CHECK(view.id() == "j1");
  CHECK(view.tenant() == "acme");
  CHECK(view.submitted_ms() == 1100);
  kcron::api::fold_definition(view, job(), 1000, "kcron.jobs/0@1", false);
  CHECK(view.state() == kcron::v1::QUEUED);
  CHECK(view.submitted_ms() == 1100);
  CHECK(view.queue() == "reports");
}

TEST_CASE("the history keeps the first transition and the latest ones") {
  kcron::v1::JobView view;
  for (std::uint64_t sequence = 1; sequence <= 2 * kcron::api::kMaxTransitions; ++sequence) {
    kcron::api::fold_status(view, status(kcron::v1::RETRYING, 0, sequence, static_cast<std::int64_t>(sequence)));
  }
  REQUIRE(view.history_size() == static_cast<int>(kcron::api::kMaxTransitions));
  CHECK(view.history(0).at_ms() == 1);
  CHECK(view.history(view.history_size() - 1).at_ms() == static_cast<std::int64_t>(2 * kcron::api::kMaxTransitions));
}

TEST_CASE("the latest attempt's result is kept") {
  kcron::v1::JobView view;
  kcron::v1::Result second;
  second.set_job_id("j1");
  second.set_attempt(1);
  second.set_state(kcron::v1::SUCCEEDED);
  second.set_finished_ms(2000);
  kcron::v1::Result first = second;
  first.set_attempt(0);
  first.set_state(kcron::v1::FAILED);
  CHECK(kcron::api::fold_result(view, second));
  CHECK_FALSE(kcron::api::fold_result(view, first));
  CHECK(view.result().state() == kcron::v1::SUCCEEDED);
  CHECK(view.tenant() == "default");
}
