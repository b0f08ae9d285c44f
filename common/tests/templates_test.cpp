#include "kcron/templates.h"

#include <fmt/format.h>

#include <catch2/catch.hpp>
#include <set>

#include "kcron/codec.h"

using namespace kcron;
using namespace kcron::templates;

namespace {

v1::Template report() {
  v1::Template definition;
  auto decoded = decode_message(R"({
    "name": "report", "version": 3,
    "params": [
      {"name": "day", "type": "STRING", "required": true},
      {"name": "n", "type": "INT", "default": "10"},
      {"name": "dry_run", "type": "BOOL", "default": "false"},
      {"name": "wait", "type": "DURATION", "default": "5m"}
    ],
    "job": {"id": "report-{{day}}", "queue": "batch", "labels": {"day": "{{ day }}"},
            "exec": {"argv": ["/usr/bin/report", "--day={{day}}", "--top={{n}}", "--dry-run={{dry_run}}", "--wait={{wait}}"]}}
  })",
                                "application/json", definition);
  REQUIRE(decoded);
  return definition;
}

std::string error_of(const Status& status) {
  REQUIRE_FALSE(status);
  return status.error().message();
}

template <typename T>
std::string error_of(const Result<T>& result) {
  REQUIRE_FALSE(result);
  return result.error().message();
}

}  // namespace

TEST_CASE("a template renders into a concrete job carrying name@version") {
  auto job = render(report(), {{"day", "2026-12-07"}, {"n", "25"}});
  REQUIRE(job);
  CHECK(job->id() == "report-2026-12-07");
  CHECK(job->template_() == "report@3");
  CHECK(job->labels().at("day") == "2026-12-07");
  REQUIRE(job->exec().argv_size() == 5);
  CHECK(job->exec().argv(1) == "--day=2026-12-07");
  CHECK(job->exec().argv(2) == "--top=25");
  CHECK(job->exec().argv(3) == "--dry-run=false");  // the defaults
  CHECK(job->exec().argv(4) == "--wait=5m");
  CHECK(job->queue() == "batch");
  CHECK(job->tenant().empty());
}

TEST_CASE("a missing required parameter is refused naming the template version and the parameter") {
  CHECK(error_of(render(report(), {{"n", "3"}})) == "template 'report@3': required parameter 'day' is missing");
}

TEST_CASE("a value not of its parameter's type is refused naming the parameter and the value") {
  CHECK(error_of(render(report(), {{"day", "x"}, {"n", "x"}})) ==
        "template 'report@3': parameter 'n' must be an integer, got 'x'");
  CHECK(error_of(render(report(), {{"day", "x"}, {"n", "1.5"}})) ==
        "template 'report@3': parameter 'n' must be an integer, got '1.5'");
  CHECK(error_of(render(report(), {{"day", "x"}, {"dry_run", "yes"}})) ==
        "template 'report@3': parameter 'dry_run' must be true or false, got 'yes'");
  CHECK(error_of(render(report(), {{"day", "x"}, {"wait", "5 minutes"}})) ==
        "template 'report@3': parameter 'wait' must be a duration such as 90s, 1h30m or 250ms, got '5 minutes'");
  CHECK(render(report(), {{"day", "x"}, {"wait", "1h30m"}, {"n", "-7"}}));
}

TEST_CASE("an unknown parameter is refused naming it and the declared ones") {
  CHECK(error_of(render(report(), {{"day", "x"}, {"foo", "1"}})) ==
        "template 'report@3': unknown parameter 'foo' (it declares: day, n, dry_run, wait)");
}

TEST_CASE("numbers accept decimals and exponents and refuse infinities") {
  v1::TemplateParam param;
  param.set_name("ratio");
  param.set_type(v1::TemplateParam::NUMBER);
  CHECK(check_param_value(param, "0.25"));
  CHECK(check_param_value(param, "-1e3"));
  CHECK(error_of(check_param_value(param, "inf")) == "parameter 'ratio' must be a number, got 'inf'");
  CHECK(error_of(check_param_value(param, "")) == "parameter 'ratio' must be a number, got ''");
}

