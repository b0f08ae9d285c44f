#include "curl_transport.h"

#include <curl/curl.h>
#include <fmt/format.h>

#include <array>
#include <cstring>
#include <memory>

#include "kcron/curl_handles.h"

namespace kcron::cli {
namespace {

using curl::EasyHandle;
using curl::StringList;

constexpr std::size_t kMaxBodyBytes = std::size_t{64} << 20;  // a page of 500 jobs is a few MB

// What the C callbacks of one transfer fill; they never throw (a failure stops the transfer).
struct Received {
  HttpResponse response;
  bool too_large = false;
};

std::size_t on_body(char* data, std::size_t size, std::size_t count, void* user) noexcept {
  auto* received = static_cast<Received*>(user);
  const std::size_t bytes = size * count;
  if (received->response.body.size() + bytes > kMaxBodyBytes) {
    received->too_large = true;
    return 0;
  }
  try {
    received->response.body.append(data, bytes);
  } catch (...) {
    return 0;
  }
  return bytes;
}

std::size_t on_header(char* data, std::size_t size, std::size_t count, void* user) noexcept {
  auto* received = static_cast<Received*>(user);
  const std::size_t bytes = size * count;
  try {
    std::string_view line(data, bytes);
    while (!line.empty() && (line.back() == '\r' || line.back() == '\n')) line.remove_suffix(1);
    if (line.starts_with("HTTP/")) {
      received->response.headers.clear();  // a new response (after a 100 Continue)
      return bytes;
    }
    const auto colon = line.find(':');
    if (colon == std::string_view::npos) return bytes;
    auto value = line.substr(colon + 1);
    while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) value.remove_prefix(1);
    received->response.headers.emplace_back(std::string(line.substr(0, colon)), std::string(value));
  } catch (...) {
    return 0;
  }
  return bytes;
}

class CurlTransport final : public HttpTransport {
 public:
  explicit CurlTransport(CurlSettings settings) : settings_(std::move(settings)) {
    static const bool initialized = curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK;
    initialized_ = initialized;
  }

  Result<HttpResponse> send(const HttpRequest& request) override {
    if (!initialized_) return make_error("libcurl could not be initialized");
    EasyHandle easy(curl_easy_init());
    if (!easy) return make_error("libcurl could not make a handle");
    StringList headers;
    for (const auto& [name, value] : request.headers) {
      if (!headers.append(fmt::format("{}: {}", name, value))) return make_error("out of memory for the request headers");
    }
    if (!headers.append("Expect:")) return make_error("out of memory for the request headers");  // no 100-continue round trip
    Received received;
    std::array<char, CURL_ERROR_SIZE> why{};
    CURL* handle = easy.get();
    const bool set =
        curl_easy_setopt(handle, CURLOPT_URL, request.url.c_str()) == CURLE_OK &&
        curl_easy_setopt(handle, CURLOPT_PROTOCOLS_STR, "http,https") == CURLE_OK &&
        curl_easy_setopt(handle, CURLOPT_FOLLOWLOCATION, 0L) == CURLE_OK &&
        curl_easy_setopt(handle, CURLOPT_SSL_VERIFYPEER, 1L) == CURLE_OK &&
        curl_easy_setopt(handle, CURLOPT_SSL_VERIFYHOST, 2L) == CURLE_OK &&
        (settings_.ca_file.empty() || curl_easy_setopt(handle, CURLOPT_CAINFO, settings_.ca_file.c_str()) == CURLE_OK) &&
        curl_easy_setopt(handle, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(settings_.connect_timeout.count())) == CURLE_OK &&
        curl_easy_setopt(handle, CURLOPT_TIMEOUT_MS, static_cast<long>(settings_.total_timeout.count())) == CURLE_OK &&
        curl_easy_setopt(handle, CURLOPT_NOSIGNAL, 1L) == CURLE_OK &&
        curl_easy_setopt(handle, CURLOPT_USERAGENT, "kcron-cli") == CURLE_OK &&
        curl_easy_setopt(handle, CURLOPT_HTTPHEADER, headers.get()) == CURLE_OK &&
        curl_easy_setopt(handle, CURLOPT_ERRORBUFFER, why.data()) == CURLE_OK &&
        curl_easy_setopt(handle, CURLOPT_WRITEFUNCTION, on_body) == CURLE_OK &&
        curl_easy_setopt(handle, CURLOPT_WRITEDATA, &received) == CURLE_OK &&
        curl_easy_setopt(handle, CURLOPT_HEADERFUNCTION, on_header) == CURLE_OK &&
        curl_easy_setopt(handle, CURLOPT_HEADERDATA, &received) == CURLE_OK;
    if (!set) return make_error("libcurl refused an option (built without http/https?)");
    if (request.method != "GET") {
      // POSTFIELDS with its size sends exactly these bytes (none for an empty body); PUT as a custom verb.
      if (curl_easy_setopt(handle, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(request.body.size())) != CURLE_OK ||
          curl_easy_setopt(handle, CURLOPT_POSTFIELDS, request.body.c_str()) != CURLE_OK ||
          (request.method != "POST" && curl_easy_setopt(handle, CURLOPT_CUSTOMREQUEST, request.method.c_str()) != CURLE_OK)) {
        return make_error("libcurl refused the request body");
      }
    }
    const CURLcode code = curl_easy_perform(handle);
    if (received.too_large) return make_error("the answer exceeds {} MiB", kMaxBodyBytes >> 20);
    if (code != CURLE_OK) {
      const std::string detail = why[0] != '\0' ? std::string(why.data()) : std::string(curl_easy_strerror(code));
      return Error(detail);
    }
    long status = 0;
    curl_easy_getinfo(handle, CURLINFO_RESPONSE_CODE, &status);
    received.response.status = static_cast<int>(status);
    return std::move(received.response);
  }

 private:
  CurlSettings settings_;
  bool initialized_ = false;
};

}  // namespace

std::unique_ptr<HttpTransport> make_curl_transport(CurlSettings settings) {
  return std::make_unique<CurlTransport>(std::move(settings));
}

}  // namespace kcron::cli
