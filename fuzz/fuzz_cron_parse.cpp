// libFuzzer target: the cron parser, explain(), and the next-fire search in a time zone (bounded
// to a few fire instants per input); with a leading 0xff byte, the rest is a time zone name.
// A fire instant must lie strictly after the instant searched from.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string_view>
#include <vector>

#include "core/cron_expression.h"

namespace {

constexpr int kFiresPerInput = 4;

const std::vector<kcron::cron::TimeZone>& zones() {
  static const std::vector<kcron::cron::TimeZone> loaded = [] {
    std::vector<kcron::cron::TimeZone> list;
    for (const char* name : {"UTC", "Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "Asia/Kathmandu",
                             "Pacific/Chatham", "America/Santiago", "Africa/Casablanca"}) {
      auto zone = kcron::cron::TimeZone::locate(name);
      if (!zone) std::abort();
      list.push_back(*zone);
    }
    return list;
  }();
  return loaded;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 5) return 0;
  if (data[0] == 0xff) {
    (void)kcron::cron::TimeZone::locate(std::string_view(reinterpret_cast<const char*>(data + 1), size - 1));
    return 0;
  }
  const auto& zone = zones()[data[0] % zones().size()];
  std::uint32_t start_seconds = 0;  // 1970 .. 2106
  std::memcpy(&start_seconds, data + 1, sizeof(start_seconds));
  const std::string_view text(reinterpret_cast<const char*>(data + 5), size - 5);

  auto expression = kcron::cron::CronExpression::parse(text);
  if (!expression) return 0;
  (void)expression->explain();
  auto from = kcron::instant_from_ms(std::int64_t{start_seconds} * 1000);
  const auto anchor = from - kcron::Millis(12345);
  for (int fire = 0; fire < kFiresPerInput; ++fire) {
    auto next = expression->next_after(from, zone, anchor);
    if (!next) break;
    if (*next <= from) std::abort();
    from = *next;
  }
  return 0;
}