TEST_CASE("a value holding a placeholder opening or invalid UTF-8 is refused") {
  CHECK(error_of(render(report(), {{"day", "{{n}}"}})) == "template 'report@3': parameter 'day' must not contain '{{'");
  CHECK(error_of(render(report(), {{"day", "\xff"}})) == "template 'report@3': parameter 'day' is not UTF-8 text");
}

TEST_CASE("a value next to a brace of the job that would leave a placeholder is refused") {
  auto definition = report();
  definition.mutable_job()->mutable_exec()->set_argv(1, "{{day}}{");
  CHECK(error_of(render(definition, {{"day", "{"}})) == "template 'report@3': job.exec.argv[1]: the rendered text holds '{{'");
}

TEST_CASE("a placeholder that names no declared parameter is refused where it is") {
  auto definition = report();
  definition.mutable_job()->mutable_exec()->add_argv("--x={{month}}");
  CHECK(error_of(validate_template(definition)) ==
        "template 'report@3': job.exec.argv[5]: '{{month}}' is not a declared parameter");
}

TEST_CASE("a malformed placeholder is refused") {
  auto definition = report();
  definition.mutable_job()->set_queue("{{day");
  CHECK(error_of(validate_template(definition)) == "template 'report@3': job.queue: '{{' without a closing '}}'");
  definition.mutable_job()->set_queue("{{Day}}");
  CHECK(error_of(validate_template(definition)) ==
        "template 'report@3': job.queue: '{{Day}}' is not a placeholder: a placeholder is {{name}} with a parameter name "
        "([a-z0-9_])");
}

TEST_CASE("placeholders in a payload that is UTF-8 are filled, other bytes are kept") {
  auto definition = report();
  definition.mutable_job()->set_payload(R"({"day":"{{day}}"})");
  auto job = render(definition, {{"day", "mon"}});
  REQUIRE(job);
  CHECK(job->payload() == R"({"day":"mon"})");
  definition.mutable_job()->set_payload(std::string("\xff{{day}}", 8));
  job = render(definition, {{"day", "mon"}});
  REQUIRE(job);
  CHECK(job->payload() == std::string("\xff{{day}}", 8));
}

TEST_CASE("template definitions are checked") {
  auto definition = report();
  definition.set_version(0);
  CHECK(error_of(validate_template(definition)) == "template 'report@0': the version must be 1 or more");
  definition = report();
  definition.set_name("Report");
  CHECK(error_of(validate_template(definition)) ==
        "'Report' is not a template name: 1-64 of [a-z0-9_.-], starting with a letter or digit");
  definition = report();
  *definition.add_params() = definition.params(0);
  CHECK(error_of(validate_template(definition)) == "template 'report@3': parameter 'day' is declared twice");
  definition = report();
  definition.mutable_params(1)->set_default_("ten");
  CHECK(error_of(validate_template(definition)) == "template 'report@3': default: parameter 'n' must be an integer, got 'ten'");
  definition = report();
  definition.mutable_params(0)->set_default_("mon");
  CHECK(error_of(validate_template(definition)) ==
        "template 'report@3': parameter 'day' is required and has a default: drop one");
  definition = report();
  definition.mutable_job()->set_template_("other@1");
  CHECK(error_of(validate_template(definition)) ==
        "template 'report@3': the job's `template` is set by kcron when it renders one");
  definition = report();
  definition.mutable_job()->mutable_noop();
  CHECK(validate_template(definition));
  definition.mutable_job()->clear_noop();
  CHECK(error_of(validate_template(definition)) == "template 'report@3': the job has no task");
  definition = report();
  definition.set_tenant("acme");
  definition.mutable_job()->set_tenant("other");
  CHECK(error_of(validate_template(definition)) == "template 'report@3': the job names tenant 'other', the template 'acme'");
  definition = report();
  definition.mutable_params(0)->set_name("9lives");
  CHECK(error_of(validate_template(definition)) ==
        "template 'report@3': parameter '9lives': a name is 1-64 of [a-z0-9_], not starting with a digit");
}

