// libFuzzer target: the dispatcher's decisions on a sequence of jobs records (DispatcherCore::apply
// over the in-memory store, with a manual clock), then firing what is due. Every record is
// decided without a crash or an error; no output record may exceed what a producer can send (1 MB).
#include <fuzzer/FuzzedDataProvider.h>
#include <google/protobuf/stubs/logging.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "core/dispatcher_core.h"
#include "store/memory_store.h"

namespace {

constexpr std::size_t kProducerLimit = 1'000'000;

}  // namespace

extern "C" int LLVMFuzzerInitialize(int* /*argc*/, char*** /*argv*/) {
  google::protobuf::SetLogHandler([](google::protobuf::LogLevel, const char*, int, const std::string&) {});
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static constexpr const char* kContentTypes[] = {"", "application/json", "application/x-protobuf"};
  static constexpr const char* kTypes[] = {"", "job", "command"};
  FuzzedDataProvider input(data, size);
  kcron::ManualClock clock(kcron::instant_from_ms(1'790'000'000'000));
  kcron::dispatcher::Settings settings;
  settings.jobs_partitions = 2;
  settings.max_record_bytes = 4096;
  kcron::dispatcher::DispatcherCore core(settings, clock);
  kcron::dispatcher::MemoryDelayStore store(settings.bucket_width);
  std::vector<kcron::OutRecord> out;
  std::int64_t offset = 0;
  while (input.remaining_bytes() > 0) {
    const kcron::Partition partition(input.ConsumeIntegralInRange<std::int32_t>(0, 1));
    const auto content_type = kContentTypes[input.ConsumeIntegralInRange<int>(0, 2)];
    const auto kcron_type = kTypes[input.ConsumeIntegralInRange<int>(0, 2)];
    const auto timestamp_ms = input.ConsumeIntegral<std::int64_t>();
    const auto key = input.ConsumeRandomLengthString(300);
    const auto value = input.ConsumeRandomLengthString(4096);
    kcron::dispatcher::InputRecord record{
        partition, offset++, key, value, content_type, kcron_type, kcron::instant_from_ms(timestamp_ms), {}};
    auto& state = **store.open(partition);
    // The in-memory store cannot fail a read, and the core stores only entries it encoded: every
    // decision succeeds.
    if (!core.apply(state, record, out).ok()) std::abort();
    clock.advance(kcron::Millis(input.ConsumeIntegralInRange<std::int64_t>(0, 86'400'000)));
    if (!core.fire_due(state, partition, 100, out).ok()) std::abort();
  }
  for (const auto& record : out) {
    if (record.key.size() + record.value.size() > kProducerLimit) std::abort();
  }
  return 0;
}
