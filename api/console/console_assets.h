#pragma once
// The web console's files, built into kcron-api: console/build.mjs bundles console/src and writes
// the table (each file raw and gzipped, its content type and ETag) as a generated source; with
// KCRON_CONSOLE=OFF, console_missing.cpp holds one page that says the console was not built.

#include <span>
#include <string_view>

namespace kcron::api {

struct ConsoleAsset {
  std::string_view path;          // "/" for the page; "/assets/<name>" for the rest
  std::string_view content_type;  // with its charset for text
  std::string_view body;
  std::string_view gzip;  // the body gzipped (served to a client that accepts gzip)
  std::string_view etag;  // a quoted hash of the body
  bool immutable;         // a content-hashed name: a client may cache it for a year
};

std::span<const ConsoleAsset> console_assets();

}  // namespace kcron::api