TEST_CASE("a tenant's rendered job carries its tenant") {
  auto definition = report();
  definition.set_tenant("acme");
  auto job = render(definition, {{"day", "mon"}});
  REQUIRE(job);
  CHECK(job->tenant() == "acme");
}

TEST_CASE("references parse as name@version") {
  auto ref = parse_ref("report@3", true);
  REQUIRE(ref);
  CHECK(ref->name == "report");
  CHECK(ref->version == 3);
  CHECK(parse_ref("report", false)->version == 0);
  CHECK(parse_ref("report", true).error().message() == "name the template's version: report@VERSION");
  CHECK(parse_ref("report@0", true).error().message() == "template 'report': the version must be a whole number from 1, got '0'");
  CHECK(parse_ref("report@x", true).error().message() == "template 'report': the version must be a whole number from 1, got 'x'");
  CHECK_FALSE(parse_ref("a~b@1", true));
}

TEST_CASE("template keys are tenant-scoped as every other key") {
  CHECK(template_key("", "report", 3) == "report@3");
  CHECK(template_key("default", "report", 3) == "report@3");
  CHECK(template_key("acme", "report", 3) == "acme~report@3");
}

TEST_CASE("same content ignores who wrote a version and when") {
  auto left = report();
  auto right = report();
  right.set_written_by("cli:alice");
  right.set_written_at_ms(1234);
  CHECK(same_content(left, right));
  right.mutable_job()->set_queue("default");
  CHECK_FALSE(same_content(left, right));
  right = report();
  right.set_tenant("default");
  CHECK(same_content(left, right));
}

TEST_CASE("the catalog keeps versions per tenant and refuses a record whose key does not match") {
  Catalog catalog;
  auto first = report();
  first.set_version(1);
  auto third = report();
  REQUIRE(catalog.apply("report@1", encode(first), "application/x-protobuf", false));
  REQUIRE(catalog.apply("report@3", encode(third), "application/x-protobuf", false));
  CHECK(error_of(catalog.apply("report@4", encode(third), "application/x-protobuf", false)) ==
        "key 'report@4' does not name the template it holds ('report@3' of tenant 'default')");
  CHECK(catalog.find("", "report", 1) != nullptr);
  CHECK(catalog.find("acme", "report", 1) == nullptr);
  CHECK(catalog.latest("default", "report")->version() == 3);
  CHECK(catalog.versions("", "report").size() == 2);
  CHECK(catalog.latest_of_each("").size() == 1);
  REQUIRE(catalog.apply("report@3", "", "", true));
  CHECK(catalog.latest("", "report")->version() == 1);
  CHECK_FALSE(catalog.apply("garbage", "", "", true));
  CHECK_FALSE(catalog.apply("x@1", "not a template", "", false));
}

TEST_CASE("an existing version is written again only with the same content") {
  Catalog catalog;
  auto first = report();
  first.set_version(1);
  catalog.put(first);
  catalog.put(report());
  auto again = report();
  again.set_written_by("cli:bob");
  auto same = is_new_version(catalog, again);
  REQUIRE(same);
  CHECK_FALSE(*same);
  again.mutable_job()->set_queue("default");
  auto changed = is_new_version(catalog, again);
  REQUIRE_FALSE(changed);
  CHECK(changed.error().message() == "template 'report' version 3 already exists with different content; write version 4");
  again.set_version(4);
  CHECK(*is_new_version(catalog, again));
  again.set_tenant("acme");
  again.set_version(3);
  CHECK(*is_new_version(catalog, again));  // another tenant's report@3
}

TEST_CASE("parameters parse from name=value assignments") {
  auto params = parse_params({"day=2026-12-07", "query=a=b", "empty="});
  REQUIRE(params);
  CHECK(params->at("day") == "2026-12-07");
  CHECK(params->at("query") == "a=b");
  CHECK(params->at("empty").empty());
  CHECK(parse_params({"day"}).error().message() == "--param 'day': write name=value");
  CHECK(parse_params({"day=1", "day=2"}).error().message() == "--param: parameter 'day' is given twice");
  CHECK(parse_params({"Day=1"}).error().message() ==
        "--param 'Day=1': a parameter name is 1-64 of [a-z0-9_], not starting with a digit");
}

