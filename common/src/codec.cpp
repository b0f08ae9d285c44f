#include "kcron/codec.h"

#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>

#include <algorithm>
#include <array>

#include "kcron/tenant.h"

namespace kcron {
namespace {

bool looks_like_json(std::string_view value, std::string_view content_type) {
  if (content_type.starts_with(header::kJson)) return true;
  if (content_type.starts_with(header::kProtobuf)) return false;
  const auto first =
      std::find_if(value.begin(), value.end(), [](char c) { return c != ' ' && c != '\n' && c != '\t' && c != '\r'; });
  return first != value.end() && *first == '{';
}

Status parse_json(std::string_view value, google::protobuf::Message& message) {
  google::protobuf::util::JsonParseOptions options;
  options.ignore_unknown_fields = false;
  const auto status =
      google::protobuf::util::JsonStringToMessage(google::protobuf::StringPiece(value.data(), value.size()), &message, options);
  if (!status.ok()) return make_error("invalid JSON {}: {}", message.GetDescriptor()->name(), std::string(status.message()));
  return Status::success();
}

constexpr std::array<std::string_view, 10> kCommandKeys = {"submit",     "cancel",       "update",      "replay", "retry",
                                                           "completion", "purge_tenant", "purgeTenant", "flow",   "batch"};

}  // namespace

Status decode_message(std::string_view value, std::string_view content_type, google::protobuf::Message& message) {
  if (looks_like_json(value, content_type)) return parse_json(value, message);
  if (value.size() > static_cast<std::size_t>(std::numeric_limits<int>::max()) ||
      !message.ParseFromArray(value.data(), static_cast<int>(value.size()))) {
    return make_error("malformed {}: not valid Protobuf binary nor JSON", message.GetDescriptor()->name());
  }
  return Status::success();
}

Result<v1::Command> decode_command(std::string_view value, std::string_view content_type, std::string_view kcron_type) {
  v1::Command command;
  if (value.empty()) return make_error("empty record: expected a Command or a Job");
  if (kcron_type == "job") {
    if (auto status = decode_message(value, content_type, *command.mutable_submit()); !status) return status.error();
    return command;
  }
  if (looks_like_json(value, content_type)) {
    google::protobuf::Struct object;
    if (auto status = parse_json(value, object); !status) return make_error("invalid JSON: not a JSON object");
    // A Command holds nothing but its one command key; a Job may share a field name with one
    // ("retry" is both a Job's retry policy and the Retry command), so every key must match.
    const auto is_command_key = [](const std::string& key) {
      return std::find(kCommandKeys.begin(), kCommandKeys.end(), key) != kCommandKeys.end();
    };
    const bool is_command =
        !object.fields().empty() && std::all_of(object.fields().begin(), object.fields().end(),
                                                [&](const auto& field) { return is_command_key(field.first); });
    if (is_command) {
      if (auto status = parse_json(value, command); !status) return status.error();
    } else {
      if (auto status = parse_json(value, *command.mutable_submit()); !status) return status.error();
    }
  } else if (auto status = decode_message(value, content_type, command); !status) {
    return status.error();
  }
  if (command.command_case() == v1::Command::COMMAND_NOT_SET) {
    return make_error("record holds no command: expected one of submit, cancel, update, replay, retry, completion, flow, batch");
  }
  return command;
}

std::vector<std::pair<std::string, std::string>> typed_headers(std::string_view type, std::string_view job_id,
                                                               std::string_view tenant) {
  std::vector<std::pair<std::string, std::string>> headers = {
      {std::string(header::kType), std::string(type)},
      {std::string(header::kJobId), std::string(job_id)},
      {std::string(header::kContentType), std::string(header::kProtobuf)}};
  if (!is_default_tenant(tenant)) headers.emplace_back(header::kTenant, tenant);
  return headers;
}

std::string encode(const google::protobuf::Message& message) {
  return message.SerializeAsString();
}

std::string to_json(const google::protobuf::Message& message) {
  std::string out;
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  options.add_whitespace = false;
  (void)google::protobuf::util::MessageToJsonString(message, &out, options);
  return out;
}

std::string_view state_name(v1::JobState state) {
  static const auto* descriptor = v1::JobState_descriptor();
  const auto* value = descriptor->FindValueByNumber(state);
  return value != nullptr ? std::string_view(value->name()) : std::string_view("UNKNOWN");
}

}  // namespace kcron
