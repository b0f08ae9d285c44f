#include "view/view_store.h"

#include <fmt/format.h>
#include <rocksdb/db.h>
#include <rocksdb/write_batch.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <filesystem>
#include <map>
#include <set>
#include <thread>

#include "core/job_view.h"

namespace {

struct TempDir {
  std::filesystem::path path;
  TempDir()
      : path(std::filesystem::temp_directory_path() /
             (fmt::format("kcron-api-view-{}", ::getpid()) + fmt::format("-{}", counter()++))) {
    std::filesystem::remove_all(path);
  }
  ~TempDir() { std::filesystem::remove_all(path); }
  static int& counter() {
    static int value = 0;
    return value;
  }
};

void submit(kcron::api::ViewBatch& batch, std::string_view tenant, const std::string& id, std::int64_t at_ms,
            const std::string& queue = "default") {
  kcron::v1::Job job;
  job.set_id(id);
  job.set_tenant(std::string(tenant));
  job.set_queue(queue);
  kcron::api::fold_definition(batch.job(tenant, id), job, at_ms, "", false);
}

void set_state(kcron::api::ViewBatch& batch, std::string_view tenant, const std::string& id, kcron::v1::JobState state,
               std::uint64_t sequence) {
  kcron::v1::StatusRecord record;
  record.set_job_id(id);
  record.set_tenant(std::string(tenant));
  record.set_state(state);
  record.set_sequence(sequence);
  record.set_at_ms(5000);
  kcron::api::fold_status(batch.job(tenant, id), record);
}

std::vector<std::string> ids(const kcron::api::ViewPage& page) {
  std::vector<std::string> out;
  for (const auto& job : page.jobs) out.push_back(job.id());
  return out;
}

}  // namespace

TEST_CASE("the view answers a tenant's job by id and never another tenant's") {
  TempDir dir;
  auto store = kcron::api::ViewStore::open(dir.path.string());
  REQUIRE(store.ok());
  kcron::api::ViewBatch batch(**store);
  submit(batch, "acme", "j1", 1000);
  submit(batch, "default", "j1", 1000);
  REQUIRE((*store)->commit(batch).ok());
  CHECK((*store)->job("acme", "j1")->tenant() == "acme");
  CHECK((*store)->job("default", "j1")->tenant() == "default");
  CHECK((*store)->job("", "j1")->tenant() == "default");
  CHECK_FALSE((*store)->job("globex", "j1").has_value());
  CHECK((*store)->list("globex", {}).jobs.empty());
}

TEST_CASE("lists are newest first, filtered by state and queue, and pages return each job once") {
  TempDir dir;
  auto store = kcron::api::ViewStore::open(dir.path.string());
  REQUIRE(store.ok());
  kcron::api::ViewBatch batch(**store);
  for (int index = 0; index < 25; ++index) {
    submit(batch, "acme", fmt::format("j{}", index), 1000 + index / 2,
           index % 2 == 0 ? "even" : "odd");  // pairs share an instant
  }
  submit(batch, "acmex", "other", 1005);
  REQUIRE((*store)->commit(batch).ok());

  kcron::api::ListQuery query;
  query.page_size = 4;
  std::set<std::string> seen;
  std::vector<std::int64_t> order;
  int pages = 0;
  for (int page_number = 0; page_number < 20; ++page_number) {
    auto page = (*store)->list("acme", query);
    for (const auto& job : page.jobs) {
      CHECK(seen.insert(job.id()).second);
      order.push_back(job.submitted_ms());
    }
    // Jobs change state between pages: the order key does not move, so nothing repeats or is skipped.
    kcron::api::ViewBatch changes(**store);
    set_state(changes, "acme", fmt::format("j{}", page_number), kcron::v1::SUCCEEDED, 1);
    REQUIRE((*store)->commit(changes).ok());
    ++pages;
    if (!page.next) break;
    query.after = page.next;
  }
  CHECK(seen.size() == 25);
  CHECK(std::is_sorted(order.rbegin(), order.rend()));

  kcron::api::ListQuery odd;
  odd.queue = "odd";
  odd.page_size = 100;
  CHECK((*store)->list("acme", odd).jobs.size() == 12);
  kcron::api::ListQuery succeeded;
  succeeded.state = kcron::v1::SUCCEEDED;
  succeeded.page_size = 100;
  const auto done = (*store)->list("acme", succeeded);
  CHECK(done.jobs.size() == static_cast<std::size_t>(pages));
  for (const auto& job : done.jobs) CHECK(job.state() == kcron::v1::SUCCEEDED);
  kcron::api::ListQuery window;
  window.since_ms = 1004;
  window.until_ms = 1006;
  window.page_size = 100;
  CHECK(ids((*store)->list("acme", window)) == std::vector<std::string>{"j11", "j10", "j9", "j8"});
}

