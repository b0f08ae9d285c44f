#include "kcron/kafka_diagnosis.h"

#include <catch2/catch.hpp>
#include <string>

using Catch::Matchers::Contains;

TEST_CASE("a refused client certificate is named with what to check", "[kafka_diagnosis]") {
  const std::string text =
      "ssl://127.0.0.1:9192/bootstrap: Receive failed: error:0A000416:SSL routines::sslv3 alert certificate unknown: SSL alert "
      "number 46 (after 4ms in state APIVERSION_QUERY)";
  CHECK(kcron::is_connection_refusal(text));
  CHECK_THAT(kcron::connection_refusal_hint(text), Contains("refused this client's certificate"));
  CHECK_THAT(kcron::connection_refusal_hint(text), Contains("kafka.ssl.certificate.location"));
}

TEST_CASE("a wrong SASL password, an untrusted broker and a wrong protocol each get their own hint", "[kafka_diagnosis]") {
  const std::string sasl =
      "sasl_ssl://127.0.0.1:9194/bootstrap: SASL authentication error: Authentication failed: Invalid username or password "
      "(after "
      "301ms in state AUTH_REQ)";
  CHECK(kcron::is_connection_refusal(sasl));
  CHECK_THAT(kcron::connection_refusal_hint(sasl), Contains("kafka.sasl.password"));
  const std::string untrusted =
      "ssl://127.0.0.1:9192/bootstrap: SSL handshake failed: error:0A000086:SSL routines::certificate verify failed: broker "
      "certificate could not be verified";
  CHECK_THAT(kcron::connection_refusal_hint(untrusted), Contains("kafka.ssl.ca.location"));
  const std::string protocol =
      "127.0.0.1:9192/bootstrap: Disconnected while requesting ApiVersion: might be caused by incorrect security.protocol "
      "configuration (connecting to a SSL listener?) or broker version is < 0.10";
  CHECK(kcron::is_connection_refusal(protocol));
  CHECK_THAT(kcron::connection_refusal_hint(protocol), Contains("kafka.security.protocol"));
}

TEST_CASE("a broker that is down is not a refusal", "[kafka_diagnosis]") {
  const std::string down =
      "127.0.0.1:9192/bootstrap: Connect to ipv4#127.0.0.1:9192 failed: Connection refused (after 0ms in state CONNECT)";
  CHECK_FALSE(kcron::is_connection_refusal(down));
  CHECK(kcron::connection_refusal_hint(down).empty());
}

TEST_CASE("a missing ACL names the resource kind and where ACLs come from", "[kafka_diagnosis]") {
  CHECK_THAT(kcron::authorization_hint("TOPIC_AUTHORIZATION_FAILED", "kcron.jobs"), Contains("on the topic kcron.jobs"));
  CHECK_THAT(kcron::authorization_hint("ERR_TRANSACTIONAL_ID_AUTHORIZATION_FAILED", ""), Contains("transactional id"));
  CHECK_THAT(kcron::authorization_hint("GROUP_AUTHORIZATION_FAILED", ""), Contains("kcron kafka-acls"));
  CHECK(kcron::authorization_hint("NOT_LEADER_FOR_PARTITION", "").empty());
}
