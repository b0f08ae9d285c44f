#include "kcron/metrics.h"

#include <fmt/format.h>

namespace kcron {
namespace {

std::pair<std::string, std::string> split_labels(const std::string& name) {
  const auto brace = name.find('{');
  if (brace == std::string::npos) return {name, ""};
  return {name.substr(0, brace), name.substr(brace + 1, name.size() - brace - 2)};
}

void add_atomic(std::atomic<double>& target, double value) {
  double current = target.load(std::memory_order_relaxed);
  while (!target.compare_exchange_weak(current, current + value, std::memory_order_relaxed)) {
  }
}

}  // namespace

Histogram::Histogram(std::vector<double> bounds)
    : bounds_(std::move(bounds)), counts_(std::make_unique<std::atomic<std::uint64_t>[]>(bounds_.size() + 1)) {}

void Histogram::observe(double value) {
  std::size_t index = 0;
  while (index < bounds_.size() && value > bounds_[index]) ++index;
  counts_[index].fetch_add(1, std::memory_order_relaxed);
  count_.fetch_add(1, std::memory_order_relaxed);
  add_atomic(sum_, value);
}

std::string Histogram::render(const std::string& name, const std::string& labels) const {
  std::string out;
  const std::string sep = labels.empty() ? "" : ",";
  std::uint64_t cumulative = 0;
  for (std::size_t index = 0; index <= bounds_.size(); ++index) {
    cumulative += counts_[index].load(std::memory_order_relaxed);
    const std::string bound = index < bounds_.size() ? fmt::format("{}", bounds_[index]) : "+Inf";
    out += fmt::format("{}_bucket{{{}{}le=\"{}\"}} {}\n", name, labels, sep, bound, cumulative);
  }
  const std::string braces = labels.empty() ? "" : "{" + labels + "}";
  out += fmt::format("{}_sum{} {}\n{}_count{} {}\n", name, braces, sum_.load(), name, braces, count_.load());
  return out;
}

Counter& Metrics::counter(const std::string& name, const std::string& help) {
  std::lock_guard lock(mutex_);
  families_.try_emplace(split_labels(name).first, Family{"counter", help});
  auto& slot = counters_[name];
  if (!slot) slot = std::make_unique<Counter>();
  return *slot;
}

Gauge& Metrics::gauge(const std::string& name, const std::string& help) {
  std::lock_guard lock(mutex_);
  families_.try_emplace(split_labels(name).first, Family{"gauge", help});
  auto& slot = gauges_[name];
  if (!slot) slot = std::make_unique<Gauge>();
  return *slot;
}

Histogram& Metrics::histogram(const std::string& name, const std::string& help, std::vector<double> bounds) {
  std::lock_guard lock(mutex_);
  families_.try_emplace(split_labels(name).first, Family{"histogram", help});
  auto& slot = histograms_[name];
  if (!slot) slot = std::make_unique<Histogram>(std::move(bounds));
  return *slot;
}

std::vector<double> Metrics::latency_buckets() {
  return {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60};
}

std::string Metrics::render() const {
  std::lock_guard lock(mutex_);
  std::string out;
  for (const auto& [family, info] : families_) {
    out += fmt::format("# HELP {} {}\n# TYPE {} {}\n", family, info.help, family, info.type);
    for (const auto& [name, counter] : counters_) {
      if (split_labels(name).first == family) out += fmt::format("{} {}\n", name, counter->value());
    }
    for (const auto& [name, gauge] : gauges_) {
      if (split_labels(name).first == family) out += fmt::format("{} {}\n", name, gauge->value());
    }
    for (const auto& [name, histogram] : histograms_) {
      const auto [base, labels] = split_labels(name);
      if (base == family) out += histogram->render(base, labels);
    }
  }
  return out;
}

}  // namespace kcron
