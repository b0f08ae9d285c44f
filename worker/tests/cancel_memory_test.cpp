#include "core/cancel_memory.h"

#include <catch2/catch.hpp>

using namespace kcron;
using namespace kcron::worker;
using std::chrono::milliseconds;

TEST_CASE("a cancel is remembered until it is older than the lookback") {
  CancelMemory memory(milliseconds(1000));
  const auto start = instant_from_ms(10'000);
  CHECK(memory.remember("a", start, start));
  CHECK_FALSE(memory.remember("a", start, start));  // already known
  CHECK(memory.contains("a", start));
  CHECK(memory.contains("a", start + milliseconds(1000)));
  CHECK_FALSE(memory.contains("a", start + milliseconds(1001)));
  // The entry itself goes as later cancels arrive.
  CHECK(memory.remember("b", start + milliseconds(1001), start + milliseconds(1001)));
  CHECK(memory.size() == 1);
  CHECK(memory.contains("b", start + milliseconds(1001)));
}

TEST_CASE("remembered cancels are bounded in number, the oldest forgotten first") {
  CancelMemory memory(milliseconds(60000), 3);
  const auto now = instant_from_ms(10'000);
  for (const auto* id : {"a", "b", "c", "d"}) memory.remember(id, now, now);
  CHECK(memory.size() == 3);
  CHECK_FALSE(memory.contains("a", now));
  CHECK(memory.contains("d", now));
}

TEST_CASE("a cancel that arrived before the lookback window is not kept") {
  CancelMemory memory(milliseconds(1000));
  const auto now = instant_from_ms(10'000);
  memory.remember("old", now - milliseconds(5000), now);
  CHECK_FALSE(memory.contains("old", now));
}
