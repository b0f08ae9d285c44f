#include "objects/s3_store.h"

#include <curl/curl.h>
#include <fmt/format.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include <array>
#include <charconv>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <mutex>
#include <random>
#include <sstream>
#include <thread>

#include "kcron/curl_handles.h"

namespace kcron::worker {
namespace {

using curl::EasyHandle;
using curl::StringList;

constexpr std::size_t kMaxErrorBodyBytes = std::size_t{64} * 1024;

struct Transfer {
  std::string_view upload;  // what is still to send
  std::string body;         // what came back
  std::size_t max_body = 0;
  bool too_large = false;
  const ObjectSink* sink = nullptr;  // a 200's body goes here instead of `body`
  CURL* handle = nullptr;
  bool sink_stopped = false;
  const StopCheck* stop = nullptr;  // asked on libcurl's progress callback
  bool stopped = false;
};

int on_progress(void* user, curl_off_t /*down_total*/, curl_off_t /*down_now*/, curl_off_t /*up_total*/,
                curl_off_t /*up_now*/) noexcept {
  auto* transfer = static_cast<Transfer*>(user);
  try {
    if (transfer->stop != nullptr && *transfer->stop && (*transfer->stop)()) transfer->stopped = true;
  } catch (...) {
    transfer->stopped = true;
  }
  return transfer->stopped ? 1 : 0;  // non-zero: CURLE_ABORTED_BY_CALLBACK
}

std::size_t on_body(char* data, std::size_t size, std::size_t count, void* user) noexcept {
  auto* transfer = static_cast<Transfer*>(user);
  const std::size_t bytes = size * count;
  if (transfer->sink != nullptr) {
    long status = 0;
    curl_easy_getinfo(transfer->handle, CURLINFO_RESPONSE_CODE, &status);
    if (status == 200) {
      try {
        if ((*transfer->sink)(std::string_view(data, bytes))) return bytes;
      } catch (...) {
      }
      transfer->sink_stopped = true;
      return 0;
    }
  }
  if (transfer->body.size() + bytes > transfer->max_body) {
    transfer->too_large = true;
    return 0;
  }
  try {
    transfer->body.append(data, bytes);
  } catch (...) {
    return 0;
  }
  return bytes;
}

std::size_t on_read(char* buffer, std::size_t size, std::size_t count, void* user) noexcept {
  auto* transfer = static_cast<Transfer*>(user);
  const std::size_t bytes = std::min(size * count, transfer->upload.size());
  std::copy_n(transfer->upload.data(), bytes, buffer);
  transfer->upload.remove_prefix(bytes);
  return bytes;
}

// The text of the first <tag>...</tag> in an S3 XML answer, bounded; empty when absent.
std::string xml_value(std::string_view xml, std::string_view tag, std::size_t from = 0, std::size_t* end = nullptr) {
  const std::string open = fmt::format("<{}>", tag);
  const std::string close = fmt::format("</{}>", tag);
  const auto start = xml.find(open, from);
  if (start == std::string_view::npos) return {};
  const auto stop = xml.find(close, start + open.size());
  if (stop == std::string_view::npos) return {};
  if (end != nullptr) *end = stop + close.size();
  return std::string(xml.substr(start + open.size(), stop - start - open.size()));
}

std::string xml_unescape(std::string text) {
  static constexpr std::array<std::pair<std::string_view, std::string_view>, 5> kEntities = {
      {{"&lt;", "<"}, {"&gt;", ">"}, {"&quot;", "\""}, {"&apos;", "'"}, {"&amp;", "&"}}};
  for (const auto& [entity, plain] : kEntities) {
    for (auto at = text.find(entity); at != std::string::npos; at = text.find(entity, at + plain.size())) {
      text.replace(at, entity.size(), plain);
    }
  }
  return text;
}

// A key as a URL path: every byte percent-encoded but the unreserved ones and '/'.
std::string key_path(std::string_view key) {
  std::string out;
  std::size_t start = 0;
  while (true) {
    const auto slash = key.find('/', start);
    out += url_escape(key.substr(start, slash == std::string_view::npos ? std::string_view::npos : slash - start));
    if (slash == std::string_view::npos) break;
    out += '/';
    start = slash + 1;
  }
  return out;
}

std::string printable(std::string_view text, std::size_t limit) {
  std::string out;
  for (const char c : text.substr(0, limit)) out += (c >= ' ' && c < 127) ? c : '?';
  return out;
}

// "2026-12-07T22:00:00.000Z" (S3's LastModified) -> Unix ms; 0 when it is not that.
std::int64_t iso8601_ms(const std::string& text) {
  std::tm parts{};
  int millis = 0;
  // NOLINTNEXTLINE(cert-err34-c): every field is checked by the count and the ranges below
  const int read = std::sscanf(text.c_str(), "%4d-%2d-%2dT%2d:%2d:%2d", &parts.tm_year, &parts.tm_mon, &parts.tm_mday,
                               &parts.tm_hour, &parts.tm_min, &parts.tm_sec);
  if (read != 6 || parts.tm_mon < 1 || parts.tm_mon > 12 || parts.tm_mday < 1 || parts.tm_mday > 31) return 0;
  const auto dot = text.find('.');
  if (dot != std::string::npos && dot + 4 <= text.size()) {
    const auto digits = std::string_view(text).substr(dot + 1, 3);
    (void)std::from_chars(digits.data(), digits.data() + digits.size(), millis);
  }
  if (text.empty() || text.back() != 'Z') return 0;
  parts.tm_year -= 1900;
  parts.tm_mon -= 1;
  const auto seconds = timegm(&parts);
  if (seconds < 0) return 0;
  return static_cast<std::int64_t>(seconds) * 1000 + millis;
}

// curl_easy_setopt with its result kept: the first option libcurl refuses is remembered, the
// rest are skipped, and the request is never performed half-configured.
class Options {
 public:
  explicit Options(CURL* handle) : handle_(handle) {}
  template <typename Value>
  void set(CURLoption option, const char* name, Value value) {
    if (code_ != CURLE_OK) return;
    code_ = curl_easy_setopt(handle_, option, value);
    if (code_ != CURLE_OK) failed_ = name;
  }
  bool ok() const { return code_ == CURLE_OK; }
  CURLcode code() const { return code_; }
  const char* failed_option() const { return failed_; }