TEST_CASE("positions are kept with the views and survive a reopen") {
  TempDir dir;
  {
    auto store = kcron::api::ViewStore::open(dir.path.string());
    REQUIRE(store.ok());
    kcron::api::ViewBatch batch(**store);
    submit(batch, "acme", "j1", 1000);
    batch.advance("kcron.jobs", 3, 42);
    batch.advance("kcron.jobs", 3, 41);  // never backwards
    batch.advance("kcron.status", 11, 7);
    REQUIRE((*store)->commit(batch).ok());
  }
  auto store = kcron::api::ViewStore::open(dir.path.string());
  REQUIRE(store.ok());
  const auto positions = (*store)->positions();
  CHECK(positions.size() == 2);
  CHECK(positions.at({"kcron.jobs", 3}) == 42);
  CHECK(positions.at({"kcron.status", 11}) == 7);
  CHECK((*store)->job("acme", "j1").has_value());
}

TEST_CASE("schedules are kept per tenant, deleted by a tombstone and listed in id order") {
  TempDir dir;
  auto store = kcron::api::ViewStore::open(dir.path.string());
  REQUIRE(store.ok());
  kcron::api::ViewBatch batch(**store);
  for (const auto* id : {"nightly", "hourly", "weekly"}) {
    kcron::v1::Schedule schedule;
    schedule.set_id(id);
    schedule.set_expression("@hourly");
    batch.schedule("acme", id, schedule);
  }
  kcron::v1::Schedule other;
  other.set_id("nightly");
  batch.schedule("beta", "nightly", other);
  REQUIRE((*store)->commit(batch).ok());
  auto first = (*store)->schedules("acme", "", 2);
  REQUIRE(first.items.size() == 2);
  CHECK(first.items[0].id() == "hourly");
  CHECK(first.items[1].id() == "nightly");
  REQUIRE(first.next == "nightly");
  auto second = (*store)->schedules("acme", first.next, 2);
  REQUIRE(second.items.size() == 1);
  CHECK(second.items[0].id() == "weekly");
  CHECK(second.next.empty());
  batch.schedule("acme", "hourly", std::nullopt);
  REQUIRE((*store)->commit(batch).ok());
  CHECK_FALSE((*store)->schedule("acme", "hourly").has_value());
  CHECK((*store)->schedule("beta", "nightly").has_value());
  CHECK((*store)->schedules("acme", "", 10).items.size() == 2);
}

