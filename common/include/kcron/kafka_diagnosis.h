// What a refused Kafka connection or request means, in words a user can act on. librdkafka reports
// a TLS or SASL refusal as a transport error and keeps retrying, so a program that only waited for
// metadata would time out with "Broker transport failure". The programs' Kafka adapters (kafka.h)
// remember the last such refusal and name it, with the hint below, instead. Pure: no librdkafka.
#pragma once

#include <string>
#include <string_view>

namespace kcron {

// A connection attempt the broker (or this client) refused for who it is, not for where the broker
// is: a TLS handshake that failed, an untrusted or expired certificate, a wrong SASL password, a
// client speaking the wrong security protocol. `text` is librdkafka's error text.
bool is_connection_refusal(std::string_view text);

// What to check for a refusal (empty when the text is none of the known ones).
std::string connection_refusal_hint(std::string_view text);

// What to check when the broker refused a request for the lack of an ACL, from the error's name
// (TOPIC_AUTHORIZATION_FAILED, GROUP_..., TRANSACTIONAL_ID_..., CLUSTER_...); empty otherwise.
std::string authorization_hint(std::string_view error_name, std::string_view resource);

}  // namespace kcron