TEST_CASE("a placeholder in a map key is refused, in a map value it is filled and named by its key") {
  auto definition = report();
  (*definition.mutable_job()->mutable_labels())["{{day}}"] = "x";
  CHECK(error_of(validate_template(definition)) ==
        "template 'report@3': job.labels['{{day}}']: a map key cannot hold a placeholder; put it in the value");
  definition = report();
  (*definition.mutable_job()->mutable_labels())["team"] = "{{nope}}";
  CHECK(error_of(validate_template(definition)) ==
        "template 'report@3': job.labels['team']: '{{nope}}' is not a declared parameter");
}

TEST_CASE("a value holding a control character or an empty required value is refused") {
  CHECK(error_of(render(report(), {{"day", "mon\nX-Evil: 1"}})) ==
        "template 'report@3': parameter 'day' holds a control character (0x0a): a value is one line of text");
  CHECK(error_of(render(report(), {{"day", std::string("mon\0day", 7)}})).find("control character (0x00)") != std::string::npos);
  CHECK(render(report(), {{"day", "mon\tday"}}));  // a tab is text
  CHECK(error_of(render(report(), {{"day", ""}})) == "template 'report@3': required parameter 'day' is empty");
}

TEST_CASE("a template's job may not choose who submitted the jobs it renders") {
  auto definition = report();
  definition.mutable_job()->set_submitted_by("{{day}}");
  CHECK(error_of(validate_template(definition)).find("submitted_by") != std::string::npos);
}

TEST_CASE("same content takes an unset parameter type for STRING") {
  auto left = report();
  auto right = report();
  right.mutable_params(0)->clear_type();
  CHECK(same_content(left, right));
}

TEST_CASE("a version whose record cannot be read here is taken, never written over") {
  Catalog catalog;
  CHECK_FALSE(catalog.apply("report@5", "not a template", "", false));  // a later release's record, or damage
  REQUIRE(catalog.unusable("", "report", 5) != nullptr);
  auto fifth = report();
  fifth.set_version(5);
  auto written = is_new_version(catalog, fifth);
  REQUIRE_FALSE(written);
  CHECK(written.error().message().starts_with(
      "template 'report' version 5 is on kcron.templates, but its record cannot be read here ("));
  CHECK(written.error().message().ends_with("); write version 6"));
  CHECK(catalog.unusable("acme", "report", 5) == nullptr);  // another tenant's
  REQUIRE(catalog.apply("report@5", encode(fifth), "application/x-protobuf", false));
  CHECK(catalog.unusable("", "report", 5) == nullptr);
  CHECK(catalog.find("", "report", 5) != nullptr);
}

namespace {

v1::Flow flow_of(std::string_view json) {
  v1::Flow flow;
  REQUIRE(decode_message(json, "application/json", flow));
  return flow;
}

}  // namespace

TEST_CASE("a flow's template node renders into its job carrying name@version") {
  Catalog catalog;
  catalog.put(report());
  auto flow = flow_of(R"({"id": "etl", "nodes": [
      {"name": "a", "job": {"noop": {}}},
      {"name": "b", "template_ref": {"ref": "report@3", "params": {"day": "2026-12-07", "n": "5"}}, "depends_on": ["a"]}]})");
  auto rendered = render_flow_nodes(flow, catalog, "", kMaxFlowRecordBytes);
  REQUIRE(rendered);
  CHECK(rendered->rendered == 1);
  CHECK_FALSE(rendered->is_missing());
  const auto& node = flow.nodes(1);
  CHECK_FALSE(node.has_template_ref());
  CHECK(node.job().template_() == "report@3");
  CHECK(node.job().id().empty());  // a node's id is "<flow>/<node>", whatever the template gives
  CHECK(node.job().tenant().empty());
  CHECK(node.job().exec().argv(1) == "--day=2026-12-07");
  CHECK(node.job().exec().argv(2) == "--top=5");
  REQUIRE(node.depends_on_size() == 1);
  CHECK(flow.nodes(0).job().has_noop());
  CHECK(flow.nodes(0).job().template_().empty());
}

