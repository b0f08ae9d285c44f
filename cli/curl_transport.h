// The HttpTransport kcron uses to reach kcron-api: libcurl, one easy handle per request, TLS
// verification always on (the system's CAs, or --api-ca), no redirects followed (the token goes
// only where --api points), bounded connect and total time.
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include "api_client.h"

namespace kcron::cli {

struct CurlSettings {
  std::string ca_file;  // PEM bundle that verifies the server; empty: the system's
  std::chrono::milliseconds connect_timeout{5000};
  std::chrono::milliseconds total_timeout{30000};
};

std::unique_ptr<HttpTransport> make_curl_transport(CurlSettings settings);

}  // namespace kcron::cli