TEST_CASE("tenant settings are kept per tenant, survive a reopen and are forgotten by a tombstone") {
  TempDir dir;
  {
    auto store = kcron::api::ViewStore::open(dir.path.string());
    REQUIRE(store.ok());
    kcron::api::ViewBatch batch(**store);
    kcron::v1::TenantSettings acme;
    acme.set_name("acme");
    acme.mutable_limits()->set_max_pending_jobs(20);
    acme.mutable_admin_ceilings()->set_max_pending_jobs(100);
    batch.tenant_settings("acme", acme);
    kcron::v1::TenantSettings fallback;
    fallback.set_description("the default tenant");
    batch.tenant_settings("", fallback);
    REQUIRE((*store)->commit(batch).ok());
    CHECK_FALSE((*store)->tenant_settings("beta").has_value());
    REQUIRE((*store)->tenant_settings("default").has_value());
    CHECK((*store)->tenant_settings("default")->description() == "the default tenant");
  }
  auto store = kcron::api::ViewStore::open(dir.path.string());
  REQUIRE(store.ok());
  const auto acme = (*store)->tenant_settings("acme");
  REQUIRE(acme.has_value());
  CHECK(acme->limits().max_pending_jobs() == 20);
  CHECK(acme->admin_ceilings().max_pending_jobs() == 100);
  kcron::api::ViewBatch batch(**store);
  batch.tenant_settings("acme", std::nullopt);
  REQUIRE((*store)->commit(batch).ok());
  CHECK_FALSE((*store)->tenant_settings("acme").has_value());
  CHECK((*store)->tenant_settings("").has_value());
}

TEST_CASE("dead letters list newest first and the latest of a job is found by its id") {
  TempDir dir;
  auto store = kcron::api::ViewStore::open(dir.path.string());
  REQUIRE(store.ok());
  kcron::api::ViewBatch batch(**store);
  for (int index = 0; index < 5; ++index) {
    kcron::api::DeadLetterEntry entry;
    entry.id = index < 3 ? fmt::format("j{}", index) : "j0";
    entry.source = fmt::format("kcron.dead-letters/0@{}", index);
    entry.letter.set_at_ms(1000 + index);
    entry.letter.set_reason(fmt::format("try {}", index));
    batch.dead_letter("acme", entry);
  }
  REQUIRE((*store)->commit(batch).ok());
  auto page = (*store)->dead_letters("acme", "", 3);
  REQUIRE(page.items.size() == 3);
  CHECK(page.items[0].letter.reason() == "try 4");
  CHECK(page.items[2].letter.reason() == "try 2");
  auto rest = (*store)->dead_letters("acme", page.next, 3);
  REQUIRE(rest.items.size() == 2);
  CHECK(rest.items[1].letter.reason() == "try 0");
  CHECK(rest.next.empty());
  CHECK((*store)->dead_letter("acme", "j0")->letter.reason() == "try 4");
  CHECK_FALSE((*store)->dead_letter("beta", "j0").has_value());
  CHECK((*store)->dead_letters("beta", "", 3).items.empty());
}

TEST_CASE("stats count a tenant's jobs by state and queue as they change") {
  TempDir dir;
  auto store = kcron::api::ViewStore::open(dir.path.string());
  REQUIRE(store.ok());
  kcron::api::ViewBatch batch(**store);
  for (int index = 0; index < 4; ++index) submit(batch, "acme", fmt::format("j{}", index), 1000, index < 3 ? "a" : "b");
  submit(batch, "beta", "x", 1000);
  REQUIRE((*store)->commit(batch).ok());
  set_state(batch, "acme", "j0", kcron::v1::PENDING, 1);
  set_state(batch, "acme", "j1", kcron::v1::PENDING, 1);
  REQUIRE((*store)->commit(batch).ok());
  set_state(batch, "acme", "j1", kcron::v1::SUCCEEDED, 2);
  REQUIRE((*store)->commit(batch).ok());
  const auto stats = (*store)->stats("acme");
  CHECK(stats.jobs == 4);
  CHECK(stats.by_state.at(kcron::v1::PENDING) == 1);
  CHECK(stats.by_state.at(kcron::v1::SUCCEEDED) == 1);
  CHECK(stats.by_state.at(kcron::v1::JOB_STATE_UNSPECIFIED) == 2);
  CHECK(stats.by_queue.at("a") == 3);
  CHECK(stats.by_queue.at("b") == 1);
  CHECK((*store)->stats("beta").jobs == 1);
}

