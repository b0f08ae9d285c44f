#include "openapi/contract.h"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cmath>

#include "core/routes.h"
#include "openapi/document.h"

namespace kcron::api::openapi {
namespace {

using nlohmann::json;

constexpr int kMaxDepth = 64;  // bounds $ref chains and nesting

// Annotations: they say something to a reader and nothing to a validator.
constexpr std::array<std::string_view, 12> kAnnotations{"description", "title",           "format",           "readOnly",
                                                        "writeOnly",   "deprecated",      "examples",         "default",
                                                        "$comment",    "contentEncoding", "contentMediaType", "example"};
constexpr std::array<std::string_view, 20> kAssertions{
    "$ref",    "type",     "enum",     "const",     "properties", "required", "additionalProperties",
    "items",   "minItems", "maxItems", "minLength", "maxLength",  "minimum",  "maximum",
    "pattern", "allOf",    "anyOf",    "oneOf",     "not",        "$schema"};

bool known_keyword(std::string_view keyword) {
  return std::find(kAnnotations.begin(), kAnnotations.end(), keyword) != kAnnotations.end() ||
         std::find(kAssertions.begin(), kAssertions.end(), keyword) != kAssertions.end();
}

std::string brief(const json& value) {
  auto text = value.dump(-1, ' ', false, json::error_handler_t::replace);
  if (text.size() > 120) text = text.substr(0, 117) + "...";
  return text;
}

std::string pointer_token(std::string_view name) {
  std::string token;
  for (const char c : name) {
    if (c == '~') {
      token += "~0";
    } else if (c == '/') {
      token += "~1";
    } else {
      token.push_back(c);
    }
  }
  return token;
}

std::string at(const std::string& where) {
  return where.empty() ? std::string("(the body)") : where;
}

bool has_type(const json& value, std::string_view type) {
  if (type == "object") return value.is_object();
  if (type == "array") return value.is_array();
  if (type == "string") return value.is_string();
  if (type == "boolean") return value.is_boolean();
  if (type == "null") return value.is_null();
  if (type == "number") return value.is_number();
  if (type == "integer") {
    if (value.is_number_integer()) return true;
    if (!value.is_number_float()) return false;
    const auto number = value.get<double>();
    return std::isfinite(number) && std::floor(number) == number;
  }
  return false;
}

double number_of(const json& value) {
  return value.get<double>();
}

// Code points of UTF-8 text (JSON Schema counts lengths in characters).
std::size_t characters(std::string_view text) {
  return static_cast<std::size_t>(
      std::count_if(text.begin(), text.end(), [](char c) { return (static_cast<unsigned char>(c) & 0xC0U) != 0x80U; }));
}

std::string lower(std::string_view text) {
  std::string out(text);
  std::transform(out.begin(), out.end(), out.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

}  // namespace

SchemaChecker::SchemaChecker(json document) : document_(std::move(document)) {}

Result<const json*> SchemaChecker::resolve(std::string_view reference) const {
  if (reference.substr(0, 2) != "#/") return make_error("$ref {} is not a pointer into this document", reference);
  try {
    const json::json_pointer pointer(std::string(reference.substr(1)));
    if (!document_.contains(pointer)) return make_error("$ref {} names nothing in the document", reference);
    return &document_.at(pointer);
  } catch (const json::exception& error) {
    return make_error("$ref {} is not a JSON pointer: {}", reference, error.what());
  }
}

const std::regex& SchemaChecker::pattern(const std::string& source) const {
  const std::lock_guard lock(patterns_mutex_);
  auto found = patterns_.find(source);
  if (found == patterns_.end()) found = patterns_.emplace(source, std::regex(source, std::regex::ECMAScript)).first;
  return found->second;
}

Status SchemaChecker::check_schema(const json& schema) const {
  return walk(schema, "", 0);
}

Status SchemaChecker::walk(const json& schema, const std::string& where, int depth) const {
  if (depth > kMaxDepth) return make_error("{}: schemas nest deeper than {}", at(where), kMaxDepth);
  if (schema.is_boolean()) return Status::success();
  if (!schema.is_object()) return make_error("{}: {} is neither an object nor a boolean", at(where), brief(schema));
  for (const auto& [keyword, argument] : schema.items()) {
    const auto inner = where + "/" + pointer_token(keyword);
    if (!known_keyword(keyword)) return make_error("{}: '{}' is not a keyword this checker implements", at(where), keyword);
    if (keyword == "$ref") {
      if (auto target = resolve(argument.get<std::string>()); !target) return target.error().within(at(where));
    } else if (keyword == "properties") {
      for (const auto& [name, property] : argument.items()) {
        if (auto valid = walk(property, inner + "/" + pointer_token(name), depth + 1); !valid) return valid;
      }
    } else if (keyword == "items" || keyword == "additionalProperties" || keyword == "not") {
      if (auto valid = walk(argument, inner, depth + 1); !valid) return valid;
    } else if (keyword == "allOf" || keyword == "anyOf" || keyword == "oneOf") {
      for (std::size_t index = 0; index < argument.size(); ++index) {
        if (auto valid = walk(argument[index], fmt::format("{}/{}", inner, index), depth + 1); !valid) return valid;
      }
    }
  }
  return Status::success();
}

Status SchemaChecker::check(const json& schema, const json& value) const {
  return validate(schema, value, "", 0);
}

Status SchemaChecker::validate(const json& schema, const json& value, const std::string& where, int depth) const {
  if (depth > kMaxDepth) return make_error("{}: schemas nest deeper than {} (a $ref cycle?)", at(where), kMaxDepth);
  if (schema.is_boolean()) {
    if (schema.get<bool>()) return Status::success();
    return make_error("{}: nothing is allowed here, got {}", at(where), brief(value));
  }
  if (!schema.is_object()) return make_error("{}: the schema {} is neither an object nor a boolean", at(where), brief(schema));
  for (const auto& [keyword, argument] : schema.items()) {
    if (!known_keyword(keyword))
      return make_error("{}: the schema uses '{}', which this checker does not implement", at(where), keyword);
  }
  if (const auto ref = schema.find("$ref"); ref != schema.end()) {
    auto target = resolve(ref->get<std::string>());
    if (!target) return target.error().within(at(where));
    if (auto valid = validate(**target, value, where, depth + 1); !valid) return valid;
  }
  if (const auto type = schema.find("type"); type != schema.end()) {
    bool matched = false;
    if (type->is_array()) {
      for (const auto& one : *type) matched = matched || has_type(value, one.get<std::string>());
    } else {
      matched = has_type(value, type->get<std::string>());
    }
    if (!matched) return make_error("{}: {} is not of type {}", at(where), brief(value), brief(*type));
  }
  if (const auto options = schema.find("enum"); options != schema.end()) {
    if (std::find(options->begin(), options->end(), value) == options->end()) {
      return make_error("{}: {} is not one of {}", at(where), brief(value), brief(*options));
    }
  }
  if (const auto constant = schema.find("const"); constant != schema.end() && *constant != value) {
    return make_error("{}: {} is not {}", at(where), brief(value), brief(*constant));
  }
  if (value.is_object()) {
    const auto properties = schema.find("properties");
    if (properties != schema.end()) {
      for (const auto& [name, property] : properties->items()) {
        const auto member = value.find(name);
        if (member == value.end()) continue;
        if (auto valid = validate(property, *member, where + "/" + pointer_token(name), depth + 1); !valid) return valid;
      }
    }
    if (const auto required = schema.find("required"); required != schema.end()) {
      for (const auto& name : *required) {
        if (!value.contains(name.get<std::string>()))
          return make_error("{}: '{}' is required", at(where), name.get<std::string>());
      }
    }
    if (const auto additional = schema.find("additionalProperties"); additional != schema.end()) {
      for (const auto& [name, member] : value.items()) {
        if (properties != schema.end() && properties->contains(name)) continue;
        if (additional->is_boolean() && !additional->get<bool>()) {
          return make_error("{}: '{}' is not a documented property", at(where), name);
        }
        if (auto valid = validate(*additional, member, where + "/" + pointer_token(name), depth + 1); !valid) return valid;
      }
    }
  }
  if (value.is_array()) {
    if (const auto items = schema.find("items"); items != schema.end()) {
      for (std::size_t index = 0; index < value.size(); ++index) {
        if (auto valid = validate(*items, value[index], fmt::format("{}/{}", where, index), depth + 1); !valid) return valid;
      }
    }
    if (const auto least = schema.find("minItems"); least != schema.end() && value.size() < least->get<std::size_t>()) {
      return make_error("{}: {} items, fewer than {}", at(where), value.size(), least->get<std::size_t>());
    }
    if (const auto most = schema.find("maxItems"); most != schema.end() && value.size() > most->get<std::size_t>()) {
      return make_error("{}: {} items, more than {}", at(where), value.size(), most->get<std::size_t>());
    }
  }
  if (value.is_string()) {
    const auto& text = value.get_ref<const std::string&>();
    if (const auto least = schema.find("minLength"); least != schema.end() && characters(text) < least->get<std::size_t>()) {
      return make_error("{}: {} is shorter than {} characters", at(where), brief(value), least->get<std::size_t>());
    }
    if (const auto most = schema.find("maxLength"); most != schema.end() && characters(text) > most->get<std::size_t>()) {
      return make_error("{}: {} is longer than {} characters", at(where), brief(value), most->get<std::size_t>());
    }
    if (const auto source = schema.find("pattern"); source != schema.end()) {
      if (!std::regex_search(text, pattern(source->get<std::string>()))) {
        return make_error("{}: {} does not match {}", at(where), brief(value), source->get<std::string>());
      }
    }
  }
  if (value.is_number()) {
    if (const auto least = schema.find("minimum"); least != schema.end() && number_of(value) < number_of(*least)) {
      return make_error("{}: {} is below {}", at(where), brief(value), brief(*least));
    }
    if (const auto most = schema.find("maximum"); most != schema.end() && number_of(value) > number_of(*most)) {
      return make_error("{}: {} is above {}", at(where), brief(value), brief(*most));
    }
  }
  if (const auto all = schema.find("allOf"); all != schema.end()) {
    for (const auto& part : *all) {
      if (auto valid = validate(part, value, where, depth + 1); !valid) return valid;
    }
  }
  if (const auto any = schema.find("anyOf"); any != schema.end()) {
    std::vector<std::string> failures;
    for (const auto& part : *any) {
      auto valid = validate(part, value, where, depth + 1);
      if (valid) break;
      failures.push_back(valid.error().message());
    }
    if (failures.size() == any->size()) {
      return make_error("{}: {} matches none of anyOf: {}", at(where), brief(value), fmt::join(failures, "; "));
    }
  }
  if (const auto one = schema.find("oneOf"); one != schema.end()) {
    std::vector<std::string> failures;
    std::size_t matches = 0;
    for (const auto& part : *one) {
      auto valid = validate(part, value, where, depth + 1);
      if (valid) {
        ++matches;
      } else {
        failures.push_back(valid.error().message());
      }
    }
    if (matches == 0) return make_error("{}: {} matches none of oneOf: {}", at(where), brief(value), fmt::join(failures, "; "));
    if (matches > 1) return make_error("{}: {} matches {} of oneOf, not exactly one", at(where), brief(value), matches);
  }
  if (const auto negated = schema.find("not"); negated != schema.end()) {
    if (validate(*negated, value, where, depth + 1))
      return make_error("{}: {} matches {}, which 'not' forbids", at(where), brief(value), brief(*negated));
  }
  return Status::success();
}

namespace {

// Follows an object's $ref, if it has one, within the document.
Result<const json*> dereference(const SchemaChecker& checker, const json& object) {
  const json* current = &object;
  for (int hops = 0; hops < kMaxDepth && current->is_object() && current->contains("$ref"); ++hops) {
    auto target = checker.resolve((*current)["$ref"].get<std::string>());
    if (!target) return target.error();
    current = *target;
  }
  return current;
}

// The literal characters of a template: the more a matching template has, the more specific it is.
std::size_t literal_length(std::string_view path_template) {
  std::size_t length = 0;
  bool inside = false;
  for (const char c : path_template) {
    if (c == '{') inside = true;
    if (!inside) ++length;
    if (c == '}') inside = false;
  }
  return length;
}

const std::string* header_value(const Answer& answer, std::string_view name) {
  const auto wanted = lower(name);
  for (const auto& [key, value] : answer.headers) {
    if (lower(key) == wanted) return &value;
  }
  return nullptr;
}

}  // namespace

Status check_answer(const SchemaChecker& checker, std::string_view method, std::string_view target, const Answer& answer) {
  const auto path = target.substr(0, target.find('?'));
  const auto operation_key = lower(method);
  const auto& document = checker.document();
  const json* operation = nullptr;
  std::string path_template;
  for (const auto& [candidate, item] : document.at("paths").items()) {
    if (!item.contains(operation_key) || !path_matches(candidate, path)) continue;
    if (operation == nullptr || literal_length(candidate) > literal_length(path_template)) {
      operation = &item.at(operation_key);
      path_template = candidate;
    }
  }
  const auto* content_type_header = header_value(answer, "Content-Type");
  const std::string content_type =
      content_type_header == nullptr ? std::string() : lower(content_type_header->substr(0, content_type_header->find(';')));
  const auto name = fmt::format("{} {}", method, path);
  if (operation == nullptr) {
    // An unknown route: kcron-api answers 404 with a problem.
    if (answer.status != 404 || content_type != "application/problem+json") {
      return make_error("{} is not in the OpenAPI document, and the answer is {} {} rather than a 404 problem", name,
                        answer.status, content_type);
    }
    auto body = json::parse(answer.body, nullptr, false);
    if (auto valid = checker.check(json{{"$ref", "#/components/schemas/Problem"}}, body); !valid)
      return valid.error().within(name);
    return Status::success();
  }
  const auto& responses = operation->at("responses");
  const auto status = std::to_string(answer.status);
  const json* declared = nullptr;
  if (responses.contains(status)) {
    declared = &responses.at(status);
  } else if (responses.contains("default")) {
    declared = &responses.at("default");
  } else {
    std::vector<std::string> documented;
    for (const auto& [code, response] : responses.items()) documented.push_back(code);
    return make_error("{} ({}): status {} is not documented (documented: {})", name, path_template, answer.status,
                      fmt::join(documented, ", "));
  }
  auto response = dereference(checker, *declared);
  if (!response) return response.error().within(name);
  const auto context = fmt::format("{} ({}) {}", name, path_template, answer.status);
  if (const auto headers = (*response)->find("headers"); headers != (*response)->end()) {
    for (const auto& [header, declared_header] : headers->items()) {
      auto definition = dereference(checker, declared_header);
      if (!definition) return definition.error().within(context);
      const auto* value = header_value(answer, header);
      if (value == nullptr) {
        if ((*definition)->value("required", false)) return make_error("{}: header {} is missing", context, header);
        continue;
      }
      if (const auto schema = (*definition)->find("schema"); schema != (*definition)->end()) {
        if (auto valid = checker.check(*schema, json(*value)); !valid)
          return valid.error().within(fmt::format("{}: header {}", context, header));
      }
    }
  }
  const auto content = (*response)->find("content");
  if (content == (*response)->end() || content->empty()) {
    if (!answer.body.empty()) return make_error("{}: no body is documented, got {} bytes", context, answer.body.size());
    return Status::success();
  }
  if (!content->contains(content_type)) {
    std::vector<std::string> documented;
    for (const auto& [media, unused] : content->items()) documented.push_back(media);
    return make_error("{}: Content-Type '{}' is not the documented {}", context, content_type, fmt::join(documented, ", "));
  }
  const auto& media = content->at(content_type);
  // A documented binary body (application/octet-stream: a job's output) has no schema to check.
  if (!content_type.ends_with("json")) return Status::success();
  auto body = json::parse(answer.body, nullptr, false);
  if (body.is_discarded()) return make_error("{}: the body is not JSON: {}", context, answer.body.substr(0, 120));
  if (const auto schema = media.find("schema"); schema != media.end()) {
    if (auto valid = checker.check(*schema, body); !valid) return valid.error().within(context);
  }
  return Status::success();
}

const SchemaChecker& built_in_checker() {
  static const SchemaChecker checker(json::parse(openapi_document()));
  return checker;
}

}  // namespace kcron::api::openapi
