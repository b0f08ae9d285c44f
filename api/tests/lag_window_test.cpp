#include "core/lag_window.h"

#include <catch2/catch.hpp>

using kcron::api::LagWindow;

TEST_CASE("lag summaries are per tenant and kind, of the samples in the window, by nearest rank") {
  LagWindow lags;
  for (int index = 1; index <= 100; ++index) lags.add("acme", LagWindow::Kind::kStart, 10000 + index, index);
  lags.add("acme", LagWindow::Kind::kFire, 10050, -300);  // fired ahead of its instant
  lags.add("beta", LagWindow::Kind::kStart, 10050, 9999);
  const auto start = lags.summary("acme", LagWindow::Kind::kStart, 0);
  CHECK(start.count == 100);
  CHECK(start.p50_ms == 50);
  CHECK(start.p99_ms == 99);
  CHECK(start.max_ms == 100);
  CHECK(lags.summary("acme", LagWindow::Kind::kFire, 0).p50_ms == -300);
  CHECK(lags.summary("beta", LagWindow::Kind::kStart, 0).max_ms == 9999);
  CHECK(lags.summary("gamma", LagWindow::Kind::kStart, 0).count == 0);
  // Only the samples whose own time is in the window: a replay of old records reports nothing.
  const auto recent = lags.summary("acme", LagWindow::Kind::kStart, 10091);
  CHECK(recent.count == 10);
  CHECK(recent.p50_ms == 95);
  CHECK(lags.summary("acme", LagWindow::Kind::kStart, 20000).count == 0);
}

TEST_CASE("lag samples are bounded per series and in tenants, the latest kept") {
  LagWindow lags(10, 2);
  for (int index = 0; index < 25; ++index) lags.add("acme", LagWindow::Kind::kStart, index, index);
  const auto kept = lags.summary("acme", LagWindow::Kind::kStart, 0);
  CHECK(kept.count == 10);
  CHECK(kept.max_ms == 24);
  CHECK(kept.p50_ms == 19);
  // Four series at most (two tenants): the least recently added goes first.
  lags.add("acme", LagWindow::Kind::kFire, 1, 1);
  lags.add("beta", LagWindow::Kind::kStart, 1, 1);
  lags.add("beta", LagWindow::Kind::kFire, 1, 1);
  lags.add("acme", LagWindow::Kind::kStart, 30, 30);  // acme's starts are the most recent again
  lags.add("gamma", LagWindow::Kind::kStart, 1, 1);   // pushes out acme's fires
  CHECK(lags.summary("acme", LagWindow::Kind::kFire, 0).count == 0);
  CHECK(lags.summary("acme", LagWindow::Kind::kStart, 0).count == 10);
  CHECK(lags.summary("gamma", LagWindow::Kind::kStart, 0).count == 1);
}
