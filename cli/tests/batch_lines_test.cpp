#include "batch_lines.h"

#include <fmt/format.h>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>
#include <set>

#include "kcron/routing.h"
#include "kcron/tenant.h"

TEST_CASE("batch lines: one job a line, split into records by count and size, blank lines skipped") {
  std::string text;
  for (int at = 0; at < 2'500; ++at)
    text += fmt::format(R"({{"id":"j{}","delay":"5s","noop":{{}}}})", at) + (at % 7 ? "\n" : "\r\n\n");
  auto records = kcron::cli::split_batch_lines(text, "acme");
  REQUIRE(records.ok());
  REQUIRE(records->size() == 3);
  CHECK((*records)[0].batch.jobs_size() == 1000);
  CHECK((*records)[0].partition == -1);
  CHECK((*records)[2].batch.jobs_size() == 500);
  CHECK((*records)[2].batch.tenant() == "acme");
  CHECK((*records)[2].batch.jobs(499).id() == "j2499");
  CHECK((*records)[2].batch.jobs(499).tenant() == "acme");
  // By size: 100 jobs of ~1 KiB in records of at most 10 KiB.
  std::string big;
  for (int at = 0; at < 100; ++at)
    big += fmt::format(R"({{"id":"b{}","payload":"{}","noop":{{}}}})", at, std::string(1368, 'A')) + "\n";
  auto sized = kcron::cli::split_batch_lines(big, "", {.max_jobs = 1000, .max_bytes = 10'240});
  REQUIRE(sized.ok());
  CHECK(sized->size() >= 10);  // 9 jobs of ~1 KiB each a record
  int jobs = 0;
  for (const auto& record : *sized) {
    CHECK(record.batch.ByteSizeLong() <= 10'240);
    jobs += record.batch.jobs_size();
  }
  CHECK(jobs == 100);
}

TEST_CASE("batch lines: by owner partition, each record holds only the jobs its partition owns") {
  std::string text;
  for (int at = 0; at < 5'000; ++at) text += fmt::format(R"({{"id":"p{}","noop":{{}}}})", at) + "\n";
  auto records = kcron::cli::split_batch_lines(text, "acme", {.max_jobs = 500}, 6);
  REQUIRE(records.ok());
  std::set<std::int32_t> partitions;
  int jobs = 0;
  for (const auto& record : *records) {
    partitions.insert(record.partition);
    CHECK(record.batch.jobs_size() <= 500);
    for (const auto& job : record.batch.jobs()) {
      CHECK(kcron::partition_for_key(kcron::scoped_routing_key("acme", job.id()), 6).value() == record.partition);
      ++jobs;
    }
  }
  CHECK(jobs == 5'000);
  CHECK(partitions == std::set<std::int32_t>{0, 1, 2, 3, 4, 5});
}

TEST_CASE("batch lines: the first bad line refuses the file, naming its number and why") {
  const auto error_of = [](const std::string& text, const std::string& tenant = "") {
    auto records = kcron::cli::split_batch_lines(text, tenant);
    REQUIRE_FALSE(records.ok());
    return records.error().message();
  };
  CHECK_THAT(error_of("{\"id\":\"a\",\"noop\":{}}\n{not json\n"), Catch::StartsWith("line 2: "));
  CHECK(error_of("{\"noop\":{}}") == "line 1: the job has no id (a batch's jobs are deduplicated by id)");
  CHECK(error_of("\n\n{\"id\":\"a\",\"tenant\":\"b\",\"noop\":{}}", "acme") ==
        "line 3: job 'a' names tenant 'b', but the batch is for tenant 'acme'");
  CHECK(error_of("\n  \n") == "no job: the file holds no line");
  CHECK(error_of("{\"id\":\"a\",\"noop\":{}}\n{\"id\":\"b\",\"noop\":{}}\n{\"id\":\"a\",\"noop\":{}}") ==
        "line 3: job 'a' is already on line 1 (a batch's jobs are deduplicated by id)");
}

namespace {

kcron::v1::Template day_template() {
  kcron::v1::Template definition;
  definition.set_name("report");
  definition.set_version(3);
  auto* day = definition.add_params();
  day->set_name("day");
  day->set_required(true);
  auto* top = definition.add_params();
  top->set_name("top");
  top->set_type(kcron::v1::TemplateParam::INT);
  top->set_default_("10");
  definition.mutable_job()->set_id("report-{{day}}");
  definition.mutable_job()->mutable_noop();
  (*definition.mutable_job()->mutable_labels())["top"] = "{{top}}";
  return definition;
}

kcron::Result<kcron::v1::Job> render_day(const kcron::templates::Ref& ref, const kcron::templates::Params& params) {
  if (ref.name != "report" || ref.version != 3)
    return kcron::make_error("template '{}' has no version {}", ref.name, ref.version);
  return kcron::templates::render(day_template(), params);
}

}  // namespace

TEST_CASE("batch lines: template lines are rendered in place and other lines are kept") {
  const std::string text =
      "{\"id\":\"plain\",\"noop\":{}}\n"
      "{\"template\":\"report@3\",\"params\":{\"day\":\"mon\",\"top\":5}}\n"
      "{\"template\":\"report@3\",\"params\":{\"day\":\"tue\"},\"id\":\"custom\"}\n";
  auto rendered = kcron::cli::render_template_lines(text, render_day);
  REQUIRE(rendered);
  auto records = kcron::cli::split_batch_lines(*rendered, "");
  REQUIRE(records);
  REQUIRE((*records)[0].batch.jobs_size() == 3);
  CHECK((*records)[0].batch.jobs(0).template_().empty());
  CHECK((*records)[0].batch.jobs(1).id() == "report-mon");
  CHECK((*records)[0].batch.jobs(1).template_() == "report@3");
  CHECK((*records)[0].batch.jobs(1).labels().at("top") == "5");
  CHECK((*records)[0].batch.jobs(2).id() == "custom");
  CHECK((*records)[0].batch.jobs(2).labels().at("top") == "10");
}

TEST_CASE("batch lines: a template line that does not render refuses the file naming its line") {
  auto missing =
      kcron::cli::render_template_lines("{\"id\":\"a\",\"noop\":{}}\n{\"template\":\"report@3\",\"params\":{}}\n", render_day);
  REQUIRE_FALSE(missing);
  CHECK(missing.error().message() == "line 2: template 'report@3': required parameter 'day' is missing");
  auto absent = kcron::cli::render_template_lines("{\"template\":\"report@4\"}\n", render_day);
  REQUIRE_FALSE(absent);
  CHECK(absent.error().message() == "line 1: template 'report' has no version 4");
  auto extra = kcron::cli::render_template_lines("{\"template\":\"report@3\",\"queue\":\"x\"}\n", render_day);
  REQUIRE_FALSE(extra);
  CHECK(extra.error().message() == "line 1: a template line has \"template\", \"params\" and \"id\", not \"queue\"");
}

TEST_CASE("api batch chunks: at most max_items lines and max_bytes a body, each item mapped to its file line") {
  std::string text;
  for (int index = 1; index <= 7; ++index) {
    text += fmt::format("{{\"id\":\"j{}\",\"noop\":{{}}}}\n", index);
    if (index == 3) text += "\n  \r\n";  // blank lines: skipped, but counted
  }
  auto chunks = kcron::cli::api_batch_chunks(text, {3, 1 << 20});
  REQUIRE(chunks);
  REQUIRE(chunks->size() == 3);
  CHECK((*chunks)[0].lines == std::vector<std::size_t>{1, 2, 3});
  CHECK((*chunks)[1].lines == std::vector<std::size_t>{6, 7, 8});
  CHECK((*chunks)[2].lines == std::vector<std::size_t>{9});
  CHECK((*chunks)[0].body == R"({"jobs":[{"id":"j1","noop":{}},{"id":"j2","noop":{}},{"id":"j3","noop":{}}]})");
  CHECK((*chunks)[2].body == R"({"jobs":[{"id":"j7","noop":{}}]})");

  // 21 bytes a line: a body of 60 holds two lines (9 + 21 + 1 + 21 + 2 = 54), not three (76).
  auto by_size = kcron::cli::api_batch_chunks(text, {1000, 60});
  REQUIRE(by_size);
  CHECK(by_size->size() == 4);
  for (const auto& chunk : *by_size) {
    CHECK(chunk.body.size() <= 60);
    CHECK(chunk.lines.size() <= 2);
  }
  CHECK(by_size->back().lines == std::vector<std::size_t>{9});

  // The bound itself: 54 bytes hold two lines exactly, 53 only one.
  auto exact = kcron::cli::api_batch_chunks(text, {1000, 54});
  REQUIRE(exact);
  CHECK(exact->size() == 4);
  CHECK((*exact)[0].lines == std::vector<std::size_t>{1, 2});
  CHECK((*exact)[0].body.size() == 54);
  auto one_less = kcron::cli::api_batch_chunks(text, {1000, 53});
  REQUIRE(one_less);
  CHECK(one_less->size() == 7);
  for (const auto& chunk : *one_less) CHECK(chunk.lines.size() == 1);
}

TEST_CASE("api batch chunks: a UTF-8 byte order mark before line 1 is left out of the request") {
  auto chunks = kcron::cli::api_batch_chunks("\xEF\xBB\xBF{\"id\":\"a\",\"noop\":{}}\n{\"id\":\"b\",\"noop\":{}}\n");
  REQUIRE(chunks);
  REQUIRE(chunks->size() == 1);
  CHECK(chunks->front().body == R"({"jobs":[{"id":"a","noop":{}},{"id":"b","noop":{}}]})");
  CHECK(chunks->front().lines == std::vector<std::size_t>{1, 2});
  CHECK(nlohmann::json::parse(chunks->front().body)["jobs"].size() == 2);
}

TEST_CASE("batch lines: a UTF-8 byte order mark before line 1 is left out, and lines keep their numbers") {
  auto records = kcron::cli::split_batch_lines("\xEF\xBB\xBF{\"id\":\"a\",\"noop\":{}}\n\n{\"id\":\"b\",\"noop\":{}}\n", "acme");
  REQUIRE(records.ok());
  REQUIRE(records->size() == 1);
  REQUIRE((*records)[0].batch.jobs_size() == 2);
  CHECK((*records)[0].batch.jobs(0).id() == "a");
  auto twice = kcron::cli::split_batch_lines("\xEF\xBB\xBF{\"id\":\"a\",\"noop\":{}}\n\n{\"id\":\"a\",\"noop\":{}}\n", "acme");
  REQUIRE_FALSE(twice.ok());
  CHECK(twice.error().message() == "line 3: job 'a' is already on line 1 (a batch's jobs are deduplicated by id)");
}

TEST_CASE("api batch chunks: template lines go as they are, and a line that is no JSON object or too large refuses the file") {
  auto chunks =
      kcron::cli::api_batch_chunks("{\"template\":\"report@3\",\"params\":{\"day\":\"mon\"}}\n{\"id\":\"a\",\"noop\":{}}\n");
  REQUIRE(chunks);
  REQUIRE(chunks->size() == 1);
  CHECK(chunks->front().body == R"({"jobs":[{"template":"report@3","params":{"day":"mon"}},{"id":"a","noop":{}}]})");

  auto not_json = kcron::cli::api_batch_chunks("{\"id\":\"a\",\"noop\":{}}\n[1,2]\n");
  REQUIRE_FALSE(not_json);
  CHECK(not_json.error().message().starts_with("line 2: not a JSON object"));
  auto broken = kcron::cli::api_batch_chunks("{\"id\":\"a\",\n");
  REQUIRE_FALSE(broken);
  CHECK(broken.error().message().starts_with("line 1: not a JSON object"));
  auto large = kcron::cli::api_batch_chunks(
      fmt::format("{{\"id\":\"a\",\"labels\":{{\"x\":\"{}\"}},\"noop\":{{}}}}\n", std::string(100, 'x')), {1000, 64});
  REQUIRE_FALSE(large);
  CHECK(large.error().message() == "line 1: its 138 bytes do not fit in a kcron-api request of at most 64 bytes");
  auto empty = kcron::cli::api_batch_chunks("\n\n");
  REQUIRE_FALSE(empty);
  CHECK(empty.error().message() == "no job: the file holds no line");
}

TEST_CASE("api batch outcomes: each result maps back to its line, an answer of another length is an error") {
  const std::string answer =
      R"({"results":[{"status":202,"id":"a","consistency":"jobs/0/1"},)"
      R"({"status":400,"detail":"template 'report@3': required parameter 'day' is missing","field":"params"},)"
      R"({"status":202,"id":"report-mon","template":"report@3","consistency":"jobs/1/4"}],)"
      R"("tenant":"acme","accepted":2,"refused":1,"request_id":"r9"})";
  auto read = kcron::cli::api_batch_outcomes(answer, {2, 5, 9});
  REQUIRE(read);
  CHECK(read->tenant == "acme");
  CHECK(read->request_id == "r9");
  REQUIRE(read->outcomes.size() == 3);
  CHECK(read->outcomes[0].line == 2);
  CHECK(read->outcomes[0].accepted());
  CHECK(read->outcomes[0].id == "a");
  CHECK(read->outcomes[1].line == 5);
  CHECK_FALSE(read->outcomes[1].accepted());
  CHECK(read->outcomes[1].status == 400);
  CHECK(read->outcomes[1].field == "params");
  CHECK(read->outcomes[1].detail == "template 'report@3': required parameter 'day' is missing");
  CHECK(read->outcomes[2].line == 9);
  CHECK(read->outcomes[2].template_ref == "report@3");

  CHECK_FALSE(kcron::cli::api_batch_outcomes(answer, {1, 2}));
  CHECK_FALSE(kcron::cli::api_batch_outcomes("not json", {1}));
  CHECK_FALSE(kcron::cli::api_batch_outcomes(R"({"results":[{"id":"a"}]})", {1}));
}
