// libFuzzer target: kcron-relay's mapping of one record of a tenant's input topic. Whatever the
// record holds, nothing crashes, and everything written is the topic's tenant's: forwarded records
// go to jobs or schedules under a key of that tenant and name no other tenant, a rejection is a
// dead letter (and status, audit) under a key of that tenant with a reason.
// Input: byte 0 picks the topic, the content type and a null value; byte 1 the key's length; then
// the key, then the value.
#include <google/protobuf/stubs/logging.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "core/relay_core.h"
#include "kcron/tenant.h"

namespace {

using kcron::relay::Outcome;

void require(bool condition) {
  if (!condition) std::abort();
}

// The key belongs to `tenant`: `<tenant>~...`, or for the default tenant a key no tenant owns.
bool owned_by(std::string_view key, std::string_view tenant) {
  const auto split = kcron::split_scoped_key(key);
  return kcron::tenant_or_default(split.tenant) == kcron::tenant_or_default(tenant);
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int* /*argc*/, char*** /*argv*/) {
  google::protobuf::SetLogHandler([](google::protobuf::LogLevel, const char*, int, const std::string&) {});
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 2) return 0;
  static constexpr std::string_view kTopics[] = {"kcron.in.acme", "kcron.in.acme.schedules", "kcron.in.default",
                                                 "kcron.in.default.schedules"};
  static constexpr std::string_view kTenants[] = {"acme", "acme", "default", "default"};
  static constexpr std::string_view kContentTypes[] = {"", "application/json", "application/x-protobuf", ""};
  const auto pick = data[0];
  const auto topic = kTopics[pick & 3U];
  const auto tenant = kTenants[pick & 3U];
  const auto content_type = kContentTypes[(pick >> 2U) & 3U];
  const bool tombstone = (pick & 0x10U) != 0;
  const std::size_t key_size = std::min<std::size_t>(data[1], size - 2);
  const std::string_view key(reinterpret_cast<const char*>(data + 2), key_size);
  const std::string_view value(reinterpret_cast<const char*>(data + 2 + key_size), size - 2 - key_size);

  static const kcron::ManualClock clock{kcron::instant_from_ms(1'790'000'000'000)};
  static kcron::relay::Relay relay{kcron::relay::RelaySettings(kcron::TopicNames("kcron.")), clock};
  std::vector<kcron::OutRecord> out;
  const auto decision = relay.apply({.topic = topic,
                                     .partition = 0,
                                     .offset = 1,
                                     .key = key,
                                     .value = tombstone ? std::string_view() : value,
                                     .tombstone = tombstone,
                                     .content_type = content_type},
                                    out);
  require(decision.outcome != Outcome::kSkipped);
  require(decision.tenant == tenant);
  require(!out.empty());
  for (const auto& record : out) {
    require(owned_by(record.key, tenant));
    if (decision.outcome == Outcome::kForwarded) {
      require(out.size() == 1);
      require(record.topic == "kcron.jobs" || record.topic == "kcron.schedules");
      if (record.topic == "kcron.jobs") {
        kcron::v1::Command command;
        require(command.ParseFromString(record.value));
        require(command.has_submit() || command.has_cancel() || command.has_update() || command.has_replay());
        const auto named = command.has_submit()   ? command.submit().tenant()
                           : command.has_update() ? command.update().job().tenant()
                           : command.has_cancel() ? command.cancel().tenant()
                                                  : command.replay().job().tenant();
        require(kcron::tenant_or_default(named) == tenant);
      } else if (!record.tombstone) {
        kcron::v1::Schedule schedule;
        require(schedule.ParseFromString(record.value));
        require(kcron::tenant_or_default(schedule.tenant()) == tenant);
        require(kcron::tenant_or_default(schedule.job_template().tenant()) == tenant);
      }
    } else {
      require(!decision.reason.empty());
      require(record.topic == "kcron.dead-letters" || record.topic == "kcron.status" || record.topic == "kcron.audit");
    }
  }
  return 0;
}
