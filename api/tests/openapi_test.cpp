#include <google/protobuf/descriptor.h>
#include <google/protobuf/reflection.h>

#include <catch2/catch.hpp>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <set>

#include "core/problem.h"
#include "core/requests.h"
#include "core/routes.h"
#include "kcron/codec.h"
#include "openapi/contract.h"
#include "openapi/document.h"

using kcron::api::openapi::Answer;
using kcron::api::openapi::SchemaChecker;
using nlohmann::json;

namespace {

const SchemaChecker& checker() {
  return kcron::api::openapi::built_in_checker();
}

json schema(const std::string& name) {
  return json{{"$ref", "#/components/schemas/" + name}};
}

std::string failure(const kcron::Status& status) {
  return status ? std::string("(valid)") : status.error().message();
}

// Sets every field of `message` to a value other than its default (recursively, depth-bounded);
// of each oneof, the member `variant` picks (modulo its size).
void fill(google::protobuf::Message& message, std::size_t variant, int depth = 0) {
  using google::protobuf::FieldDescriptor;
  const auto* descriptor = message.GetDescriptor();
  const auto* reflection = message.GetReflection();
  if (descriptor->full_name() == "google.protobuf.Duration") {
    reflection->SetInt64(&message, descriptor->FindFieldByName("seconds"), 5);
    reflection->SetInt32(&message, descriptor->FindFieldByName("nanos"), 500000000);
    return;
  }
  if (descriptor->full_name() == "google.protobuf.Timestamp") {
    reflection->SetInt64(&message, descriptor->FindFieldByName("seconds"), 1700000000);
    reflection->SetInt32(&message, descriptor->FindFieldByName("nanos"), 250000000);
    return;
  }
  for (int index = 0; index < descriptor->field_count(); ++index) {
    const auto* field = descriptor->field(index);
    if (const auto* oneof = field->real_containing_oneof(); oneof != nullptr) {
      if (oneof->field(static_cast<int>(variant % static_cast<std::size_t>(oneof->field_count()))) != field) continue;
    }
    if (field->is_map()) {
      auto* entry = reflection->AddMessage(&message, field);
      const auto* entry_descriptor = entry->GetDescriptor();
      entry->GetReflection()->SetString(entry, entry_descriptor->FindFieldByName("key"), "key");
      entry->GetReflection()->SetString(entry, entry_descriptor->FindFieldByName("value"), "value");
      continue;
    }
    const bool repeated = field->is_repeated();
    for (int copy = 0; copy < (repeated ? 2 : 1); ++copy) {
      switch (field->cpp_type()) {
        case FieldDescriptor::CPPTYPE_INT32:
          repeated ? reflection->AddInt32(&message, field, -7) : reflection->SetInt32(&message, field, -7);
          break;
        case FieldDescriptor::CPPTYPE_INT64:
          repeated ? reflection->AddInt64(&message, field, -1234567890123)
                   : reflection->SetInt64(&message, field, -1234567890123);
          break;
        case FieldDescriptor::CPPTYPE_UINT32:
          // priority is 0-9; the others take any.
          repeated ? reflection->AddUInt32(&message, field, 7) : reflection->SetUInt32(&message, field, 7);
          break;
        case FieldDescriptor::CPPTYPE_UINT64:
          repeated ? reflection->AddUInt64(&message, field, 12345678901234)
                   : reflection->SetUInt64(&message, field, 12345678901234);
          break;
        case FieldDescriptor::CPPTYPE_DOUBLE:
          repeated ? reflection->AddDouble(&message, field, 2.5) : reflection->SetDouble(&message, field, 2.5);
          break;
        case FieldDescriptor::CPPTYPE_FLOAT:
          repeated ? reflection->AddFloat(&message, field, 2.5F) : reflection->SetFloat(&message, field, 2.5F);
          break;
        case FieldDescriptor::CPPTYPE_BOOL:
          repeated ? reflection->AddBool(&message, field, true) : reflection->SetBool(&message, field, true);
          break;
        case FieldDescriptor::CPPTYPE_STRING: {
          const std::string text = field->type() == FieldDescriptor::TYPE_BYTES ? std::string("\x01\xfe\x7f", 3) : "text";
          repeated ? reflection->AddString(&message, field, text) : reflection->SetString(&message, field, text);
          break;
        }
        case FieldDescriptor::CPPTYPE_ENUM: {
          const auto* last = field->enum_type()->value(field->enum_type()->value_count() - 1);
          repeated ? reflection->AddEnum(&message, field, last) : reflection->SetEnum(&message, field, last);
          break;
        }
        case FieldDescriptor::CPPTYPE_MESSAGE:
          if (depth < 6)
            fill(repeated ? *reflection->AddMessage(&message, field) : *reflection->MutableMessage(&message, field), variant,
                 depth + 1);
          break;
      }
    }
  }
}

// The operations of the document, as (method in upper case, path template).
std::set<std::pair<std::string, std::string>> documented_operations() {
  std::set<std::pair<std::string, std::string>> operations;
  for (const auto& [path, item] : checker().document().at("paths").items()) {
    for (const auto& [method, operation] : item.items()) {
      std::string upper = method;
      for (auto& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
      operations.emplace(upper, path);
    }
  }
  return operations;
}

}  // namespace

TEST_CASE("every route the server registers is in the OpenAPI document and every documented operation is a route") {
  const auto routes = kcron::api::route_list();
  REQUIRE(routes.size() == kcron::api::kRoutes.size());
  const std::set<std::pair<std::string, std::string>> served(routes.begin(), routes.end());
  CHECK(served.size() == routes.size());  // no route twice
  const auto documented = documented_operations();
  for (const auto& route : served) {
    INFO(route.first << " " << route.second << " is served but not in api/openapi/openapi.json");
    CHECK(documented.count(route) == 1);
  }
  for (const auto& operation : documented) {
    INFO(operation.first << " " << operation.second << " is in api/openapi/openapi.json but not served (core/routes.h)");
    CHECK(served.count(operation) == 1);
  }
}

TEST_CASE("the route table names each handler once") {
  std::set<kcron::api::RouteId> ids;
  for (const auto& spec : kcron::api::kRoutes) CHECK(ids.insert(spec.id).second);
  CHECK(ids.size() == static_cast<std::size_t>(kcron::api::RouteId::kOpenApi) + 1);
}

TEST_CASE("a path template becomes the expression cpp-httplib matches: parameters are groups, the rest literal") {
  CHECK(kcron::api::path_regex("/v1/jobs/{id}:cancel") == "/v1/jobs/(.+):cancel");
  CHECK(kcron::api::path_regex("/v1/openapi.json") == "/v1/openapi\\.json");
  CHECK(kcron::api::path_matches("/v1/jobs/{id}:cancel", "/v1/jobs/a/b:cancel"));
  CHECK_FALSE(kcron::api::path_matches("/v1/jobs/{id}:cancel", "/v1/jobs/:cancel"));
  CHECK_FALSE(kcron::api::path_matches("/v1/openapi.json", "/v1/openapiXjson"));
  CHECK_FALSE(kcron::api::path_matches("/v1/jobs", "/v1/jobs/x"));
}

TEST_CASE(
    "the built-in document is api/openapi/openapi.json, OpenAPI 3.1, and every schema in it uses only what the checker checks") {
  std::ifstream file(KCRON_OPENAPI_JSON);
  const std::string text((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
  CHECK(text == kcron::api::openapi_document());
  const auto& document = checker().document();
  CHECK(document.at("openapi").get<std::string>().substr(0, 4) == "3.1.");
  for (const auto& [name, definition] : document.at("components").at("schemas").items()) {
    INFO(name << ": " << failure(checker().check_schema(definition)));
    CHECK(checker().check_schema(definition));
  }
  // The schemas of parameters, headers and bodies too.
  std::size_t seen = 0;
  std::function<void(const json&)> visit = [&](const json& node) {
    if (node.is_object()) {
      if (const auto found = node.find("schema"); found != node.end() && !node.contains("type")) {
        ++seen;
        INFO(found->dump() << ": " << failure(checker().check_schema(*found)));
        CHECK(checker().check_schema(*found));
      }
      for (const auto& [key, child] : node.items()) {
        if (key != "schemas") visit(child);
      }
    } else if (node.is_array()) {
      for (const auto& child : node) visit(child);
    }
  };
  visit(document);
  CHECK(seen > 20);
}

TEST_CASE("every authenticated operation documents 401, 403, 429 and 500, and every error answer is a problem") {
  for (const auto& [path, item] : checker().document().at("paths").items()) {
    for (const auto& [method, operation] : item.items()) {
      INFO(method << " " << path);
      const auto& responses = operation.at("responses");
      const bool open = operation.contains("security") && operation.at("security").empty();
      for (const auto* status : {"401", "403", "429"}) CHECK(responses.contains(status) != open);
      CHECK(responses.contains("500"));
      for (const auto& [status, response] : responses.items()) {
        if (status.front() != '4' && status.front() != '5') continue;
        INFO(status);
        REQUIRE(response.contains("$ref"));
        auto resolved = checker().resolve(response.at("$ref").get<std::string>());
        REQUIRE(resolved.ok());
        CHECK((*resolved)->at("content").contains("application/problem+json"));
      }
    }
  }
}

TEST_CASE("a JobView with every field set, as kcron-api prints it, matches the JobView schema, each task and each when alike") {
  for (std::size_t variant = 0; variant < 6; ++variant) {
    kcron::v1::JobView view;
    fill(view, variant);
    view.mutable_job()->set_priority(7);
    const auto printed = json::parse(kcron::to_json(view));
    INFO(printed.dump());
    REQUIRE(printed.contains("job"));
    const auto valid = checker().check(schema("JobView"), printed);
    INFO(failure(valid));
    CHECK(valid);
  }
  // The default view: only what is always there.
  kcron::v1::JobView bare;
  bare.set_id("a");
  bare.set_tenant("default");
  CHECK(checker().check(schema("JobView"), json::parse(kcron::to_json(bare))));
}

TEST_CASE("the JobView schema refuses what kcron-api never prints") {
  kcron::v1::JobView view;
  fill(view, 0);
  auto printed = json::parse(kcron::to_json(view));
  auto unknown = printed;
  unknown["colour"] = "red";
  CHECK(failure(checker().check(schema("JobView"), unknown)) == "(the body): 'colour' is not a documented property");
  auto state = printed;
  state["history"][1]["state"] = "DONE";
  CHECK(failure(checker().check(schema("JobView"), state)).find("/history/1/state: \"DONE\" is not one of") == 0);
  auto number = printed;
  number["submitted_ms"] = 12;  // int64 is a string
  CHECK(failure(checker().check(schema("JobView"), number)) == "/submitted_ms: 12 is not of type \"string\"");
  auto two_tasks = printed;
  two_tasks["job"]["sleep"] = json::object();
  CHECK_FALSE(checker().check(schema("JobView"), two_tasks));
  auto nameless = printed;
  nameless.erase("id");
  CHECK(failure(checker().check(schema("JobView"), nameless)) == "(the body): 'id' is required");
}

TEST_CASE("a job body the API accepts matches JobSubmission, and bodies it refuses for their shape do not") {
  for (std::size_t variant = 0; variant < 6; ++variant) {
    kcron::v1::Job job;
    fill(job, variant);
    job.set_priority(7);
    job.set_tenant("acme");
    job.clear_submitted_by();
    job.clear_attempt();
    job.clear_history();
    job.clear_schedule_run();
    job.clear_flow();
    job.clear_template_();
    const auto body = kcron::to_json(job);
    INFO(body);
    auto parsed = kcron::api::parse_job_body(body, "acme", "alice", "generated");
    INFO(parsed.error.field << ": " << parsed.error.message);
    CHECK(parsed.ok());
    const auto valid = checker().check(schema("JobSubmission"), json::parse(body));
    INFO(failure(valid));
    CHECK(valid);
  }
  for (const auto* body :
       {R"({"noop":{}})", R"({"id":"x","delay":"5s","sleep":{"duration":"1.500s"}})",
        R"({"run_at":"2030-01-01T00:00:00Z","http":{"url":"https://example.com","body":"aGk="}})",
        R"({"run_at_ms":"1900000000000","exec":{"argv":["true"]},"retry":{"max_retries":3,"multiplier":1.5}})"}) {
    INFO(body);
    CHECK(kcron::api::parse_job_body(body, "acme", "alice", "generated").ok());
    CHECK(checker().check(schema("JobSubmission"), json::parse(body)));
  }
  for (const auto* body :
       {R"({"colour":"red","noop":{}})", R"({"delay":5,"noop":{}})", R"({"id":"x"})", R"({"noop":{},"sleep":{}})",
        R"({"delay":"5s","run_at_ms":"1","noop":{}})", R"({"noop":{"x":1}})", R"({"submitted_by":"mallory","noop":{}})",
        R"({"priority":10,"noop":{}})", R"({"flow":{"id":"f","node":"n"},"noop":{}})", R"({"template":"report@3","noop":{}})"}) {
    INFO(body);
    CHECK_FALSE(kcron::api::parse_job_body(body, "acme", "alice", "generated").ok());
    CHECK_FALSE(checker().check(schema("JobSubmission"), json::parse(body)));
  }
}

TEST_CASE("a problem as kcron-api writes it matches the Problem schema") {
  auto problem = kcron::api::make_problem(400, "unknown field", "colour");
  problem.request_id = "5f0c";
  CHECK(checker().check(schema("Problem"), json::parse(kcron::api::problem_json(problem))));
  CHECK(checker().check(schema("Problem"), json::parse(kcron::api::problem_json(kcron::api::make_problem(503, "retry")))));
}

TEST_CASE(
    "the checker implements type, required, additionalProperties, items, enum, const, pattern, bounds and the combinators") {
  const SchemaChecker local(json::parse(R"({"components": {"schemas": {
      "Pair": {"type": "object", "properties": {"a": {"type": "integer", "minimum": 1, "maximum": 3}, "b": {"$ref": "#/components/schemas/Code"}},
               "required": ["a"], "additionalProperties": false},
      "Code": {"type": "string", "pattern": "^[A-Z]{2}$", "minLength": 2, "maxLength": 2},
      "List": {"type": "array", "items": {"$ref": "#/components/schemas/Pair"}, "minItems": 1, "maxItems": 2},
      "Either": {"oneOf": [{"type": "string"}, {"type": "integer"}, {"type": "number"}]},
      "Any": {"anyOf": [{"enum": ["x", "y"]}, {"type": "boolean"}]},
      "NotBoth": {"not": {"required": ["a", "b"]}, "allOf": [{"type": "object"}]},
      "Map": {"type": "object", "additionalProperties": {"type": "string"}},
      "Fixed": {"const": 202},
      "Odd": {"type": "object", "patternProperties": {}}}}})"));
  const auto ref = [](const std::string& name) { return json{{"$ref", "#/components/schemas/" + name}}; };
  CHECK(local.check(ref("Pair"), json::parse(R"({"a": 2, "b": "AB"})")));
  CHECK(local.check(ref("Pair"), json::parse(R"({"a": 2.0})")));
  CHECK(failure(local.check(ref("Pair"), json::parse(R"({"a": 2.5})"))) == "/a: 2.5 is not of type \"integer\"");
  CHECK(failure(local.check(ref("Pair"), json::parse(R"({"a": 4})"))) == "/a: 4 is above 3");
  CHECK(failure(local.check(ref("Pair"), json::parse(R"({"b": "AB"})"))) == "(the body): 'a' is required");
  CHECK(failure(local.check(ref("Pair"), json::parse(R"({"a": 1, "c": 1})"))) == "(the body): 'c' is not a documented property");
  CHECK(failure(local.check(ref("Pair"), json::parse(R"({"a": 1, "b": "ABC"})"))) == "/b: \"ABC\" is longer than 2 characters");
  CHECK(failure(local.check(ref("Pair"), json::parse(R"({"a": 1, "b": "ab"})"))) == "/b: \"ab\" does not match ^[A-Z]{2}$");
  CHECK(failure(local.check(ref("List"), json::parse(R"([{"a": 1}, {"a": 0}])"))) == "/1/a: 0 is below 1");
  CHECK(failure(local.check(ref("List"), json::parse("[]"))) == "(the body): 0 items, fewer than 1");
  CHECK_FALSE(local.check(ref("List"), json::parse(R"([{"a": 1}, {"a": 1}, {"a": 1}])")));
  CHECK(local.check(ref("Either"), json("s")));
  CHECK(local.check(ref("Either"), json(1.5)));
  CHECK(local.check(ref("Any"), json("x")));
  CHECK(failure(local.check(ref("Either"), json(1))) == "(the body): 1 matches 2 of oneOf, not exactly one");
  CHECK_FALSE(local.check(ref("Either"), json(true)));
  CHECK(local.check(ref("Any"), json("y")));
  CHECK(local.check(ref("Any"), json(false)));
  CHECK_FALSE(local.check(ref("Any"), json("z")));
  CHECK(local.check(ref("NotBoth"), json::parse(R"({"a": 1})")));
  CHECK_FALSE(local.check(ref("NotBoth"), json::parse(R"({"a": 1, "b": 2})")));
  CHECK_FALSE(local.check(ref("NotBoth"), json::parse("[]")));
  CHECK(local.check(ref("Map"), json::parse(R"({"k": "v"})")));
  CHECK(local.check(ref("Fixed"), json(202)));
  CHECK(failure(local.check(ref("Fixed"), json(400))) == "(the body): 400 is not 202");
  CHECK(failure(local.check(ref("Map"), json::parse(R"({"k/x": 1})"))) == "/k~1x: 1 is not of type \"string\"");
  CHECK(failure(local.check(ref("Odd"), json::object())) ==
        "(the body): the schema uses 'patternProperties', which this checker does not implement");
  CHECK_FALSE(local.check_schema(local.document()["components"]["schemas"]["Odd"]));
  CHECK(failure(local.check(ref("Nope"), json::object())) ==
        "(the body): $ref #/components/schemas/Nope names nothing in the document");
  CHECK_FALSE(local.check_schema(ref("Nope")));
}

TEST_CASE("an answer is checked against its operation: status, content type, required headers and body") {
  const auto view = kcron::to_json([] {
    kcron::v1::JobView bare;
    bare.set_id("a");
    bare.set_tenant("acme");
    return bare;
  }());
  Answer good{200, {{"content-type", "application/json"}, {"X-Request-Id", "r-1"}}, view};
  CHECK(kcron::api::openapi::check_answer(checker(), "GET", "/v1/jobs/a?tenant=acme", good));
  Answer undocumented = good;
  undocumented.status = 418;
  CHECK(failure(kcron::api::openapi::check_answer(checker(), "GET", "/v1/jobs/a", undocumented))
            .find("GET /v1/jobs/a (/v1/jobs/{id}): status 418 is not documented") == 0);
  Answer no_id{200, {{"Content-Type", "application/json"}}, view};
  CHECK(failure(kcron::api::openapi::check_answer(checker(), "GET", "/v1/jobs/a", no_id)) ==
        "GET /v1/jobs/a (/v1/jobs/{id}) 200: header X-Request-Id is missing");
  Answer problem_type = good;
  problem_type.headers[0].second = "text/plain";
  CHECK_FALSE(kcron::api::openapi::check_answer(checker(), "GET", "/v1/jobs/a", problem_type));
  Answer problem{404,
                 {{"Content-Type", "application/problem+json"}, {"X-Request-Id", "r-1"}},
                 kcron::api::problem_json(kcron::api::make_problem(404, "no job"))};
  CHECK(kcron::api::openapi::check_answer(checker(), "GET", "/v1/jobs/a", problem));
  // A route the document does not have: only a 404 problem is right.
  CHECK(kcron::api::openapi::check_answer(checker(), "GET", "/v1/nothing", problem));
  CHECK_FALSE(kcron::api::openapi::check_answer(checker(), "DELETE", "/v1/jobs/a", good));
  // 413 comes before any route runs: no X-Request-Id is promised.
  Answer too_large{
      413, {{"Content-Type", "application/problem+json"}}, kcron::api::problem_json(kcron::api::make_problem(413, "big"))};
  CHECK(kcron::api::openapi::check_answer(checker(), "POST", "/v1/jobs", too_large));
  // The cancel route, not the job route, for a POST to .../x:cancel.
  Answer cancelled{202,
                   {{"Content-Type", "application/json"}, {"X-Request-Id", "r"}, {"Kcron-Consistency", "jobs/1/2"}},
                   R"({"id":"x","state":"JOB_STATE_UNSPECIFIED","consistency":"jobs/1/2","request_id":"r"})"};
  CHECK(kcron::api::openapi::check_answer(checker(), "POST", "/v1/jobs/x:cancel", cancelled));
  // A job's output: bytes, documented as application/octet-stream; JSON there is refused.
  Answer output{200, {{"Content-Type", "application/octet-stream"}, {"X-Request-Id", "r"}}, std::string("\x00\xff", 2) + "bytes"};
  CHECK(kcron::api::openapi::check_answer(checker(), "GET", "/v1/jobs/flow/a/outputs/stdout", output));
  Answer output_json = output;
  output_json.headers[0].second = "application/json";
  CHECK_FALSE(kcron::api::openapi::check_answer(checker(), "GET", "/v1/jobs/flow/a/outputs/stdout", output_json));
}

TEST_CASE("each route's own paths reach it: a more specific template is registered before one that would take its paths") {
  for (const auto& spec : kcron::api::kRoutes) {
    // Built by appending, not string::replace: GCC 12 at -O2 reports a false -Wrestrict on the latter.
    const std::string_view template_path(spec.path);
    const auto at = template_path.find("{id}");
    std::string path(template_path.substr(0, at));
    if (at != std::string_view::npos) {
      path += 'x';
      path += template_path.substr(at + 4);
    }
    const kcron::api::RouteSpec* first = nullptr;
    for (const auto& other : kcron::api::kRoutes) {
      if (other.method == spec.method && kcron::api::path_matches(other.path, path)) {
        first = &other;
        break;
      }
    }
    INFO(spec.method << " " << path);
    REQUIRE(first != nullptr);
    CHECK(first->path == spec.path);
  }
}

TEST_CASE(
    "a Schedule with every field set, as kcron-api prints it, matches the Schedule schema and a body with it matches "
    "ScheduleSubmission") {
  for (std::size_t variant = 0; variant < 6; ++variant) {
    kcron::v1::Schedule schedule;
    fill(schedule, variant);
    const auto printed = json::parse(kcron::to_json(schedule));
    INFO(printed.dump());
    REQUIRE(printed.contains("job_template"));
    const auto valid = checker().check(schema("Schedule"), printed);
    INFO(failure(valid));
    CHECK(valid);
    auto body = printed;
    body["job_template"].erase("history");
    body["job_template"].erase("schedule_run");
    body["job_template"].erase("submitted_by");
    body["job_template"].erase("flow");
    body["job_template"].erase("template");
    CHECK(checker().check(schema("ScheduleSubmission"), body));
    body.erase("expression");
    CHECK_FALSE(checker().check(schema("ScheduleSubmission"), body));
  }
  auto unknown = json::parse(kcron::to_json(kcron::v1::Schedule()));
  unknown["cron"] = "* * * * *";
  CHECK(failure(checker().check(schema("Schedule"), unknown)) == "(the body): 'cron' is not a documented property");
}

TEST_CASE("a dead letter entry with every field of its DeadLetter set, as kcron-api prints it, matches DeadLetterEntry") {
  for (std::size_t variant = 0; variant < 6; ++variant) {
    kcron::v1::DeadLetter letter;
    fill(letter, variant);
    // As dead_letter_json in api/http/api_server.cpp writes it.
    const json entry{{"id", "a"}, {"source", "kcron.dead-letters/0@12"}, {"letter", json::parse(kcron::to_json(letter))}};
    INFO(entry.dump());
    const auto valid = checker().check(schema("DeadLetterEntry"), entry);
    INFO(failure(valid));
    CHECK(valid);
  }
  CHECK_FALSE(checker().check(schema("DeadLetterEntry"), json{{"id", "a"}, {"letter", json::object()}}));
}

TEST_CASE("an AuditRecord and a WorkerHeartbeat with every field set, as kcron-api prints them, match their schemas") {
  kcron::v1::AuditRecord record;
  fill(record, 0);
  const json records{{"records", json::array({json::parse(kcron::to_json(record))})}, {"next_page_token", "00ff"}};
  INFO(records.dump());
  CHECK(checker().check(schema("AuditList"), records));
  kcron::v1::WorkerHeartbeat heartbeat;
  fill(heartbeat, 0);
  auto printed = json::parse(kcron::to_json(heartbeat));
  INFO(printed.dump());
  CHECK(checker().check(schema("WorkerHeartbeat"), printed));
  // As list_workers in api/http/api_server.cpp writes it: the heartbeat with `alive`.
  CHECK_FALSE(checker().check(schema("WorkerList"), json{{"workers", json::array({printed})}}));
  printed["alive"] = true;
  const auto valid = checker().check(schema("WorkerList"), json{{"workers", json::array({printed})}});
  INFO(failure(valid));
  CHECK(valid);
}

TEST_CASE("a backfill answers 202 with consistency tokens of several partitions, or 200 without any when nothing ran") {
  Answer ran{
      202,
      {{"Content-Type", "application/json"}, {"X-Request-Id", "r"}, {"Kcron-Consistency", "jobs/1/2,jobs/4/9"}},
      R"({"id":"s","runs":["s@2030-01-01T00:00:00Z","s@2030-01-01T01:00:00Z"],"consistency":"jobs/1/2,jobs/4/9","request_id":"r"})"};
  CHECK(kcron::api::openapi::check_answer(checker(), "POST", "/v1/schedules/s:backfill", ran));
  Answer none{200, {{"Content-Type", "application/json"}, {"X-Request-Id", "r"}}, R"({"id":"s","runs":[],"request_id":"r"})"};
  CHECK(kcron::api::openapi::check_answer(checker(), "POST", "/v1/schedules/s:backfill", none));
  Answer no_header = ran;
  no_header.headers.pop_back();
  CHECK_FALSE(kcron::api::openapi::check_answer(checker(), "POST", "/v1/schedules/s:backfill", no_header));
  // .../next is the next-instants route, not the schedule route.
  Answer next{
      200,
      {{"Content-Type", "application/json"}, {"X-Request-Id", "r"}},
      R"({"id":"s","expression":"@daily","time_zone":"UTC","explain":"at 00:00","paused":false,"next":["2030-01-01T00:00:00Z"]})"};
  CHECK(kcron::api::openapi::check_answer(checker(), "GET", "/v1/schedules/s/next", next));
}