TEST_CASE("a flow node's missing required parameter is refused naming the node and the parameter") {
  Catalog catalog;
  catalog.put(report());
  auto flow = flow_of(R"({"id": "etl", "nodes": [{"name": "b", "template_ref": {"ref": "report@3"}}]})");
  const auto before = flow.SerializeAsString();
  auto rendered = render_flow_nodes(flow, catalog, "", kMaxFlowRecordBytes);
  REQUIRE_FALSE(rendered);
  CHECK(rendered.error().message() == "node 'b': template 'report@3': required parameter 'day' is missing");
  CHECK(flow.SerializeAsString() == before);  // nothing changed
}

TEST_CASE("a flow node naming a version the catalog does not hold is reported missing, not refused") {
  Catalog catalog;
  catalog.put(report());
  auto flow = flow_of(R"({"id": "etl", "nodes": [
      {"name": "a", "template_ref": {"ref": "report@3", "params": {"day": "x"}}},
      {"name": "b", "template_ref": {"ref": "report@9", "params": {"day": "x"}}}]})");
  const auto before = flow.SerializeAsString();
  auto rendered = render_flow_nodes(flow, catalog, "", kMaxFlowRecordBytes);
  REQUIRE(rendered);
  REQUIRE(rendered->is_missing());
  CHECK(rendered->missing_node == "b");
  CHECK(rendered->missing.text() == "report@9");
  CHECK(rendered->rendered == 0);
  CHECK(flow.SerializeAsString() == before);  // rendered only once every version is there
}

TEST_CASE("a flow node setting both job and template_ref is refused") {
  Catalog catalog;
  catalog.put(report());
  auto flow = flow_of(R"({"id": "etl", "nodes": [
      {"name": "b", "job": {"noop": {}}, "template_ref": {"ref": "report@3", "params": {"day": "x"}}}]})");
  auto rendered = render_flow_nodes(flow, catalog, "", kMaxFlowRecordBytes);
  REQUIRE_FALSE(rendered);
  CHECK(rendered.error().message() == "node 'b': set job or template_ref, not both");
  CHECK(error_of(flow_template_refs(flow)) == "node 'b': set job or template_ref, not both");
}

TEST_CASE("a flow node's template_ref must name a version and parameters by name") {
  auto no_version = flow_of(R"({"id": "etl", "nodes": [{"name": "b", "template_ref": {"ref": "report"}}]})");
  CHECK(error_of(flow_template_refs(no_version)) == "node 'b': template_ref: name the template's version: report@VERSION");
  auto bad_param =
      flow_of(R"({"id": "etl", "nodes": [{"name": "b", "template_ref": {"ref": "report@3", "params": {"Day": "x"}}}]})");
  CHECK(error_of(flow_template_refs(bad_param)) ==
        "node 'b': template_ref: 'Day' is not a parameter name ([a-z0-9_], not starting with a digit)");
}

TEST_CASE("the versions a flow names are listed once each in node order") {
  auto flow = flow_of(R"({"id": "etl", "nodes": [
      {"name": "a", "template_ref": {"ref": "report@3"}},
      {"name": "b", "job": {"noop": {}}},
      {"name": "c", "template_ref": {"ref": "load@1"}},
      {"name": "d", "template_ref": {"ref": "report@3"}}]})");
  auto refs = flow_template_refs(flow);
  REQUIRE(refs);
  REQUIRE(refs->size() == 2);
  CHECK((*refs)[0].text() == "report@3");
  CHECK((*refs)[1].text() == "load@1");
}

TEST_CASE("a tenant's flow node renders from its own tenant's versions only") {
  Catalog catalog;
  auto theirs = report();
  theirs.set_tenant("acme");
  theirs.mutable_job()->set_queue("default");
  catalog.put(theirs);
  auto flow = flow_of(R"({"id": "etl", "nodes": [{"name": "b", "template_ref": {"ref": "report@3", "params": {"day": "x"}}}]})");
  auto in_default = render_flow_nodes(flow, catalog, "", kMaxFlowRecordBytes);
  REQUIRE(in_default);
  CHECK(in_default->is_missing());  // the default tenant has no report@3
  auto in_other = render_flow_nodes(flow, catalog, "globex", kMaxFlowRecordBytes);
  REQUIRE(in_other);
  CHECK(in_other->is_missing());
  auto in_acme = render_flow_nodes(flow, catalog, "acme", kMaxFlowRecordBytes);
  REQUIRE(in_acme);
  CHECK(in_acme->rendered == 1);
  CHECK(flow.nodes(0).job().queue() == "default");  // acme's version, not another's
  CHECK(flow.nodes(0).job().tenant().empty());      // the flow's tenant applies
}

