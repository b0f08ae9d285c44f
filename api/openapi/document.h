// kcron-api's OpenAPI 3.1 document (api/openapi/openapi.json), built into the program at build
// time (cmake/embed_text.cmake): GET /v1/openapi.json answers it, tests check answers against it.
#pragma once

#include <string_view>

namespace kcron::api {

// The document's text, exactly as api/openapi/openapi.json holds it.
std::string_view openapi_document();

}  // namespace kcron::api