TEST_CASE("events follow a tenant's changes from a cursor, survive a reopen and are bounded") {
  TempDir dir;
  std::uint64_t last = 0;
  {
    auto store = kcron::api::ViewStore::open(dir.path.string());
    REQUIRE(store.ok());
    (*store)->set_event_retention(5);
    kcron::api::ViewBatch batch(**store);
    submit(batch, "acme", "j1", 1000);
    submit(batch, "beta", "x", 1000);
    REQUIRE((*store)->commit(batch).ok());
    set_state(batch, "acme", "j1", kcron::v1::PENDING, 1);
    REQUIRE((*store)->commit(batch).ok());
    std::uint64_t next = 0;
    auto events = (*store)->events("acme", 0, 100, 100, next);
    REQUIRE(events.size() == 2);
    CHECK(events[0].id == "j1");
    CHECK(events[1].state == kcron::v1::PENDING);
    CHECK(next == 3);
    CHECK((*store)->events("acme", next, 100, 100, next).empty());
    CHECK((*store)->events("beta", 0, 100, 100, next).size() == 1);
    last = (*store)->last_event();
    CHECK(last == 3);
  }
  auto store = kcron::api::ViewStore::open(dir.path.string());
  REQUIRE(store.ok());
  CHECK((*store)->last_event() == last);
  (*store)->set_event_retention(5);
  kcron::api::ViewBatch batch(**store);
  for (int index = 0; index < 10; ++index) submit(batch, "acme", fmt::format("n{}", index), 2000);
  REQUIRE((*store)->commit(batch).ok());
  std::uint64_t next = 0;
  const auto kept = (*store)->events("acme", 0, 100, 100, next);
  REQUIRE(kept.size() == 5);  // the oldest went
  CHECK(kept.front().sequence == 9);
  CHECK(next == 13);
}

TEST_CASE("a view has an identity of its own and finds the events it committed from an instant on") {
  TempDir dir;
  std::string identity;
  std::int64_t clock = 1'000'000;
  {
    auto store = kcron::api::ViewStore::open(dir.path.string());
    REQUIRE(store.ok());
    identity = (*store)->view_id();
    CHECK(identity.size() == 16);
    (*store)->set_clock([&clock] { return clock; });
    kcron::api::ViewBatch batch(**store);
    submit(batch, "acme", "a", 1000);  // event 1 at second 1000
    REQUIRE((*store)->commit(batch).ok());
    clock += 400;
    submit(batch, "acme", "b", 1000);  // event 2, the same second
    REQUIRE((*store)->commit(batch).ok());
    clock += 5'000;
    submit(batch, "acme", "c", 1000);  // event 3 at 1005.4 s
    submit(batch, "acme", "d", 1000);  // event 4
    REQUIRE((*store)->commit(batch).ok());
    CHECK((*store)->event_cursor_at(0) == 0);          // from the first
    CHECK((*store)->event_cursor_at(1'000'900) == 0);  // the second of events 1 and 2
    CHECK((*store)->event_cursor_at(1'002'000) == 2);  // after them: events 3 and 4 follow
    CHECK((*store)->event_cursor_at(1'005'999) == 2);
    CHECK((*store)->event_cursor_at(1'006'000) == 4);  // nothing since: the latest
  }
  auto store = kcron::api::ViewStore::open(dir.path.string());
  REQUIRE(store.ok());
  CHECK((*store)->view_id() == identity);  // kept with the view
  (*store)->set_clock([&clock] { return clock; });
  kcron::api::ViewBatch batch(**store);
  submit(batch, "acme", "e", 1000);  // the same second as the last commit before the reopen
  REQUIRE((*store)->commit(batch).ok());
  CHECK((*store)->event_cursor_at(1'005'000) == 2);  // its index entry still names event 3
  TempDir other;
  auto another = kcron::api::ViewStore::open(other.path.string());
  REQUIRE(another.ok());
  CHECK((*another)->view_id() != identity);
}

