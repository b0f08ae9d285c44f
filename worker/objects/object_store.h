// Large outputs in an S3-compatible object store (docs/large-results.md). The ObjectStore
// interface is the edge (s3_store.h implements it on libcurl's SigV4 signing); the rest of this
// header is pure and unit-tested without a network: the object key of an execution's output,
// the threshold decision, the credentials file, s3:// URIs.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "kcron.pb.h"
#include "kcron/result.h"

namespace kcron::worker {

// objects.* of the worker (and of the CLI, which reads objects back). Off without an endpoint.
struct ObjectSettings {
  std::string endpoint;  // http(s)://host:port, path-style requests; empty: large outputs stay inline (truncated)
  std::string bucket = "kcron";
  std::string region = "us-east-1";
  std::string credentials_file;                           // access_key_id=... and secret_access_key=... lines
  std::size_t threshold_bytes = std::size_t{64} * 1024;   // an output larger than this is stored
  std::size_t max_bytes = std::size_t{64} * 1024 * 1024;  // at most this much of one output is kept and stored
  std::chrono::milliseconds connect_timeout{5000};
  std::chrono::milliseconds total_timeout{600000};  // hard bound of one request (a 64 MiB upload at ~110 KB/s)
  std::chrono::milliseconds stall_timeout{30000};   // a transfer under 1 KiB/s for this long is abandoned
  int put_tries = 3;                                // a PUT answered 5xx or not answered is tried this often
  std::chrono::milliseconds retry_backoff{200};     // before the 2nd try (jittered ×0.5..1.5), doubled after
  bool enabled() const { return !endpoint.empty(); }
};

struct Credentials {
  std::string access_key_id;
  std::string secret_access_key;
};

// `access_key_id=...` and `secret_access_key=...` lines ('#' comments and blank lines allowed;
// `aws_access_key_id` / `aws_secret_access_key` as in an AWS credentials file too). Of an AWS file
// with several [profiles] only [default] is read (lines before any [profile] count as it); one
// without [default] is refused. Errors never quote a value of the file.
Result<Credentials> parse_credentials(std::string_view text);

// RFC 3986 percent-encoding of every byte but the unreserved ones (A-Z a-z 0-9 - _ . ~).
std::string url_escape(std::string_view text);

// url_escape and '.' as well (%2E): a key part is never a '.' or '..' path segment, so no job id
// or tenant can make a key that a server or libcurl would resolve outside its tenant's prefix.
std::string key_part_escape(std::string_view text);

// The key of one output of one execution: <tenant or "default">/<key_part_escape'd job id>/<attempt>/
// <run token>/<name>. The run token is drawn anew for every execution, so two runs of the same
// attempt (a fenced zombie and its successor) never write the same key.
std::string object_key(std::string_view tenant, std::string_view job_id, std::uint32_t attempt, std::string_view run_token,
                       std::string_view name);

// s3://<bucket>/<key>, and back.
std::string object_uri(std::string_view bucket, std::string_view key);
struct ObjectLocation {
  std::string bucket;
  std::string key;
};
Result<ObjectLocation> parse_object_uri(std::string_view uri);

// Whether an output of `size` bytes goes to the store (enabled and over the threshold).
bool should_store(const ObjectSettings& settings, std::size_t size);

// With the store on, an output is cut inline at `inline_bytes` (exec.capture_bytes,
// http.max_body_bytes) and stored whole only over objects.threshold_bytes: a threshold over an
// inline limit would lose the bytes of outputs between the two. An error naming both settings then.
Status check_inline_limit(const ObjectSettings& settings, std::string_view inline_setting, std::size_t inline_bytes);

// A run token is 32 lowercase hex digits.
bool is_run_token(std::string_view token);

// One object of a listing (or a HEAD): its key in the bucket, size and last-modified instant.
struct ObjectInfo {
  std::string key;
  std::uint64_t size = 0;
  std::int64_t modified_ms = 0;  // Unix milliseconds; 0 when the store did not say
};

// What `kcron objects sweep` does with a bucket's objects (pure): an object is deleted when no
// committed result names it AND it is older than the grace (which protects an upload whose result
// transaction is still in flight). `referenced_keys` are keys in the swept bucket.
struct SweepPlan {
  std::vector<ObjectInfo> remove;      // unreferenced and older than the grace
  std::vector<ObjectInfo> referenced;  // kept: a committed result names it
  std::vector<ObjectInfo> young;       // kept: unreferenced, but within the grace (or of unknown age)
  std::vector<ObjectInfo> foreign;     // kept: its key is not an output's key (not kcron's object)
};

// Whether `key` has the layout of a stored output's key:
// <tenant>/<escaped job id>/<attempt>/<32-hex run token>/<stdout|stderr|body>.
bool is_output_key(std::string_view key);
SweepPlan plan_sweep(const std::vector<ObjectInfo>& objects, const std::set<std::string>& referenced_keys, std::int64_t now_ms,
                     std::chrono::milliseconds grace);

// "24h", "90m", "30s", "7d", "0s" -> a duration; an error names the text.
Result<std::chrono::milliseconds> parse_grace(std::string_view text);

// Receives an object's bytes as they arrive; false stops the transfer.
using ObjectSink = std::function<bool(std::string_view chunk)>;

// Asked while a transfer runs (about once a second, and between tries): true abandons it.
using StopCheck = std::function<bool()>;

// The edge. Implementations are thread-safe (slot threads upload at once).
class ObjectStore {
 public:
  virtual ~ObjectStore() = default;
  // Stores `bytes` under `key` in the configured bucket: the ref has uri, size and sha256 (name unset).
  // `stopped` (may be empty) abandons the upload, and any further try, once it says true: a worker
  // that lets go of the attempt (shutdown, partition moved) does not wait for a slow store.
  virtual Result<v1::ObjectRef> put(const std::string& key, std::string_view bytes, const StopCheck& stopped) = 0;
  // The bytes of an s3:// URI.
  virtual Result<std::string> get(const std::string& uri) = 0;
  // Its size and age without its bytes (HEAD): the API checks this before it answers 200.
  virtual Result<ObjectInfo> head(const std::string& uri) = 0;
  // The bytes of an s3:// URI handed to `sink` chunk by chunk, never all in memory (the API
  // streams them on). An error when the store answers one, or when `sink` stopped the transfer.
  virtual Status get_to(const std::string& uri, const ObjectSink& sink) = 0;
  // The objects under a prefix, every page (for the sweep), and removing one.
  virtual Result<std::vector<ObjectInfo>> list(const std::string& prefix) = 0;
  virtual Status remove(const std::string& key) = 0;
};

}  // namespace kcron::worker
