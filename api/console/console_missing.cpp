// kcron-api built with KCRON_CONSOLE=OFF (no node and npm): one page that says so, in place of
// the console (console/build.mjs writes the real table).
#include "console/console_assets.h"

namespace kcron::api {
namespace {

constexpr std::string_view kPage =
    "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>kcron</title></head><body>"
    "<p>This kcron-api was built without its web console (CMake option KCRON_CONSOLE=OFF, for a build without "
    "node and npm). The HTTP API is at /v1/; its OpenAPI document at /v1/openapi.json.</p></body></html>";

}  // namespace

std::span<const ConsoleAsset> console_assets() {
  static const ConsoleAsset assets[] = {{"/", "text/html; charset=utf-8", kPage, {}, "\"console-not-built\"", false}};
  return assets;
}

}  // namespace kcron::api