namespace {

void submit_labelled(kcron::api::ViewBatch& batch, const std::string& id, std::int64_t at_ms, const std::string& shard,
                     const std::string& schedule) {
  kcron::v1::Job job;
  job.set_id(id);
  job.set_tenant("acme");
  (*job.mutable_labels())["shard"] = shard;
  (*job.mutable_labels())["team"] = "data";
  if (!schedule.empty()) job.mutable_schedule_run()->set_schedule_id(schedule);
  kcron::api::fold_definition(batch.job("acme", id), job, at_ms, "kcron.jobs/0@1", false);
}

std::vector<std::string> listed(const kcron::api::ViewStore& store, kcron::api::ListQuery query) {
  std::vector<std::string> out;
  for (int page = 0; page < 100; ++page) {
    const auto found = store.list("acme", query);
    for (const auto& job : found.jobs) out.push_back(job.id());
    if (!found.next) break;
    query.after = found.next;
  }
  return out;
}

}  // namespace

TEST_CASE("lists by label and by schedule read their own indexes, newest first, and a view of the older layout gets them") {
  TempDir dir;
  {
    auto store = kcron::api::ViewStore::open(dir.path.string());
    REQUIRE(store.ok());
    kcron::api::ViewBatch batch(**store);
    // 5000 jobs, the two with shard v3 among the oldest: a page from the time index would examine
    // its bounded number of entries and come back empty before reaching them.
    for (int index = 0; index < 5000; ++index) {
      submit_labelled(batch, fmt::format("j{:04}", index), 1000 + index, index == 7 || index == 1007 ? "v3" : "v1",
                      index % 1500 == 0 ? "nightly" : "");
    }
    REQUIRE((*store)->commit(batch).ok());
    kcron::api::ListQuery by_label;
    by_label.label_key = "shard";
    by_label.label_value = "v3";
    by_label.page_size = 2;
    CHECK(listed(**store, by_label) == std::vector<std::string>{"j1007", "j0007"});
    kcron::api::ListQuery by_schedule;
    by_schedule.schedule_id = "nightly";
    by_schedule.page_size = 1;
    CHECK((*store)->list("acme", by_schedule).jobs.size() == 1);
    CHECK(listed(**store, by_schedule) == std::vector<std::string>{"j4500", "j3000", "j1500", "j0000"});
    by_schedule.label_key = "shard";  // both: the schedule's index, the label checked on each
    by_schedule.label_value = "v3";
    CHECK(listed(**store, by_schedule).empty());
    kcron::api::ListQuery page_one;
    page_one.label_key = "shard";
    page_one.label_value = "v3";
    page_one.page_size = 1;
    CHECK((*store)->list("acme", page_one).jobs.size() == 1);  // found at once, not after a bounded scan
  }
  {
    // As an older kcron-api left it: no label or schedule index, no index version.
    rocksdb::DB* raw = nullptr;
    REQUIRE(rocksdb::DB::Open(rocksdb::Options(), dir.path.string(), &raw).ok());
    std::unique_ptr<rocksdb::DB> db(raw);
    rocksdb::WriteBatch strip;
    strip.DeleteRange("L", "M");
    strip.DeleteRange("C", "D");
    strip.Delete("Mindexes");
    REQUIRE(db->Write(rocksdb::WriteOptions(), &strip).ok());
    REQUIRE(db->Close().ok());
  }
  auto store = kcron::api::ViewStore::open(dir.path.string());
  REQUIRE(store.ok());
  kcron::api::ListQuery by_label;
  by_label.label_key = "shard";
  by_label.label_value = "v3";
  by_label.page_size = 1;
  const auto first = (*store)->list("acme", by_label);
  REQUIRE(first.jobs.size() == 1);
  CHECK(first.jobs[0].id() == "j1007");
}

