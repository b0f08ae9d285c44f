#include "core/requests.h"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "kcron/templates.h"

namespace {

kcron::api::Checked<kcron::v1::Job> parse(std::string_view body, std::string_view tenant = "acme") {
  return kcron::api::parse_job_body(body, tenant, "alice", "job-generated");
}

}  // namespace

TEST_CASE("a job body gets the token's tenant and subject, and an id when it has none") {
  auto job = parse(R"({"delay":"5s","noop":{}})");
  REQUIRE(job.ok());
  CHECK(job.value->id() == "job-generated");
  CHECK(job.value->tenant() == "acme");
  CHECK(job.value->submitted_by() == "alice");
  auto named = parse(R"({"id":"report-1","noop":{}})", "default");
  REQUIRE(named.ok());
  CHECK(named.value->id() == "report-1");
  CHECK(named.value->tenant().empty());  // the default tenant's records name none
}

TEST_CASE("a job body naming another tenant or fields kcron sets is refused with the field") {
  auto other = parse(R"({"tenant":"globex","noop":{}})");
  REQUIRE_FALSE(other.ok());
  CHECK(other.error.field == "tenant");
  CHECK(parse(R"({"tenant":"acme","noop":{}})").ok());
  CHECK(parse(R"({"submitted_by":"mallory","noop":{}})").error.field == "submitted_by");
  CHECK(parse(R"({"attempt":3,"noop":{}})").error.field == "attempt");
  CHECK(parse(R"({"schedule_run":{"schedule_id":"s"},"noop":{}})").error.field == "schedule_run");
  CHECK(parse(R"({"flow":{"id":"etl","node":"load"},"noop":{}})").error.field == "flow");
  const auto node_id = parse(R"({"id":"etl/load","noop":{}})");
  CHECK(node_id.error.field == "id");
  CHECK(node_id.error.message.find("would be node 'load' of flow 'etl'") != std::string::npos);
}

