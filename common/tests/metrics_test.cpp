#include "kcron/metrics.h"

#include <catch2/catch.hpp>

using namespace kcron;

TEST_CASE("metrics render in the Prometheus text format") {
  Metrics metrics;
  metrics.counter("kcron_jobs_fired_total", "fired").inc(3);
  metrics.counter("kcron_rejected_total{component=\"dispatcher\"}", "rejected").inc();
  metrics.gauge("kcron_delay_store_jobs", "pending").set(42);
  auto& histogram = metrics.histogram("kcron_fire_lag_seconds", "lag", {0.01, 0.1, 1});
  histogram.observe(0.005);
  histogram.observe(0.05);
  histogram.observe(5);
  const auto text = metrics.render();
  CHECK_THAT(text, Catch::Contains("# TYPE kcron_jobs_fired_total counter\nkcron_jobs_fired_total 3\n"));
  CHECK_THAT(text, Catch::Contains("kcron_rejected_total{component=\"dispatcher\"} 1"));
  CHECK_THAT(text, Catch::Contains("kcron_delay_store_jobs 42"));
  CHECK_THAT(text, Catch::Contains("kcron_fire_lag_seconds_bucket{le=\"0.01\"} 1"));
  CHECK_THAT(text, Catch::Contains("kcron_fire_lag_seconds_bucket{le=\"0.1\"} 2"));
  CHECK_THAT(text, Catch::Contains("kcron_fire_lag_seconds_bucket{le=\"+Inf\"} 3"));
  CHECK_THAT(text, Catch::Contains("kcron_fire_lag_seconds_count 3"));
}
