// The ObjectStore on an S3-compatible server: libcurl signs each request with AWS SigV4
// (CURLOPT_AWS_SIGV4; no SDK), the payload's SHA-256 goes in x-amz-content-sha256, requests are
// path-style (<endpoint>/<bucket>/<key>), no redirects are followed, connect and total time are
// bounded, a stalled transfer is abandoned, and a PUT can be stopped by its caller. Errors name the method, the object, the HTTP
// status and S3's error code and message; never the secret. Thread-safe: one easy handle per request.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "kcron/config.h"
#include "objects/object_store.h"

namespace kcron::worker {

class S3Store : public ObjectStore {
 public:
  S3Store(ObjectSettings settings, Credentials credentials);
  Result<v1::ObjectRef> put(const std::string& key, std::string_view bytes, const StopCheck& stopped) override;
  Result<std::string> get(const std::string& uri) override;
  Result<ObjectInfo> head(const std::string& uri) override;
  Status get_to(const std::string& uri, const ObjectSink& sink) override;
  Result<std::vector<ObjectInfo>> list(const std::string& prefix) override;
  Status remove(const std::string& key) override;
  // Creates the bucket when it does not exist (tests and development; production buckets are made
  // by their operator, with the lifecycle rule of docs/large-results.md).
  Status ensure_bucket();

 private:
  ObjectSettings settings_;
  Credentials credentials_;
};

// Reads settings.credentials_file (it must be set) and makes the store.
Result<std::unique_ptr<S3Store>> make_s3_store(const ObjectSettings& settings);

// Lowercase hex SHA-256 (OpenSSL).
std::string sha256_hex(std::string_view bytes);

// A new run token: 32 random hex digits (OpenSSL's RAND_bytes).
std::string new_run_token();

// objects.endpoint, objects.bucket, objects.region, objects.credentials_file,
// objects.threshold_bytes, objects.max_bytes, objects.timeout_ms, objects.stall_ms; settings_from checks them.
std::vector<ConfigKey> object_config_keys();
Result<ObjectSettings> object_settings_from(const Config& config);

}  // namespace kcron::worker
