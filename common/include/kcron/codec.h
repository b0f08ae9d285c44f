// Codecs between Kafka record bytes and kcron's Protobuf messages. Inputs may be Protobuf binary
// or its canonical JSON form (chosen by the content-type header, else by sniffing for '{');
// every decode failure is an Error naming what was wrong, never an exception.
#pragma once

#include <google/protobuf/message.h>

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "kcron.pb.h"
#include "kcron/result.h"

namespace kcron {

namespace header {
inline constexpr std::string_view kType = "kcron-type";
inline constexpr std::string_view kJobId = "kcron-job-id";
inline constexpr std::string_view kStatus = "kcron-status";
inline constexpr std::string_view kTenant = "kcron-tenant";  // on records of a tenant other than the default
inline constexpr std::string_view kContentType = "content-type";
inline constexpr std::string_view kRequestId = "kcron-request-id";  // on a command the HTTP API wrote: its request
inline constexpr std::string_view kProtobuf = "application/x-protobuf";
inline constexpr std::string_view kJson = "application/json";
}  // namespace header

// Decodes a record of the jobs topic. `content_type` and `kcron_type` are the header values
// (empty when absent). A bare Job (JSON object without a command key, or kcron-type "job") is a
// submit.
Result<v1::Command> decode_command(std::string_view value, std::string_view content_type, std::string_view kcron_type);

// Decodes any message from binary or JSON.
Status decode_message(std::string_view value, std::string_view content_type, google::protobuf::Message& message);

std::string encode(const google::protobuf::Message& message);

// Canonical JSON on one line (field names as in the .proto, enums as names).
std::string to_json(const google::protobuf::Message& message);

// The headers every kcron record carries: kcron-type, kcron-job-id, content-type (Protobuf), and
// for a tenant other than the default, kcron-tenant.
std::vector<std::pair<std::string, std::string>> typed_headers(std::string_view type, std::string_view job_id,
                                                               std::string_view tenant = {});

// The name used in the kcron-status header and logs, e.g. "QUEUED".
std::string_view state_name(v1::JobState state);

}  // namespace kcron
