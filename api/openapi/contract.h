// Checks kcron-api's answers against its OpenAPI document: a validator for the JSON Schema subset
// the document uses, and a check of one HTTP answer against the operation the document gives for
// its method, path and status. The integration tests run every answer they receive through it, so
// the first answer that breaks the contract fails the test that got it. Pure; used by tests only.
#pragma once

#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <regex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "kcron/result.h"

namespace kcron::api::openapi {

// Validates JSON values against the schemas of one OpenAPI 3.1 document (JSON Schema 2020-12).
// Implements $ref (to a JSON pointer in the document), type, enum, const, properties, required,
// additionalProperties, items, minItems, maxItems, minLength, maxLength, minimum, maximum, pattern
// (ECMAScript, searched as JSON Schema says), allOf, anyOf, oneOf and not. Annotations
// (description, format, readOnly, examples...) are not checked. Any other keyword is an error of
// the schema, so that no schema says more than is checked. Thread-safe.
class SchemaChecker {
 public:
  explicit SchemaChecker(nlohmann::json document);

  // Success when `value` is valid against `schema` (a schema of the document, e.g.
  // {"$ref": "#/components/schemas/Job"}); else the first violation, with the JSON pointer of the
  // value at fault: `/jobs/0/state: "FOO" is not one of ["PENDING", ...]`.
  Status check(const nlohmann::json& schema, const nlohmann::json& value) const;

  // Success when `schema` and the schemas inside it use only keywords check() knows and each of
  // their $refs names something in the document.
  Status check_schema(const nlohmann::json& schema) const;

  // The object a local reference ("#/components/schemas/Job") names, or an error.
  Result<const nlohmann::json*> resolve(std::string_view reference) const;

  const nlohmann::json& document() const { return document_; }

 private:
  Status walk(const nlohmann::json& schema, const std::string& where, int depth) const;
  Status validate(const nlohmann::json& schema, const nlohmann::json& value, const std::string& where, int depth) const;
  const std::regex& pattern(const std::string& source) const;

  nlohmann::json document_;
  mutable std::mutex patterns_mutex_;
  mutable std::map<std::string, std::regex> patterns_;  // guarded by patterns_mutex_; compiled once each
};

// One HTTP answer as a client saw it.
struct Answer {
  int status = 0;
  std::vector<std::pair<std::string, std::string>> headers;  // names in any case
  std::string body;
};

// Checks an answer to `method` `target` (a path, with or without its query) against the document:
// the operation is documented (else the answer must be a 404 problem: an unknown route), its
// status is documented for it, the Content-Type is the documented media type and the body
// validates against its schema (no content documented: an empty body), and every required header
// is there, every documented header present matches its schema.
Status check_answer(const SchemaChecker& checker, std::string_view method, std::string_view target, const Answer& answer);

// A checker of the document built into kcron-api (openapi_document()), parsed once.
const SchemaChecker& built_in_checker();

}  // namespace kcron::api::openapi
