#include "kcron/kafka_diagnosis.h"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <utility>

namespace kcron {
namespace {

bool contains(std::string_view text, std::string_view part) {
  const auto found = std::search(text.begin(), text.end(), part.begin(), part.end(), [](char a, char b) {
    return std::tolower(static_cast<unsigned char>(a)) == std::tolower(static_cast<unsigned char>(b));
  });
  return found != text.end();
}

// Checked in order: the first whose marker the text contains gives the hint.
constexpr std::array<std::pair<std::string_view, std::string_view>, 9> kHints{{
    {"Invalid username or password",
     "the broker refused the SASL username or password: check kafka.sasl.username and kafka.sasl.password (and that the broker "
     "was restarted after the user was added: SASL/PLAIN users are static)"},
    {"SASL authentication error",
     "the broker refused the SASL login: check kafka.sasl.mechanisms (PLAIN), kafka.sasl.username and kafka.sasl.password"},
    {"certificate unknown",
     "the broker refused this client's certificate: it is not signed by a CA the broker trusts, or it expired; check "
     "kafka.ssl.certificate.location (a kcron tenant's certificate comes from `kcron tenant create NAME --kafka`)"},
    {"bad certificate",
     "the broker refused this client's certificate (kafka.ssl.certificate.location): not signed by a CA it trusts, expired, or "
     "not "
     "a client certificate"},
    {"certificate required",
     "the broker requires a client certificate: set kafka.ssl.certificate.location and kafka.ssl.key.location"},
    {"certificate expired", "a certificate expired: issue a new one"},
    {"certificate verify failed",
     "this client does not trust the broker's certificate: check kafka.ssl.ca.location, and that the broker's certificate names "
     "the address in brokers (subjectAltName, e.g. IP:127.0.0.1)"},
    {"incorrect security.protocol",
     "the listener at this address speaks another security protocol: check kafka.security.protocol (SSL for the mTLS listener, "
     "SASL_SSL for the password listener)"},
    {"SSL handshake failed",
     "the TLS handshake failed: check kafka.security.protocol, kafka.ssl.ca.location and the client certificate"},
}};

}  // namespace

bool is_connection_refusal(std::string_view text) {
  if (!connection_refusal_hint(text).empty()) return true;
  return contains(text, "SSL") && (contains(text, "alert") || contains(text, "handshake"));
}

std::string connection_refusal_hint(std::string_view text) {
  for (const auto& [marker, hint] : kHints) {
    if (contains(text, marker)) return std::string(hint);
  }
  return {};
}

std::string authorization_hint(std::string_view error_name, std::string_view resource) {
  const auto what = [&](std::string_view kind, std::string_view operations) {
    return fmt::format(
        "this client's principal has no ACL allowing {} on the {}{}{}: kcron's programs get theirs from `kcron "
        "kafka-acls`, a tenant's from `kcron tenant create NAME --kafka`",
        operations, kind, resource.empty() ? "" : " ", resource);
  };
  if (contains(error_name, "TOPIC_AUTHORIZATION_FAILED")) return what("topic", "this operation");
  if (contains(error_name, "GROUP_AUTHORIZATION_FAILED")) return what("consumer group", "Read");
  if (contains(error_name, "TRANSACTIONAL_ID_AUTHORIZATION_FAILED")) return what("transactional id", "Write");
  if (contains(error_name, "CLUSTER_AUTHORIZATION_FAILED")) return what("cluster", "this operation");
  return {};
}

}  // namespace kcron
