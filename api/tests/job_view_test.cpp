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

TEST_CASE("the submit record sets the submit time even when another record of the job came first") {
  kcron::v1::JobView early;  // read the status first, as another instance may
  kcron::api::fold_status(early, status(kcron::v1::PENDING, 0, 1, 1500));
  CHECK(early.submitted_ms() == 1500);
  kcron::api::fold_definition(early, job(), 1000, "kcron.jobs/3@7", false);
  kcron::v1::JobView late;  // read the submit first
  kcron::api::fold_definition(late, job(), 1000, "kcron.jobs/3@7", false);
  kcron::api::fold_status(late, status(kcron::v1::PENDING, 0, 1, 1500));
  CHECK(early.submitted_ms() == 1000);
  CHECK(late.submitted_ms() == 1000);
  CHECK(early.source() == late.source());
  kcron::api::fold_definition(early, job(), 3000, "kcron.jobs/3@9", false);  // a re-submit of the id: dropped, time kept
  CHECK(early.submitted_ms() == 1000);
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
  CHECK(view.submitted_ms() == 1000);  // the submit's time, as on an instance that read it first
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

namespace {

kcron::v1::DispatcherEntry entry(kcron::v1::DispatcherEntry::State state, std::uint32_t attempt, std::uint64_t sequence) {
  kcron::v1::DispatcherEntry stored;
  stored.set_state(state);
  stored.set_attempt(attempt);
  stored.set_sequence(sequence);
  stored.set_due_ms(90'000);
  if (state == kcron::v1::DispatcherEntry::PENDING) *stored.mutable_job() = job();
  return stored;
}

constexpr std::int64_t kLater = 100'000'000;  // long after the entries below: they are settled

kcron::v1::JobView named() {
  kcron::v1::JobView view;
  view.set_id("j1");
  view.set_tenant("acme");
  return view;
}

}  // namespace

TEST_CASE("a pending entry on the dispatcher changelog brings a job whose own records are gone") {
  auto view = named();
  CHECK(kcron::api::fold_changelog_entry(view, entry(kcron::v1::DispatcherEntry::PENDING, 0, 1), 5000,
                                         "kcron.dispatcher-changelog/0@4", kLater));
  CHECK(view.state() == kcron::v1::PENDING);
  CHECK(view.due_ms() == 90'000);
  CHECK(view.queue() == "reports");
  CHECK(view.submitted_by() == "alice");
  CHECK(view.submitted_ms() == 5000);
  CHECK(view.source().empty());  // not a submit: the submit record, when read, still sets the time
  REQUIRE(view.history_size() == 1);
  CHECK(view.history(0).component() == kcron::api::kChangelogComponent);

  SECTION("the status record it stood for replaces its transition, and a replay of either changes nothing") {
    auto real = status(kcron::v1::PENDING, 0, 1, 4990);
    real.set_component("dispatcher");
    real.set_due_ms(90'000);
    CHECK(kcron::api::fold_status(view, real));
    REQUIRE(view.history_size() == 1);
    CHECK(view.history(0).component() == "dispatcher");
    CHECK_FALSE(kcron::api::fold_status(view, real));
    CHECK_FALSE(kcron::api::fold_changelog_entry(view, entry(kcron::v1::DispatcherEntry::PENDING, 0, 1), 5000, "x", kLater));
    CHECK(view.history_size() == 1);
  }
  SECTION("firing moves it to QUEUED, and the worker's records go on from there") {
    CHECK(kcron::api::fold_changelog_entry(view, entry(kcron::v1::DispatcherEntry::FIRED, 0, 2), 90'001, "x", kLater));
    CHECK(view.state() == kcron::v1::QUEUED);
    CHECK(kcron::api::fold_status(view, status(kcron::v1::SUCCEEDED, 0, 1U << 20U, 90'050)));
    CHECK(view.state() == kcron::v1::SUCCEEDED);
    CHECK(view.history_size() == 3);
  }
  SECTION("a later attempt waiting for its retry reads as RETRYING") {
    CHECK(kcron::api::fold_changelog_entry(view, entry(kcron::v1::DispatcherEntry::PENDING, 1, 3), 6000, "x", kLater));
    CHECK(view.state() == kcron::v1::RETRYING);
    CHECK(view.attempt() == 1);
    CHECK(view.submitted_ms() == 5000);
  }
}

TEST_CASE("the changelog never moves a job back or creates one from an entry without its definition") {
  SECTION("a job the status topic already took further keeps its state") {
    auto view = named();
    REQUIRE(kcron::api::fold_status(view, status(kcron::v1::SUCCEEDED, 0, 1U << 20U, 7000)));
    CHECK_FALSE(kcron::api::fold_changelog_entry(view, entry(kcron::v1::DispatcherEntry::PENDING, 0, 1), 5000, "x", kLater));
    CHECK_FALSE(kcron::api::fold_changelog_entry(view, entry(kcron::v1::DispatcherEntry::FIRED, 0, 2), 6000, "x", kLater));
    CHECK(view.state() == kcron::v1::SUCCEEDED);
    CHECK_FALSE(view.has_job());
  }
  SECTION("a fired, cancelled or dead entry says nothing about a job the view does not hold as waiting") {
    for (const auto state : {kcron::v1::DispatcherEntry::FIRED, kcron::v1::DispatcherEntry::CANCELLED,
                             kcron::v1::DispatcherEntry::DEAD, kcron::v1::DispatcherEntry::SKIPPED}) {
      auto view = named();
      CHECK_FALSE(kcron::api::fold_changelog_entry(view, entry(state, 0, 2), 6000, "x", kLater));
      CHECK(view.state() == kcron::v1::JOB_STATE_UNSPECIFIED);
      CHECK_FALSE(kcron::api::changelog_entry_creates(entry(state, 0, 2)));
    }
  }
  SECTION("entries that are not jobs are not folded") {
    for (const auto state : {kcron::v1::DispatcherEntry::CANCEL_MARKER, kcron::v1::DispatcherEntry::SCHEDULE,
                             kcron::v1::DispatcherEntry::TENANT_USAGE, kcron::v1::DispatcherEntry::STATE_UNSPECIFIED}) {
      auto view = named();
      CHECK_FALSE(kcron::api::fold_changelog_entry(view, entry(state, 0, 2), 6000, "x", kLater));
      CHECK(view.state() == kcron::v1::JOB_STATE_UNSPECIFIED);
    }
  }
  SECTION("a pending entry without a job is refused") {
    auto view = named();
    auto bare = entry(kcron::v1::DispatcherEntry::PENDING, 0, 1);
    bare.clear_job();
    CHECK_FALSE(kcron::api::changelog_entry_creates(bare));
    CHECK_FALSE(kcron::api::fold_changelog_entry(view, bare, 5000, "x", kLater));
  }
  SECTION("the cheap test agrees: fresh fired entries and entries that are not jobs need no lookup") {
    CHECK(kcron::api::changelog_entry_may_apply(entry(kcron::v1::DispatcherEntry::PENDING, 0, 1), 5000, 5000));
    CHECK_FALSE(kcron::api::changelog_entry_may_apply(entry(kcron::v1::DispatcherEntry::FIRED, 0, 2), 5000, 5600));
    CHECK(kcron::api::changelog_entry_may_apply(entry(kcron::v1::DispatcherEntry::FIRED, 0, 2), 5000, kLater));
    CHECK_FALSE(kcron::api::changelog_entry_may_apply(entry(kcron::v1::DispatcherEntry::TENANT_USAGE, 0, 2), 5000, kLater));
  }
  SECTION("a fresh fired or cancelled entry waits for its status record, which says more") {
    auto view = named();
    REQUIRE(kcron::api::fold_changelog_entry(view, entry(kcron::v1::DispatcherEntry::PENDING, 0, 1), 5000, "x", 5000));
    CHECK_FALSE(kcron::api::fold_changelog_entry(view, entry(kcron::v1::DispatcherEntry::CANCELLED, 0, 2), 5500, "x", 5600));
    CHECK(view.state() == kcron::v1::PENDING);
    auto cancelled = status(kcron::v1::CANCELLED, 0, 2, 5500);
    cancelled.set_reason("not needed");
    CHECK(kcron::api::fold_status(view, cancelled));
    CHECK(view.reason() == "not needed");
  }
  SECTION("a settled cancel the view has not read ends a job it holds as waiting") {
    auto view = named();
    REQUIRE(kcron::api::fold_changelog_entry(view, entry(kcron::v1::DispatcherEntry::PENDING, 0, 1), 5000, "x", kLater));
    CHECK(kcron::api::fold_changelog_entry(view, entry(kcron::v1::DispatcherEntry::CANCELLED, 0, 2), 5500, "x", kLater));
    CHECK(view.state() == kcron::v1::CANCELLED);
  }
}