TEST_CASE("a job keeps one entry in each index through its transitions, and an entry that moves leaves its old place") {
  TempDir dir;
  {
    auto store = kcron::api::ViewStore::open(dir.path.string());
    REQUIRE(store.ok());
    kcron::api::ViewBatch batch(**store);
    submit_labelled(batch, "j1", 1000, "v1", "nightly");
    REQUIRE((*store)->commit(batch).ok());
    std::uint64_t sequence = 0;
    for (const auto state : {kcron::v1::QUEUED, kcron::v1::RUNNING, kcron::v1::RETRYING, kcron::v1::RUNNING}) {
      set_state(batch, "acme", "j1", state, ++sequence);
      REQUIRE((*store)->commit(batch).ok());
    }
    // The queue, a label and the submit time move: each index finds the job at its new place only.
    auto& view = batch.job("acme", "j1");
    view.set_queue("reports");
    (*view.mutable_labels())["shard"] = "v2";
    view.set_submitted_ms(2000);
    REQUIRE((*store)->commit(batch).ok());
    kcron::api::ListQuery old_queue;
    old_queue.queue = "default";
    CHECK((*store)->list("acme", old_queue).jobs.empty());
    kcron::api::ListQuery new_queue;
    new_queue.queue = "reports";
    CHECK(ids((*store)->list("acme", new_queue)) == std::vector<std::string>{"j1"});
    kcron::api::ListQuery old_label;
    old_label.label_key = "shard";
    old_label.label_value = "v1";
    CHECK((*store)->list("acme", old_label).jobs.empty());
    kcron::api::ListQuery running;
    running.state = kcron::v1::RUNNING;
    CHECK(ids((*store)->list("acme", running)) == std::vector<std::string>{"j1"});
    kcron::api::ListQuery before;
    before.until_ms = 1500;
    CHECK((*store)->list("acme", before).jobs.empty());
  }
  // Read back raw: exactly one entry per index (time, state, queue, each label, schedule).
  rocksdb::DB* raw = nullptr;
  REQUIRE(rocksdb::DB::OpenForReadOnly(rocksdb::Options(), dir.path.string(), &raw).ok());
  std::unique_ptr<rocksdb::DB> db(raw);
  std::map<char, int> entries;
  std::unique_ptr<rocksdb::Iterator> iterator(db->NewIterator(rocksdb::ReadOptions()));
  for (iterator->SeekToFirst(); iterator->Valid(); iterator->Next()) {
    const auto key = iterator->key().ToStringView();
    if (key.starts_with("Tacme/") || key.starts_with("Sacme/") || key.starts_with("Qacme/") || key.starts_with("Lacme/") ||
        key.starts_with("Cacme/")) {
      ++entries[key[0]];
    }
  }
  CHECK(entries == std::map<char, int>{{'C', 1}, {'L', 2}, {'Q', 1}, {'S', 1}, {'T', 1}});  // two labels
}

TEST_CASE("index entries deleted by a burst of moves are compacted away, so lists do not step over them") {
  TempDir dir;
  auto store = kcron::api::ViewStore::open(dir.path.string());
  REQUIRE(store.ok());
  (*store)->set_compact_after_deletes(1200);
  // Each job's status is read before its submit record, so its entries move from the status's
  // time to the submit's: a delete in the time, state and queue indexes each (3 per job).
  const auto burst = [&](int from, int to) {
    for (int start = from; start < to; start += 100) {
      kcron::api::ViewBatch batch(**store);
      const int end = std::min(start + 100, to);
      for (int index = start; index < end; ++index) set_state(batch, "acme", fmt::format("j{:04}", index), kcron::v1::PENDING, 1);
      REQUIRE((*store)->commit(batch).ok());
      for (int index = start; index < end; ++index) submit(batch, "acme", fmt::format("j{:04}", index), 1000 + index);
      REQUIRE((*store)->commit(batch).ok());
    }
  };
  const auto settle = [&] {
    for (int wait = 0; wait < 1000 && (*store)->compacting(); ++wait) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    REQUIRE_FALSE((*store)->compacting());
  };
  const auto no_tombstones = [&] {
    CHECK((*store)->property("rocksdb.num-deletes-active-mem-table") == "0");
    const auto tables = (*store)->property("rocksdb.aggregated-table-properties");
    INFO(tables);
    CHECK(tables.find("# deletions=0;") != std::string::npos);
  };
  burst(0, 400);  // 1200 deletes: one hand-off, with nothing else to merge with
  settle();
  CHECK((*store)->compactions() == 1);
  no_tombstones();
  // A smaller burst: compacted once no delete came for a while (at least a tenth of the count).
  burst(400, 500);
  CHECK((*store)->compactions() == 1);
  const auto start = std::chrono::steady_clock::now();
  (*store)->maintain(start);
  (*store)->maintain(start + std::chrono::seconds(9));
  CHECK_FALSE((*store)->compacting());  // not quiet for long enough yet
  (*store)->maintain(start + std::chrono::seconds(11));
  settle();
  CHECK((*store)->compactions() == 2);
  no_tombstones();
  // A handful of deletes is left to RocksDB.
  burst(500, 510);
  (*store)->maintain(start + std::chrono::seconds(20));
  (*store)->maintain(start + std::chrono::seconds(40));
  CHECK_FALSE((*store)->compacting());
  CHECK((*store)->compactions() == 2);
  kcron::api::ListQuery query;
  query.page_size = 1000;
  const auto page = (*store)->list("acme", query);
  REQUIRE(page.jobs.size() == 510);
  CHECK(page.jobs.front().submitted_ms() == 1509);
}

