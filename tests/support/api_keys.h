// Keys and tokens for the tests of kcron-api and `kcron --api`: an ES256 signing key, the JWKS
// file the kcron-api instances of a test trust, tokens minted with it, and the port an instance
// logged when it started listening.
#pragma once

#include <chrono>
#include <string>

#include "auth/jwt.h"
#include "support/harness.h"

namespace kcron::testing {

struct ApiKeys {
  auth::SigningKey key;
  std::string jwks_path;  // in the test's state_root
};

ApiKeys make_api_keys(const TestEnv& env, const std::string& kid = "test-key");

std::string api_token(const ApiKeys& keys, const std::string& tenant, const std::string& role,
                      const std::string& subject = "alice", std::chrono::seconds ttl = std::chrono::hours(1),
                      std::chrono::system_clock::time_point issued = std::chrono::system_clock::now());

// The port of the last `event=api_listening` line in the log; 0 when there is none.
int api_port_from_log(const std::string& log_path);

}  // namespace kcron::testing
