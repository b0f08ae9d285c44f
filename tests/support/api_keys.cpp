#include "support/api_keys.h"

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>

namespace kcron::testing {

ApiKeys make_api_keys(const TestEnv& env, const std::string& kid) {
  auto generated = auth::generate_key("ES256", kid);
  REQUIRE(generated.ok());
  auto key = auth::load_signing_key(generated->private_pem, "ES256", kid);
  REQUIRE(key.ok());
  std::filesystem::create_directories(env.state_root);
  const auto path = env.state_root + "/jwks.json";
  std::ofstream(path) << generated->jwks;
  return {*key, path};
}

std::string api_token(const ApiKeys& keys, const std::string& tenant, const std::string& role, const std::string& subject,
                      std::chrono::seconds ttl, std::chrono::system_clock::time_point issued) {
  auth::TokenRequest request{subject, tenant, {role}, issued, ttl, "", ""};
  auto signed_token = auth::sign_token(request, keys.key);
  REQUIRE(signed_token.ok());
  return *signed_token;
}

int api_port_from_log(const std::string& log_path) {
  std::ifstream file(log_path);
  std::string line;
  int port = 0;
  while (std::getline(file, line)) {
    const auto at = line.find("event=api_listening");
    const auto field = at == std::string::npos ? std::string::npos : line.find("port=", at);
    if (field != std::string::npos) port = std::stoi(line.substr(field + 5));
  }
  return port;
}

}  // namespace kcron::testing
