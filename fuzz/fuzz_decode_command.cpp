// libFuzzer target: decode_command, the decoder of every kcron.jobs record, with each content-type
// and kcron-type header a record may carry. A decoded command must encode and decode again.
#include <google/protobuf/stubs/logging.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "kcron/codec.h"

// Protobuf logs every invalid UTF-8 string it refuses; that much stderr slows the fuzzer down.
extern "C" int LLVMFuzzerInitialize(int* /*argc*/, char*** /*argv*/) {
  google::protobuf::SetLogHandler([](google::protobuf::LogLevel, const char*, int, const std::string&) {});
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  static constexpr std::string_view kContentTypes[] = {"", "application/json", "application/x-protobuf", "text/plain"};
  static constexpr std::string_view kTypes[] = {"", "job", "command", "no-such-type"};
  const auto selector = data[0];
  const std::string_view value(reinterpret_cast<const char*>(data + 1), size - 1);
  const auto content_type = kContentTypes[selector & 3U];
  const auto kcron_type = kTypes[(selector >> 2U) & 3U];

  auto command = kcron::decode_command(value, content_type, kcron_type);
  if (!command) {
    if (command.error().message().empty()) std::abort();  // every failure names what was wrong
    return 0;
  }
  if (command->command_case() == kcron::v1::Command::COMMAND_NOT_SET) std::abort();
  (void)kcron::to_json(*command);
  const auto again = kcron::decode_command(kcron::encode(*command), kcron::header::kProtobuf, "");
  if (!again) std::abort();
  return 0;
}