TEST_CASE("bad job bodies name what is wrong") {
  auto unknown = parse(R"({"colour":"red","noop":{}})");
  REQUIRE_FALSE(unknown.ok());
  CHECK(unknown.error.field == "colour");
  CHECK(unknown.error.message == "unknown field");
  auto not_json = parse("{not json");
  REQUIRE_FALSE(not_json.ok());
  CHECK(not_json.error.field.empty());
  CHECK(not_json.error.message.rfind("the body is not a job in kcron's JSON form", 0) == 0);
  CHECK(parse(R"({"delay":5,"noop":{}})").error.field == "delay");
  CHECK(parse(R"({"id":"a\u0001b","noop":{}})").error.field == "id");
  CHECK(parse(std::string(R"({"id":")") + std::string(300, 'x') + R"(","noop":{}})").error.field == "id");
  CHECK(parse(R"({"id":"x"})").error.field == "task");
  CHECK(parse(R"({"priority":12,"noop":{}})").error.field == "priority");
  CHECK(parse(R"({"id":"acme~x","noop":{}})", "default").error.field == "id");
  CHECK(parse(std::string(kcron::api::kMaxBodyBytes + 1, ' ')).error.message.find("exceeds") != std::string::npos);
}

TEST_CASE("an Idempotency-Key gives the same id for the same caller and key only") {
  const auto first = kcron::api::generated_job_id("alice", "order-7", "r1");
  CHECK(first == kcron::api::generated_job_id("alice", "order-7", "r2"));
  CHECK(first.rfind("idem-", 0) == 0);
  CHECK(first != kcron::api::generated_job_id("bob", "order-7", "r1"));
  CHECK(first != kcron::api::generated_job_id("alice", "order-8", "r1"));
  CHECK(kcron::api::generated_job_id("alice", "", "r1") == "job-r1");
}

TEST_CASE("page tokens round trip any id and refuse what the server did not give out") {
  const kcron::api::PageKey key{1765000000123, std::string("a/b:c\xff~", 7)};
  auto decoded = kcron::api::decode_page_token(kcron::api::encode_page_token(key));
  REQUIRE(decoded.ok());
  CHECK(decoded->submitted_ms == key.submitted_ms);
  CHECK(decoded->id == key.id);
  CHECK_FALSE(kcron::api::decode_page_token("").ok());
  CHECK_FALSE(kcron::api::decode_page_token("12").ok());
  CHECK_FALSE(kcron::api::decode_page_token("12.abc").ok());
  CHECK_FALSE(kcron::api::decode_page_token("x.61").ok());
  CHECK_FALSE(kcron::api::decode_page_token("12.zz").ok());
}

TEST_CASE("list queries take filters and refuse unknown or malformed ones") {
  auto query = kcron::api::parse_list_query({{"state", "DEAD"},
                                             {"queue", "reports"},
                                             {"label", "team=data"},
                                             {"since", "2026-12-01T00:00:00Z"},
                                             {"until", "1765000000000"},
                                             {"page_size", "10"}});
  REQUIRE(query.ok());
  CHECK(*query.value->state == kcron::v1::DEAD);
  CHECK(query.value->queue == "reports");
  CHECK(query.value->label_key == "team");
  CHECK(query.value->label_value == "data");
  CHECK(query.value->since_ms == 1796083200000);
  CHECK(query.value->until_ms == 1765000000000);
  CHECK(query.value->page_size == 10);
  CHECK(kcron::api::parse_list_query({{"state", "DONE"}}).error.field == "state");
  CHECK(kcron::api::parse_list_query({{"page_size", "0"}}).error.field == "page_size");
  CHECK(kcron::api::parse_list_query({{"page_size", "501"}}).error.field == "page_size");
  CHECK(kcron::api::parse_list_query({{"label", "=x"}}).error.field == "label");
  CHECK(kcron::api::parse_list_query({{"since", "yesterday"}}).error.field == "since");
  CHECK(kcron::api::parse_list_query({{"sort", "id"}}).error.field == "sort");
  CHECK(kcron::api::parse_list_query({{"page_token", "nope"}}).error.field == "page_token");
}

TEST_CASE("a query string splits at each parameter's first '=' and is percent-decoded") {
  const auto split = kcron::api::split_query("state=SUCCEEDED&label=team=data&since=2026-12-07T05%3A00%3A00Z&x=a+b&&flag");
  REQUIRE(split.has_value());
  REQUIRE(split->size() == 5);
  CHECK((*split)[1] == std::pair<std::string, std::string>{"label", "team=data"});
  CHECK((*split)[2].second == "2026-12-07T05:00:00Z");
  CHECK((*split)[3].second == "a b");
  CHECK((*split)[4] == std::pair<std::string, std::string>{"flag", ""});
  CHECK(kcron::api::split_query("label=team%3Ddata")->front().second == "team=data");
  CHECK_FALSE(kcron::api::split_query("a=%4").has_value());
  CHECK_FALSE(kcron::api::split_query("a=%zz").has_value());
  CHECK_FALSE(kcron::api::split_query("a=1&b=2&c=3", 2).has_value());
  CHECK(kcron::api::split_query("")->empty());
}

TEST_CASE("a flow body gets the token's tenant and subject, its graph checked as the dispatcher checks it") {
  const auto diamond =
      R"({"id":"etl","nodes":[{"name":"a","job":{"noop":{}}},{"name":"b","job":{"noop":{}},"depends_on":["a"],"trigger":"all_done"}]})";
  auto flow = kcron::api::parse_flow_body(diamond, "acme", "alice");
  REQUIRE(flow.ok());
  CHECK(flow.value->tenant() == "acme");
  CHECK(flow.value->submitted_by() == "alice");
  CHECK(flow.value->nodes(1).trigger() == kcron::v1::FlowNode::ALL_DONE);
  auto wrapped = kcron::api::parse_flow_body(std::string(R"({"flow":)") + diamond + "}", "acme", "alice");
  REQUIRE(wrapped.ok());
  CHECK(wrapped.value->nodes_size() == 2);

  auto cycle = kcron::api::parse_flow_body(
      R"({"id":"c","nodes":[{"name":"a","job":{"noop":{}},"depends_on":["b"]},{"name":"b","job":{"noop":{}},"depends_on":["a"]}]})",
      "acme", "alice");
  REQUIRE_FALSE(cycle.ok());
  CHECK(cycle.error.field == "nodes");
  CHECK(cycle.error.message.starts_with("flow 'c' has a cycle: "));
  CHECK(kcron::api::parse_flow_body(R"({"id":"a/b","nodes":[{"name":"n","job":{"noop":{}}}]})", "acme", "alice").error.field ==
        "id");
  CHECK(kcron::api::parse_flow_body(R"({"id":"f","tenant":"globex","nodes":[{"name":"n","job":{"noop":{}}}]})", "acme", "alice")
            .error.field == "tenant");
  CHECK(kcron::api::parse_flow_body(R"({"id":"f","nodes":[{"name":"n","job":{"id":"x","noop":{}}}]})", "acme", "alice")
            .error.field == "nodes[0].job.id");
  CHECK(kcron::api::parse_flow_body(R"({"id":"f","nodes":[{"name":"n","job":{"attempt":2,"noop":{}}}]})", "acme", "alice")
            .error.field == "nodes[0].job.attempt");
  CHECK(kcron::api::parse_flow_body(R"({"id":"f","nodes":[{"name":"n","job":{}}]})", "acme", "alice").error.field ==
        "nodes[0].job.task");
  CHECK(
      kcron::api::parse_flow_body(R"({"id":"f","nodes":[{"name":"n","job":{"noop":{}},"trigger":"SOMETIMES"}]})", "acme", "alice")
          .error.field.find("trigger") != std::string::npos);
}

TEST_CASE("a schedule's flow_template is checked as its longest run will be, and kcron's fields are refused") {
  kcron::v1::Flow flow;
  flow.add_nodes()->set_name("a");
  flow.mutable_nodes(0)->mutable_job()->mutable_noop();
  auto checked = kcron::api::check_flow_template(flow, "nightly", "acme", "alice");
  REQUIRE(checked.ok());
  CHECK(checked.value->id().empty());
  CHECK(checked.value->tenant().empty());
  CHECK(checked.value->submitted_by() == "alice");
  auto with_id = flow;
  with_id.set_id("x");
  CHECK(kcron::api::check_flow_template(with_id, "nightly", "acme", "alice").error.field == "flow_template.id");
  auto at = flow;
  at.mutable_nodes(0)->mutable_job()->set_run_at_ms(5);
  CHECK(kcron::api::check_flow_template(at, "nightly", "acme", "alice").error.field == "flow_template.nodes[0].job.run_at");
  auto long_name = flow;
  long_name.mutable_nodes(0)->set_name(std::string(60, 'n'));
  const auto too_long = kcron::api::check_flow_template(long_name, std::string(200, 's'), "acme", "alice");
  CHECK(too_long.error.field == "flow_template.nodes");
  CHECK(too_long.error.message.find("over the limit of 256") != std::string::npos);
  auto no_task = flow;
  no_task.mutable_nodes(0)->mutable_job()->clear_noop();
  CHECK(kcron::api::check_flow_template(no_task, "nightly", "acme", "alice").error.field == "flow_template.nodes[0].job.task");
  // A user's flow may start later, but is never a schedule's run.
  auto later = kcron::api::parse_flow_body(R"({"id":"f","run_at_ms":"1900000000000","nodes":[{"name":"n","job":{"noop":{}}}]})",
                                           "acme", "alice");
  REQUIRE(later.ok());
  CHECK(later.value->run_at_ms() == 1'900'000'000'000);
  CHECK(kcron::api::parse_flow_body(R"({"id":"f","schedule_run":{"schedule_id":"f"},"nodes":[{"name":"n","job":{"noop":{}}}]})",
                                    "acme", "alice")
            .error.field == "schedule_run");
}

TEST_CASE("a template body is told from a job body, and its parameters, id and stray keys are read or refused by field") {
  using kcron::api::parse_template_submission;
  CHECK_FALSE(parse_template_submission(R"({"id":"x","noop":{}})").has_value());               // a job body
  CHECK_FALSE(parse_template_submission(R"({"template":"report@3","noop":{}})").has_value());  // a job body (refused there)
  CHECK_FALSE(parse_template_submission("not json").has_value());
  auto good = parse_template_submission(R"({"template":"report@3","params":{"day":"mon","n":5,"dry":true},"id":"r1"})");
  REQUIRE(good.has_value());
  REQUIRE(good->ok());
  CHECK(good->value->ref.text() == "report@3");
  CHECK(good->value->params.at("day") == "mon");
  CHECK(good->value->params.at("n") == "5");
  CHECK(good->value->params.at("dry") == "true");
  CHECK(good->value->id == std::optional<std::string>("r1"));
  const auto refused = [](std::string_view body) {
    auto checked = parse_template_submission(body);
    REQUIRE(checked.has_value());
    REQUIRE_FALSE(checked->ok());
    return checked->error;
  };
  CHECK(refused(R"({"template":"report"})").field == "template");  // a version is required
  CHECK(refused(R"({"template":"report@3","colour":"red"})").field == "colour");
  CHECK(refused(R"({"template":"report@3","params":[1]})").field == "params");
  CHECK(refused(R"({"template":"report@3","params":{"day":{"a":1}}})").field == "params.day");
  CHECK(refused(R"({"template":"report@3","id":7})").field == "id");
}

namespace {

// The batch items `bodies` as submit_batch reads them: template bodies parsed, jobs left out.
std::vector<std::optional<kcron::api::Checked<kcron::api::TemplateSubmission>>> batch_items(
    const std::vector<std::string>& bodies) {
  std::vector<std::optional<kcron::api::Checked<kcron::api::TemplateSubmission>>> items;
  for (const auto& body : bodies) items.push_back(kcron::api::parse_template_submission(body));
  return items;
}

// A catalog that holds report@3 from the start and report@4 once the clock passed `arrives`; each
// lookup recorded with the wait it was given, a wait advancing the clock as a real one would.
struct FakeCatalog {
  kcron::ManualClock clock{kcron::instant_from_ms(1'000'000)};
  kcron::Instant arrives = kcron::instant_from_ms(1'000'000) + kcron::Millis(300);
  std::vector<std::pair<std::string, kcron::Millis>> lookups;

  std::optional<kcron::v1::Template> find(const kcron::templates::Ref& ref, kcron::Millis wait) {
    lookups.emplace_back(ref.text(), wait);
    const bool there = ref.version == 3 || (ref.version == 4 && clock.now() + wait >= arrives);
    if (ref.version == 4 && there && clock.now() < arrives) {
      clock.set(arrives);
    } else if (!there) {
      clock.advance(wait);
    }
    if (!there) return std::nullopt;
    kcron::v1::Template found;
    found.set_name(ref.name);
    found.set_version(ref.version);
    return found;
  }
  kcron::api::FindVersion finder() {
    return [this](const kcron::templates::Ref& ref, kcron::Millis wait) { return find(ref, wait); };
  }
};

}  // namespace

TEST_CASE("a batch's template versions are each looked up once, and the missing ones waited for together within one wait") {
  const auto items = batch_items({R"({"template":"report@3","params":{"day":"a"}})", R"({"id":"j","noop":{}})",
                                  R"({"template":"report@9"})", R"({"template":"report@3","params":{"day":"b"}})",
                                  R"({"template":"report@4"})", R"({"template":"report@9","id":"x"})",
                                  R"({"template":"report@4","colour":"red"})", R"({"template":"report@7"})"});
  FakeCatalog catalog;
  int asked = 0;
  const auto looked_up = kcron::api::find_batch_versions(
      items, catalog.finder(), kcron::Millis(1000),
      [&] {
        ++asked;
        return true;
      },
      catalog.clock);
  CHECK(asked == 1);
  CHECK_FALSE(looked_up.wait_refused);
  REQUIRE(looked_up.versions.size() == 4);  // report@3, @4, @7, @9: the invalid item names none
  CHECK(looked_up.versions.at("report@3").found.has_value());
  CHECK(looked_up.versions.at("report@4").found.has_value());
  CHECK_FALSE(looked_up.versions.at("report@7").found.has_value());
  CHECK_FALSE(looked_up.versions.at("report@9").found.has_value());
  CHECK(looked_up.versions.at("report@9").ref.name == "report");
  // Once each without a wait, then the missing ones in order of name@version with what is left of
  // the one wait: report@4 arrives after 300 ms, report@7 gets the other 700, report@9 nothing.
  using Lookup = std::pair<std::string, kcron::Millis>;
  CHECK(catalog.lookups == std::vector<Lookup>{{"report@3", kcron::Millis(0)},
                                               {"report@9", kcron::Millis(0)},
                                               {"report@4", kcron::Millis(0)},
                                               {"report@7", kcron::Millis(0)},
                                               {"report@4", kcron::Millis(1000)},
                                               {"report@7", kcron::Millis(700)},
                                               {"report@9", kcron::Millis(0)}});
  // What each 404 says it waited: up to the end of its own look-up, from the start of the shared wait.
  CHECK(looked_up.versions.at("report@3").waited == kcron::Millis(0));
  CHECK(looked_up.versions.at("report@4").waited == kcron::Millis(300));
  CHECK(looked_up.versions.at("report@7").waited == kcron::Millis(1000));
  CHECK(looked_up.versions.at("report@9").waited == kcron::Millis(1000));
}

TEST_CASE("a batch's template waits stay within the bound when the clock steps back or forward") {
  const auto items = batch_items({R"({"template":"report@7"})", R"({"template":"report@8"})", R"({"template":"report@9"})"});
  kcron::ManualClock clock{kcron::instant_from_ms(1'000'000)};
  std::vector<kcron::Millis> waits;
  kcron::Millis step{0};
  // Nothing is ever there; each look-up moves the clock by `step` (a wall clock stepped by NTP).
  const kcron::api::FindVersion never_there = [&](const kcron::templates::Ref&, kcron::Millis wait) {
    waits.push_back(wait);
    clock.advance(step);
    return std::optional<kcron::v1::Template>();
  };
  const auto may_wait = [] { return true; };

  step = kcron::Millis(-5000);  // back: without a bound the next wait would be 6,000 ms
  auto back = kcron::api::find_batch_versions(items, never_there, kcron::Millis(1000), may_wait, clock);
  REQUIRE(waits.size() == 6);  // three without a wait, three with
  for (std::size_t index = 3; index < waits.size(); ++index) {
    CHECK(waits[index] >= kcron::Millis(0));
    CHECK(waits[index] <= kcron::Millis(1000));
  }
  for (const auto& [text, version] : back.versions) CHECK(version.waited == kcron::Millis(0));

  waits.clear();
  step = kcron::Millis(3'600'000);  // forward an hour: the rest of the wait is gone, not negative
  auto forward = kcron::api::find_batch_versions(items, never_there, kcron::Millis(1000), may_wait, clock);
  REQUIRE(waits.size() == 6);
  CHECK(waits[3] == kcron::Millis(1000));
  CHECK(waits[4] == kcron::Millis(0));
  CHECK(waits[5] == kcron::Millis(0));
  for (const auto& [text, version] : forward.versions) CHECK(version.waited == kcron::Millis(1000));
}

TEST_CASE("a batch item's template body is read from its parsed JSON as it came") {
  // The same reading as the text form's, without writing the item out and parsing it again.
  const auto item = nlohmann::json::parse(R"({"template":"report@3","params":{"n":12.5,"day":"mon"},"id":"x"})");
  auto checked = kcron::api::parse_template_submission(item);
  REQUIRE(checked);
  REQUIRE(checked->ok());
  CHECK(checked->value->ref.text() == "report@3");
  CHECK(checked->value->params.at("n") == "12.5");
  CHECK(checked->value->params.at("day") == "mon");
  CHECK(checked->value->id == "x");
  CHECK_FALSE(kcron::api::parse_template_submission(nlohmann::json::parse(R"({"template":"report@3","noop":{}})")));
  CHECK_FALSE(kcron::api::parse_template_submission(nlohmann::json::array()));
  auto refused = kcron::api::parse_template_submission(nlohmann::json::parse(R"({"template":"report@3","colour":"red"})"));
  REQUIRE(refused);
  CHECK(refused->error.field == "colour");
}

TEST_CASE("a batch's missing template versions are not waited for without a wait or when the wait is refused") {
  const auto items = batch_items({R"({"template":"report@3"})", R"({"template":"report@9"})"});
  FakeCatalog catalog;
  int asked = 0;
  const auto may_wait = [&] {
    ++asked;
    return false;
  };
  auto refused = kcron::api::find_batch_versions(items, catalog.finder(), kcron::Millis(1000), may_wait, catalog.clock);
  CHECK(asked == 1);
  CHECK(refused.wait_refused);
  CHECK(refused.versions.at("report@3").found.has_value());
  CHECK_FALSE(refused.versions.at("report@9").found.has_value());
  CHECK(catalog.lookups.size() == 2);

  auto no_wait = kcron::api::find_batch_versions(items, catalog.finder(), kcron::Millis(0), may_wait, catalog.clock);
  CHECK(asked == 1);  // nothing to wait for: not asked
  CHECK_FALSE(no_wait.wait_refused);
  CHECK_FALSE(no_wait.versions.at("report@9").found.has_value());

  auto all_there = kcron::api::find_batch_versions(batch_items({R"({"template":"report@3"})", R"({"id":"j","noop":{}})"}),
                                                   catalog.finder(), kcron::Millis(1000), may_wait, catalog.clock);
  CHECK(asked == 1);
  CHECK(all_there.versions.size() == 1);
}

TEST_CASE("a flow body's template node is checked for its shape, and its rendered job as a node's job") {
  auto named = kcron::api::parse_flow_body(
      R"({"id":"f","nodes":[{"name":"a","job":{"noop":{}}},{"name":"b","template_ref":{"ref":"report@3"},"depends_on":["a"]}]})",
      "acme", "alice");
  REQUIRE(named.ok());
  CHECK(named.value->nodes(1).has_template_ref());
  CHECK_FALSE(named.value->nodes(1).has_job());  // left for the server to render
  auto both = kcron::api::parse_flow_body(
      R"({"id":"f","nodes":[{"name":"a","job":{"noop":{}},"template_ref":{"ref":"report@3"}}]})", "acme", "alice");
  CHECK(both.error.field == "nodes[0]");
  CHECK(both.error.message == "set job or template_ref, not both");
  auto unversioned =
      kcron::api::parse_flow_body(R"({"id":"f","nodes":[{"name":"a","template_ref":{"ref":"report"}}]})", "acme", "alice");
  CHECK(unversioned.error.field == "nodes[0].template_ref.ref");

  kcron::v1::Flow rendered = *named.value;
  auto& job = *rendered.mutable_nodes(1)->mutable_job();
  job.mutable_noop();
  job.set_template_("report@3");
  CHECK_FALSE(kcron::templates::check_rendered_flow(rendered, {}).has_value());
  job.set_priority(12);
  const auto refused = kcron::templates::check_rendered_flow(rendered, {});
  REQUIRE(refused.has_value());
  CHECK(refused->node == 1);
  CHECK(refused->field == "priority");
  CHECK(refused->message == "node 'b': template 'report@3' renders a job that is refused: priority 12 is outside 0-9");
}