TEST_CASE("two tenants holding the same version each render their own") {
  Catalog catalog;
  catalog.put(report());  // the default tenant's report@3: queue batch
  auto theirs = report();
  theirs.set_tenant("acme");
  theirs.mutable_job()->set_queue("critical");
  catalog.put(theirs);
  const auto text = R"({"id": "etl", "nodes": [{"name": "b", "template_ref": {"ref": "report@3", "params": {"day": "x"}}}]})";
  auto in_acme = flow_of(text);
  REQUIRE(render_flow_nodes(in_acme, catalog, "acme", kMaxFlowRecordBytes));
  CHECK(in_acme.nodes(0).job().queue() == "critical");
  auto in_default = flow_of(text);
  REQUIRE(render_flow_nodes(in_default, catalog, "", kMaxFlowRecordBytes));
  CHECK(in_default.nodes(0).job().queue() == "batch");
}

TEST_CASE("rendering stops at the node that takes the rendered jobs over the byte budget") {
  Catalog catalog;
  catalog.put(report());
  auto flow = flow_of(R"({"id": "etl", "nodes": [
      {"name": "a", "template_ref": {"ref": "report@3", "params": {"day": "one"}}},
      {"name": "b", "template_ref": {"ref": "report@3", "params": {"day": "two"}}},
      {"name": "c", "template_ref": {"ref": "report@3", "params": {"day": "three"}}}]})");
  const auto before = flow.SerializeAsString();
  auto one = render(report(), {{"day", "one"}});
  REQUIRE(one);
  one->clear_id();
  // Room for one rendered job and a half: the second node goes over.
  const std::size_t budget = one->ByteSizeLong() * 3 / 2;
  RenderFailure failed{-7, false};
  auto rendered = render_flow_nodes(flow, catalog, "", budget, &failed);
  REQUIRE_FALSE(rendered);
  CHECK(rendered.error().message().starts_with("node 'b': template 'report@3': the flow's rendered jobs come to more than"));
  CHECK(rendered.error().message().find("(the record limit)") != std::string::npos);
  CHECK(failed.node == 1);
  CHECK(failed.too_large);
  CHECK(flow.SerializeAsString() == before);  // unchanged
  RenderFailure none{-7, true};
  REQUIRE(render_flow_nodes(flow, catalog, "", kMaxFlowRecordBytes, &none));
  CHECK(none.node == -1);
  CHECK_FALSE(none.too_large);
}

TEST_CASE("a refused render names the node's index") {
  Catalog catalog;
  catalog.put(report());
  auto flow = flow_of(R"({"id": "etl", "nodes": [
      {"name": "a", "job": {"noop": {}}},
      {"name": "b", "template_ref": {"ref": "report@3"}}]})");
  RenderFailure failed;
  auto rendered = render_flow_nodes(flow, catalog, "", kMaxFlowRecordBytes, &failed);
  REQUIRE_FALSE(rendered);
  CHECK(rendered.error().message() == "node 'b': template 'report@3': required parameter 'day' is missing");
  CHECK(failed.node == 1);
  CHECK_FALSE(failed.too_large);
}

TEST_CASE("nothing is rendered while a version is missing, even a node that would be refused") {
  Catalog catalog;
  catalog.put(report());
  // Node a would be refused (no day), but b's version is not there: nothing is rendered yet.
  auto flow = flow_of(R"({"id": "etl", "nodes": [
      {"name": "a", "template_ref": {"ref": "report@3"}},
      {"name": "b", "template_ref": {"ref": "load@1"}}]})");
  auto rendered = render_flow_nodes(flow, catalog, "", kMaxFlowRecordBytes);
  REQUIRE(rendered);
  REQUIRE(rendered->is_missing());
  CHECK(rendered->missing_node == "b");
  CHECK(rendered->rendered == 0);
}