TEST_CASE("two labels that make the same index key keep it while either has it") {
  TempDir dir;
  auto store = kcron::api::ViewStore::open(dir.path.string());
  REQUIRE(store.ok());
  kcron::api::ViewBatch batch(**store);
  auto& view = batch.job("acme", "j1");
  view.set_submitted_ms(1000);
  (*view.mutable_labels())[std::string("a\0b", 3)] = "c";
  (*view.mutable_labels())["a"] = std::string("b\0c", 3);
  REQUIRE((*store)->commit(batch).ok());
  (*batch.job("acme", "j1").mutable_labels())["a"] = "other";
  REQUIRE((*store)->commit(batch).ok());
  kcron::api::ListQuery query;
  query.label_key = std::string("a\0b", 3);
  query.label_value = "c";
  CHECK(ids((*store)->list("acme", query)) == std::vector<std::string>{"j1"});
}

TEST_CASE("a forgotten job leaves the view with its indexes and counts, and makes no event") {
  TempDir dir;
  auto store = kcron::api::ViewStore::open(dir.path.string());
  REQUIRE(store.ok());
  kcron::api::ViewBatch batch(**store);
  submit(batch, "acme", "gone", 1000, "reports");
  submit(batch, "acme", "kept", 1001, "reports");
  REQUIRE((*store)->commit(batch).ok());
  const auto events_before = (*store)->last_event();
  CHECK(batch.peek_job("acme", "gone").has_value());
  batch.forget_job("acme", "gone");
  CHECK_FALSE(batch.peek_job("acme", "gone").has_value());
  REQUIRE((*store)->commit(batch).ok());
  CHECK_FALSE((*store)->job("acme", "gone").has_value());
  CHECK((*store)->last_event() == events_before);
  const auto stats = (*store)->stats("acme");
  CHECK(stats.jobs == 1);
  CHECK(stats.by_queue.at("reports") == 1);
  kcron::api::ListQuery by_queue;
  by_queue.queue = "reports";
  CHECK(ids((*store)->list("acme", by_queue)) == std::vector<std::string>{"kept"});
}