 private:
  CURL* handle_;
  CURLcode code_ = CURLE_OK;
  const char* failed_ = "";
};

// The pause before try `retry` + 1: backoff × 2^(retry-1), jittered between half and 1.5 times
// that so workers hit by the same outage do not come back in step.
std::chrono::milliseconds retry_delay(std::chrono::milliseconds backoff, int retry) {
  thread_local std::mt19937_64 random{std::random_device{}()};
  const auto base = backoff.count() << std::min(retry - 1, 10);
  std::uniform_int_distribution<std::int64_t> jitter(base / 2, base + base / 2);
  return std::chrono::milliseconds(jitter(random));
}

void global_init() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

}  // namespace

std::string sha256_hex(std::string_view bytes) {
  std::array<unsigned char, EVP_MAX_MD_SIZE> digest{};
  unsigned int length = 0;
  if (EVP_Digest(bytes.data(), bytes.size(), digest.data(), &length, EVP_sha256(), nullptr) != 1) return {};
  std::string hex;
  for (unsigned int i = 0; i < length; ++i) hex += fmt::format("{:02x}", digest.at(i));
  return hex;
}

std::string new_run_token() {
  std::array<unsigned char, 16> random{};
  if (RAND_bytes(random.data(), static_cast<int>(random.size())) != 1) {
    // Never a fixed token: fall back on the clock and the address of a local (unique enough per process).
    const auto now = std::chrono::steady_clock::now().time_since_epoch().count();
    return fmt::format("{:016x}{:016x}", static_cast<std::uint64_t>(now), reinterpret_cast<std::uintptr_t>(&random));
  }
  std::string hex;
  for (const unsigned char byte : random) hex += fmt::format("{:02x}", byte);
  return hex;
}

S3Store::S3Store(ObjectSettings settings, Credentials credentials)
    : settings_(std::move(settings)), credentials_(std::move(credentials)) {
  global_init();
  while (settings_.endpoint.ends_with('/')) settings_.endpoint.pop_back();
}

namespace {

struct Request {
  const char* method = "GET";
  std::string path;  // after the endpoint, from '/'
  std::string_view body;
  std::size_t max_answer = kMaxErrorBodyBytes;
  std::string what;                  // for errors: "PUT s3://bucket/key"
  const ObjectSink* sink = nullptr;  // GET: a 200's body is handed here
  const StopCheck* stop = nullptr;   // PUT: abandons the transfer once it says true
};

Request request(const char* method, std::string path, std::string what, std::string_view body = {},
                std::size_t max_answer = kMaxErrorBodyBytes) {
  Request made;
  made.method = method;
  made.path = std::move(path);
  made.body = body;
  made.max_answer = max_answer;
  made.what = std::move(what);
  return made;
}

struct Answer {
  long status = 0;
  std::string body;
  std::int64_t length = -1;      // Content-Length (HEAD)
  std::int64_t modified_s = -1;  // Last-Modified (HEAD)
};

}  // namespace

namespace {

// Whether a failed transfer may go through when tried again: the server not reached, the
// connection lost or the time up. Not a refused option, an answer too large or a stop.
bool transient(CURLcode code) {
  switch (code) {
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_CONNECT:
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
      return true;
    default:
      return false;
  }
}

// `retry` (when given) is set when the failure is worth another try.
Result<Answer> perform(const ObjectSettings& settings, const Credentials& credentials, const Request& request,
                       bool* retry = nullptr) {
  if (retry != nullptr) *retry = false;
  EasyHandle easy(curl_easy_init());
  if (!easy) return make_error("{}: cannot create a libcurl handle", request.what);
  CURL* handle = easy.get();
  Transfer transfer;
  transfer.upload = request.body;
  transfer.max_body = request.max_answer;
  transfer.sink = request.sink;
  transfer.handle = handle;
  transfer.stop = request.stop;
  const std::string url = settings.endpoint + request.path;
  const std::string sigv4 = fmt::format("aws:amz:{}:s3", settings.region);
  const std::string user = credentials.access_key_id + ":" + credentials.secret_access_key;
  StringList headers;
  if (!headers.append("x-amz-content-sha256: " + sha256_hex(request.body)) || !headers.append("Expect:")) {
    return make_error("{}: out of memory", request.what);
  }
  std::array<char, CURL_ERROR_SIZE> error_buffer{};
  const std::string_view method = request.method;
  Options options(handle);
  options.set(CURLOPT_URL, "URL", url.c_str());
  options.set(CURLOPT_PROTOCOLS_STR, "PROTOCOLS_STR", "http,https");
  options.set(CURLOPT_FOLLOWLOCATION, "FOLLOWLOCATION", 0L);
  // The path goes out as built: libcurl never resolves a '.' or '..' segment of a key away.
  options.set(CURLOPT_PATH_AS_IS, "PATH_AS_IS", 1L);
  options.set(CURLOPT_NOSIGNAL, "NOSIGNAL", 1L);
  options.set(CURLOPT_CONNECTTIMEOUT_MS, "CONNECTTIMEOUT_MS", static_cast<long>(settings.connect_timeout.count()));
  options.set(CURLOPT_TIMEOUT_MS, "TIMEOUT_MS", static_cast<long>(settings.total_timeout.count()));
  // A transfer under 1 KiB/s for the stall time is abandoned (CURLE_OPERATION_TIMEDOUT), however
  // long the hard bound above: a big upload on a slow link goes on, a hung store does not hold a slot.
  options.set(CURLOPT_LOW_SPEED_LIMIT, "LOW_SPEED_LIMIT", 1024L);
  options.set(CURLOPT_LOW_SPEED_TIME, "LOW_SPEED_TIME",
              static_cast<long>(std::max<std::int64_t>(1, (settings.stall_timeout.count() + 999) / 1000)));
  // SigV4 and nothing else: without it a libcurl that lacks SigV4 would send the key pair as Basic.
  options.set(CURLOPT_HTTPAUTH, "HTTPAUTH", static_cast<long>(CURLAUTH_AWS_SIGV4));
  options.set(CURLOPT_AWS_SIGV4, "AWS_SIGV4", sigv4.c_str());
  options.set(CURLOPT_USERPWD, "USERPWD", user.c_str());
  options.set(CURLOPT_HTTPHEADER, "HTTPHEADER", headers.get());
  options.set(CURLOPT_ERRORBUFFER, "ERRORBUFFER", error_buffer.data());
  options.set(CURLOPT_WRITEFUNCTION, "WRITEFUNCTION", on_body);
  options.set(CURLOPT_WRITEDATA, "WRITEDATA", &transfer);
  if (request.stop != nullptr && *request.stop) {
    options.set(CURLOPT_XFERINFOFUNCTION, "XFERINFOFUNCTION", on_progress);
    options.set(CURLOPT_XFERINFODATA, "XFERINFODATA", &transfer);
    options.set(CURLOPT_NOPROGRESS, "NOPROGRESS", 0L);
  }
  if (method == "PUT") {
    options.set(CURLOPT_UPLOAD, "UPLOAD", 1L);
    options.set(CURLOPT_READFUNCTION, "READFUNCTION", on_read);
    options.set(CURLOPT_READDATA, "READDATA", &transfer);
    options.set(CURLOPT_INFILESIZE_LARGE, "INFILESIZE_LARGE", static_cast<curl_off_t>(request.body.size()));
  } else if (method == "HEAD") {
    options.set(CURLOPT_NOBODY, "NOBODY", 1L);
    options.set(CURLOPT_FILETIME, "FILETIME", 1L);
  } else if (method != "GET") {
    options.set(CURLOPT_CUSTOMREQUEST, "CUSTOMREQUEST", request.method);
  }
  if (!options.ok()) {
    return make_error("{}: this libcurl refuses CURLOPT_{}: {} (libcurl {})", request.what, options.failed_option(),
                      curl_easy_strerror(options.code()), curl_version_info(CURLVERSION_NOW)->version);
  }
  const CURLcode code = curl_easy_perform(handle);
  if (transfer.stopped) return make_error("{}: stopped, the worker let go of the attempt", request.what);
  if (transfer.sink_stopped) return make_error("{}: the transfer was stopped by its reader", request.what);
  if (transfer.too_large) {
    return make_error("{}: the answer is larger than {} bytes", request.what, request.max_answer);
  }
  if (code != CURLE_OK) {
    if (retry != nullptr) *retry = transient(code);
    const std::string detail = error_buffer.front() != '\0' ? error_buffer.data() : curl_easy_strerror(code);
    return make_error("{}: {} at {}: {}", request.what, curl_easy_strerror(code), settings.endpoint, printable(detail, 300));
  }
  Answer answer;
  curl_easy_getinfo(handle, CURLINFO_RESPONSE_CODE, &answer.status);
  curl_off_t length = -1;
  if (curl_easy_getinfo(handle, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &length) == CURLE_OK) answer.length = length;
  curl_off_t modified = -1;
  if (curl_easy_getinfo(handle, CURLINFO_FILETIME_T, &modified) == CURLE_OK) answer.modified_s = modified;
  answer.body = std::move(transfer.body);
  return answer;
}

Error s3_error(const std::string& what, const Answer& answer) {
  const auto code = xml_value(answer.body, "Code");
  const auto message = xml_value(answer.body, "Message");
  if (code.empty()) return make_error("{} answered {}", what, answer.status);
  return make_error("{} answered {} {}: {}", what, answer.status, printable(code, 100), printable(message, 300));
}

}  // namespace

Result<v1::ObjectRef> S3Store::put(const std::string& key, std::string_view bytes, const StopCheck& stopped) {
  const std::string uri = object_uri(settings_.bucket, key);
  auto made = request("PUT", "/" + settings_.bucket + "/" + key_path(key), "PUT " + uri, bytes);
  made.stop = &stopped;
  const int tries = std::max(1, settings_.put_tries);
  Error last("");
  for (int attempt = 1; attempt <= tries; ++attempt) {
    if (attempt > 1) {
      // The pause, in short steps so that a stop is not kept waiting.
      const auto until = std::chrono::steady_clock::now() + retry_delay(settings_.retry_backoff, attempt - 1);
      while (std::chrono::steady_clock::now() < until && !(stopped && stopped())) {
        std::this_thread::sleep_for(std::min<std::chrono::steady_clock::duration>(std::chrono::milliseconds(20),
                                                                                  until - std::chrono::steady_clock::now()));
      }
      if (stopped && stopped())
        return make_error("{} (stopped before try {}: the worker let go of the attempt)", last.message(), attempt);
    }
    bool retry = false;
    auto answer = perform(settings_, credentials_, made, &retry);
    if (answer && answer->status == 200) {
      v1::ObjectRef ref;
      ref.set_uri(uri);
      ref.set_size(bytes.size());
      ref.set_sha256(sha256_hex(bytes));
      return ref;
    }
    last = answer ? s3_error("PUT " + uri, *answer) : answer.error();
    // A 5xx (SlowDown, InternalError, ...) and a lost or timed-out connection may pass on a new
    // try; a 4xx (denied, no such bucket) will not.
    if (answer) retry = answer->status >= 500;
    if (!retry) return last;
  }
  if (tries == 1) return last;
  return make_error("{} (tried {} times)", last.message(), tries);
}

Result<std::string> S3Store::get(const std::string& uri) {
  auto location = parse_object_uri(uri);
  if (!location) return location.error();
  auto answer = perform(settings_, credentials_,
                        request("GET", "/" + location->bucket + "/" + key_path(location->key), "GET " + uri, {},
                                std::max(settings_.max_bytes, kMaxErrorBodyBytes)));
  if (!answer) return answer.error();
  if (answer->status != 200) return s3_error("GET " + uri, *answer);
  return std::move(answer->body);
}

Result<ObjectInfo> S3Store::head(const std::string& uri) {
  auto location = parse_object_uri(uri);
  if (!location) return location.error();
  auto answer =
      perform(settings_, credentials_, request("HEAD", "/" + location->bucket + "/" + key_path(location->key), "HEAD " + uri));
  if (!answer) return answer.error();
  if (answer->status != 200) return s3_error("HEAD " + uri, *answer);
  if (answer->length < 0) return make_error("HEAD {} answered no Content-Length", uri);
  ObjectInfo info;
  info.key = location->key;
  info.size = static_cast<std::uint64_t>(answer->length);
  info.modified_ms = answer->modified_s > 0 ? answer->modified_s * 1000 : 0;
  return info;
}

Status S3Store::get_to(const std::string& uri, const ObjectSink& sink) {
  auto location = parse_object_uri(uri);
  if (!location) return location.error();
  auto made = request("GET", "/" + location->bucket + "/" + key_path(location->key), "GET " + uri);
  made.sink = &sink;
  auto answer = perform(settings_, credentials_, made);
  if (!answer) return answer.error();
  if (answer->status != 200) return s3_error("GET " + uri, *answer);
  return Status::success();
}

Result<std::vector<ObjectInfo>> S3Store::list(const std::string& prefix) {
  std::vector<ObjectInfo> keys;
  std::string token;
  for (int page = 0; page < 100000; ++page) {
    // Parameters in sorted order, values fully escaped: libcurl's SigV4 signs the query as given
    // (7.88 does not sort it), and S3 computes the canonical query sorted.
    std::string path = "/" + settings_.bucket + "?";
    if (!token.empty()) path += "continuation-token=" + url_escape(token) + "&";
    path += "list-type=2&prefix=" + url_escape(prefix);
    const std::string what = "LIST s3://" + settings_.bucket + "/" + prefix;
    auto answer = perform(settings_, credentials_, request("GET", path, what, {}, std::size_t{16} << 20));
    if (!answer) return answer.error();
    if (answer->status != 200) return s3_error(what, *answer);
    std::size_t at = 0;
    while (true) {
      std::size_t end = 0;
      auto contents = xml_value(answer->body, "Contents", at, &end);
      if (end == 0) break;
      at = end;
      auto key = xml_unescape(xml_value(contents, "Key"));
      // Directory placeholders some backends list (s3proxy's filesystem one) are no objects.
      if (key.empty() || key.ends_with('/')) continue;
      ObjectInfo info;
      info.key = std::move(key);
      const auto size = xml_value(contents, "Size");
      std::uint64_t bytes = 0;
      if (std::from_chars(size.data(), size.data() + size.size(), bytes).ec == std::errc()) info.size = bytes;
      info.modified_ms = iso8601_ms(xml_value(contents, "LastModified"));
      keys.push_back(std::move(info));
    }
    if (xml_value(answer->body, "IsTruncated") != "true") return keys;
    token = xml_unescape(xml_value(answer->body, "NextContinuationToken"));
    if (token.empty()) return keys;
  }
  return keys;
}

Status S3Store::remove(const std::string& key) {
  const std::string uri = object_uri(settings_.bucket, key);
  auto answer =
      perform(settings_, credentials_, request("DELETE", "/" + settings_.bucket + "/" + key_path(key), "DELETE " + uri));
  if (!answer) return answer.error();
  if (answer->status != 204 && answer->status != 200) return s3_error("DELETE " + uri, *answer);
  return Status::success();
}

Status S3Store::ensure_bucket() {
  const std::string what = "PUT bucket s3://" + settings_.bucket;
  auto answer = perform(settings_, credentials_, request("PUT", "/" + settings_.bucket, what));
  if (!answer) return answer.error();
  if (answer->status == 200) return Status::success();
  const auto code = xml_value(answer->body, "Code");
  if (code == "BucketAlreadyOwnedByYou" || code == "BucketAlreadyExists") return Status::success();
  return s3_error(what, *answer);
}

Result<std::unique_ptr<S3Store>> make_s3_store(const ObjectSettings& settings) {
  if (settings.credentials_file.empty()) return make_error("objects.credentials_file is not set (objects.endpoint is)");
  std::ifstream file(settings.credentials_file);
  if (!file) return make_error("objects.credentials_file: cannot read {}", settings.credentials_file);
  std::ostringstream text;
  text << file.rdbuf();
  auto credentials = parse_credentials(text.str());
  if (!credentials) return credentials.error().within("objects.credentials_file " + settings.credentials_file);
  return std::make_unique<S3Store>(settings, std::move(*credentials));
}

std::vector<ConfigKey> object_config_keys() {
  return {
      {"objects.endpoint", "",
       "S3-compatible store for large outputs, http(s)://host:port, path-style (empty: large outputs are truncated inline)"},
      {"objects.bucket", "kcron", "the bucket large outputs go to"},
      {"objects.region", "us-east-1", "the region requests are signed for (SigV4)"},
      {"objects.credentials_file", "", "file with access_key_id=... and secret_access_key=... lines"},
      {"objects.threshold_bytes", "65536", "an output larger than this is stored in the object store"},
      {"objects.max_bytes", "67108864", "at most this much of one output is kept and stored"},
      {"objects.timeout_ms", "600000", "hard bound of one request to the store"},
      {"objects.stall_ms", "30000", "a request to the store moving under 1 KiB/s for this long is abandoned"},
  };
}

Result<ObjectSettings> object_settings_from(const Config& config) {
  ObjectSettings settings;
  settings.endpoint = config.get("objects.endpoint");
  settings.bucket = config.get("objects.bucket");
  settings.region = config.get("objects.region");
  settings.credentials_file = config.get("objects.credentials_file");
  // Never echoed when it holds an '@': a user:password@ part would be a secret in a log.
  if (settings.endpoint.find('@') != std::string::npos) {
    return make_error(
        "configuration objects.endpoint: holds '@' (user info such as user:password@host); give the host and port "
        "only, the key pair goes in objects.credentials_file");
  }
  if (!settings.endpoint.empty() && !settings.endpoint.starts_with("http://") && !settings.endpoint.starts_with("https://")) {
    return make_error("configuration objects.endpoint: '{}' is not an http:// or https:// URL", settings.endpoint);
  }
  const auto valid_bucket = !settings.bucket.empty() && settings.bucket.size() <= 63 &&
                            std::all_of(settings.bucket.begin(), settings.bucket.end(), [](char c) {
                              return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.';
                            });
  if (!valid_bucket) return make_error("configuration objects.bucket: '{}' is not a bucket name (a-z 0-9 . -)", settings.bucket);
  if (settings.region.empty() || settings.region.find(':') != std::string::npos) {
    return make_error("configuration objects.region: '{}' is not a region name", settings.region);
  }
  auto number = [&](const std::string& name, std::int64_t minimum) -> Result<std::int64_t> {
    auto value = config.get_int(name);
    if (!value) return value.error();
    if (*value < minimum) return make_error("configuration {}: {} is below the minimum of {}", name, *value, minimum);
    return *value;
  };
  auto threshold = number("objects.threshold_bytes", 0);
  if (!threshold) return threshold.error();
  auto max_bytes = number("objects.max_bytes", 1);
  if (!max_bytes) return max_bytes.error();
  auto timeout = number("objects.timeout_ms", 100);
  if (!timeout) return timeout.error();
  auto stall = number("objects.stall_ms", 1000);
  if (!stall) return stall.error();
  settings.threshold_bytes = static_cast<std::size_t>(*threshold);
  settings.max_bytes = static_cast<std::size_t>(*max_bytes);
  settings.total_timeout = std::chrono::milliseconds(*timeout);
  settings.stall_timeout = std::chrono::milliseconds(*stall);
  return settings;
}

}  // namespace kcron::worker