TEST_CASE("a catalog's subset holds only the versions named, and what is missing from it") {
  Catalog catalog;
  catalog.put(report());
  auto other = report();
  other.set_version(4);
  catalog.put(other);
  const std::vector<Ref> refs{{"report", 3}, {"load", 1}};
  const auto copy = catalog.subset("", refs);
  CHECK(copy.find("", "report", 3) != nullptr);
  CHECK(copy.find("", "report", 4) == nullptr);
  REQUIRE(catalog.first_missing("", refs) != nullptr);
  CHECK(catalog.first_missing("", refs)->text() == "load@1");
  CHECK(catalog.first_missing("", {{"report", 4}}) == nullptr);
}

TEST_CASE("a rendered flow is checked as the dispatcher and the cron-producer check it") {
  Catalog catalog;
  catalog.put(report());
  const auto rendered_flow = [&](std::string_view day) {
    auto flow = flow_of(fmt::format(R"({{"id": "etl", "nodes": [{{"name": "a", "job": {{"noop": {{}}}}}},
        {{"name": "b", "template_ref": {{"ref": "report@3", "params": {{"day": "{}"}}}}}}]}})",
                                    day));
    REQUIRE(render_flow_nodes(flow, catalog, "", kMaxFlowRecordBytes));
    return flow;
  };
  auto flow = rendered_flow("x");
  CHECK_FALSE(check_rendered_flow(flow, RenderedFlowRules{}).has_value());

  const std::set<std::string, std::less<>> queues{"default"};
  auto unknown_queue = check_rendered_flow(flow, schedule_run_rules(&queues));
  REQUIRE(unknown_queue.has_value());
  CHECK(unknown_queue->node == 1);
  CHECK(unknown_queue->field == "queue");
  CHECK(unknown_queue->message == "node 'b': template 'report@3' renders a job that is refused: unknown queue 'batch'");

  flow.mutable_nodes(1)->mutable_job()->set_priority(12);
  auto priority = check_rendered_flow(flow, RenderedFlowRules{});
  REQUIRE(priority.has_value());
  CHECK(priority->field == "priority");
  flow.mutable_nodes(1)->mutable_job()->clear_priority();

  flow.mutable_nodes(1)->mutable_job()->set_run_at_ms(1);
  CHECK_FALSE(check_rendered_flow(flow, RenderedFlowRules{}).has_value());  // one flow: its own instant
  auto run_at = check_rendered_flow(flow, schedule_run_rules());
  REQUIRE(run_at.has_value());
  CHECK(run_at->field == "run_at");
  flow.mutable_nodes(1)->mutable_job()->clear_run_at_ms();

  flow.mutable_nodes(1)->mutable_job()->clear_exec();
  auto no_task = check_rendered_flow(flow, RenderedFlowRules{});
  REQUIRE(no_task.has_value());
  CHECK(no_task->field == "task");

  auto large = rendered_flow("x");
  RenderedFlowRules small;
  small.max_record_bytes = large.ByteSizeLong();
  CHECK_FALSE(check_rendered_flow(large, small).has_value());
  small.overhead_bytes = 1;
  auto too_large = check_rendered_flow(large, small);
  REQUIRE(too_large.has_value());
  CHECK(too_large->too_large);
  CHECK(too_large->node == -1);
  CHECK(too_large->message.find("over the record limit of") != std::string::npos);
}

TEST_CASE("a flow naming no template renders nothing and is left as it is") {
  Catalog catalog;
  auto flow = flow_of(R"({"id": "etl", "nodes": [{"name": "a", "job": {"noop": {}}}]})");
  const auto before = flow.SerializeAsString();
  auto rendered = render_flow_nodes(flow, catalog, "", kMaxFlowRecordBytes);
  REQUIRE(rendered);
  CHECK(rendered->rendered == 0);
  CHECK_FALSE(rendered->is_missing());
  CHECK(flow.SerializeAsString() == before);
}