TEST_CASE("an answer cut short says when its last event was committed, for a cursor another instance can use") {
  TempDir dir;
  auto store = kcron::api::ViewStore::open(dir.path.string());
  REQUIRE(store.ok());
  std::int64_t clock = 50'000;
  (*store)->set_clock([&clock] { return clock; });
  kcron::api::ViewBatch batch(**store);
  submit(batch, "acme", "a", 1000);
  REQUIRE((*store)->commit(batch).ok());  // event 1 at 50 s
  clock = 90'000;
  submit(batch, "acme", "b", 1000);
  REQUIRE((*store)->commit(batch).ok());  // event 2 at 90 s
  std::uint64_t next = 0;
  kcron::api::ViewStore::EventsCut cut;
  auto first = (*store)->events("acme", 0, 1, 100, next, &cut);
  REQUIRE(first.size() == 1);
  CHECK(first[0].committed_ms == 50'000);
  CHECK(cut.more);
  CHECK(cut.last_committed_ms == 50'000);
  CHECK(next == 1);
  auto rest = (*store)->events("acme", next, 10, 100, next, &cut);
  REQUIRE(rest.size() == 1);
  CHECK_FALSE(cut.more);
  CHECK(cut.last_committed_ms == 90'000);
}

TEST_CASE("recent transitions count a tenant's changes of the window by their own time") {
  TempDir dir;
  auto store = kcron::api::ViewStore::open(dir.path.string());
  REQUIRE(store.ok());
  std::int64_t clock = 70'000;  // within the window below
  (*store)->set_clock([&clock] { return clock; });
  kcron::api::ViewBatch batch(**store);
  set_state(batch, "acme", "old", kcron::v1::SUCCEEDED, 1);  // a change of long ago (at 5000), committed now: a replay
  REQUIRE((*store)->commit(batch).ok());
  clock = 100'000;
  for (int index = 0; index < 3; ++index) {
    kcron::v1::StatusRecord record;
    record.set_job_id(fmt::format("j{}", index));
    record.set_tenant("acme");
    record.set_state(index < 2 ? kcron::v1::SUCCEEDED : kcron::v1::DEAD);
    record.set_sequence(1);
    record.set_at_ms(99'000);
    kcron::api::fold_status(batch.job("acme", record.job_id()), record);
  }
  set_state(batch, "beta", "b", kcron::v1::SUCCEEDED, 1);
  REQUIRE((*store)->commit(batch).ok());
  const auto recent = (*store)->recent_transitions("acme", 100'000, 60'000, 100);
  CHECK(recent.complete);
  CHECK(recent.by_state.at(kcron::v1::SUCCEEDED) == 2);
  CHECK(recent.by_state.at(kcron::v1::DEAD) == 1);
  const auto cut = (*store)->recent_transitions("acme", 100'000, 60'000, 2);
  CHECK_FALSE(cut.complete);
  CHECK((*store)->recent_transitions("gamma", 100'000, 60'000, 100).by_state.empty());
}

TEST_CASE("finished jobs leave the view after their retention, with their indexes and counts, and running ones stay") {
  TempDir dir;
  auto store = kcron::api::ViewStore::open(dir.path.string());
  REQUIRE(store.ok());
  kcron::api::ViewBatch batch(**store);
  for (int index = 0; index < 6; ++index) submit(batch, "acme", fmt::format("j{}", index), 1000);
  REQUIRE((*store)->commit(batch).ok());
  set_state(batch, "acme", "j0", kcron::v1::SUCCEEDED, 1);  // at 5000
  set_state(batch, "acme", "j1", kcron::v1::DEAD, 1);
  set_state(batch, "acme", "j2", kcron::v1::RUNNING, 1);
  REQUIRE((*store)->commit(batch).ok());
  auto swept = (*store)->sweep_finished(5000, 100);  // finished before 5000: none
  REQUIRE(swept.ok());
  CHECK(*swept == 0);
  swept = (*store)->sweep_finished(6000, 1);  // bounded per call
  REQUIRE(swept.ok());
  CHECK(*swept == 1);
  swept = (*store)->sweep_finished(6000, 100);
  REQUIRE(swept.ok());
  CHECK(*swept == 1);
  CHECK_FALSE((*store)->job("acme", "j0").has_value());
  CHECK_FALSE((*store)->job("acme", "j1").has_value());
  CHECK((*store)->job("acme", "j2").has_value());
  kcron::api::ListQuery all;
  all.page_size = 100;
  CHECK(ids((*store)->list("acme", all)).size() == 4);
  kcron::api::ListQuery succeeded;
  succeeded.state = kcron::v1::SUCCEEDED;
  CHECK((*store)->list("acme", succeeded).jobs.empty());
  const auto stats = (*store)->stats("acme");
  CHECK(stats.jobs == 4);
  CHECK(stats.by_state.count(kcron::v1::SUCCEEDED) == 0);
  CHECK(stats.by_queue.at("default") == 4);
}
