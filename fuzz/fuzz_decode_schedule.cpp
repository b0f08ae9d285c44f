// libFuzzer target: decode_message into a Schedule (kcron.schedules records) and into a Job (a
// bare job on kcron.jobs), as binary, as JSON and sniffed. Decoded messages must encode again.
#include <google/protobuf/stubs/logging.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "kcron/codec.h"

namespace {

void decode_as(google::protobuf::Message& message, std::string_view value, std::string_view content_type) {
  auto status = kcron::decode_message(value, content_type, message);
  if (!status) {
    if (status.error().message().empty()) std::abort();
    return;
  }
  (void)kcron::to_json(message);
  message.Clear();
  if (!kcron::decode_message(kcron::encode(message), kcron::header::kProtobuf, message)) std::abort();
}

}  // namespace

// Protobuf logs every invalid UTF-8 string it refuses; that much stderr slows the fuzzer down.
extern "C" int LLVMFuzzerInitialize(int* /*argc*/, char*** /*argv*/) {
  google::protobuf::SetLogHandler([](google::protobuf::LogLevel, const char*, int, const std::string&) {});
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  static constexpr std::string_view kContentTypes[] = {"", "application/json", "application/x-protobuf", ""};
  const auto content_type = kContentTypes[data[0] & 3U];
  const std::string_view value(reinterpret_cast<const char*>(data + 1), size - 1);
  kcron::v1::Schedule schedule;
  decode_as(schedule, value, content_type);
  kcron::v1::Job job;
  decode_as(job, value, content_type);
  return 0;
}
