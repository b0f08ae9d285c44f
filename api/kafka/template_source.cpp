#include "kafka/template_source.h"

#include <spdlog/spdlog.h>

#include <utility>

namespace kcron::api {

TemplateSource::TemplateSource(kafka::Properties client, const TopicNames& names)
    : follower_(std::move(client), names, catalog_, std::chrono::seconds(10)) {}

TemplateSource::~TemplateSource() {
  stop();
}

Status TemplateSource::start(Millis timeout) {
  {
    const std::lock_guard lock(mutex_);
    if (auto loaded = follower_.start(timeout); !loaded) {
      spdlog::warn("event=template_catalog_incomplete error=\"{}\"", loaded.error().message());
    }
  }
  thread_ = std::thread([this] { follow(); });
  return Status::success();
}

void TemplateSource::stop() {
  {
    const std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  changed_.notify_all();
  if (thread_.joinable()) thread_.join();
  follower_.close();
}

void TemplateSource::follow() {
  std::unique_lock lock(mutex_);
  while (!stopping_) {
    const auto before = follower_.applied();
    follower_.poll(1000);  // never waits: consume(0)
    if (follower_.applied() != before) changed_.notify_all();
    changed_.wait_for(lock, std::chrono::milliseconds(100), [this] { return stopping_; });
  }
}

std::optional<v1::Template> TemplateSource::find(std::string_view tenant, std::string_view name, std::uint32_t version,
                                                 Millis wait) const {
  std::unique_lock lock(mutex_);
  const v1::Template* found = nullptr;
  changed_.wait_for(lock, wait, [&] {
    found = catalog_.find(tenant, name, version);
    return found != nullptr || stopping_;
  });
  if (found == nullptr) return std::nullopt;
  return *found;
}

Result<templates::FlowRender> TemplateSource::render_flow(v1::Flow& flow, std::string_view tenant, std::size_t max_bytes,
                                                          Millis wait, templates::RenderFailure* failure) const {
  auto refs = templates::flow_template_refs(flow);
  if (!refs) return templates::render_flow_nodes(flow, templates::Catalog(), tenant, max_bytes, failure);  // the shape error
  const auto deadline = std::chrono::steady_clock::now() + wait;
  templates::Catalog copy;
  {
    // Only the versions named are copied under the lock (one wait, for all of them); the
    // rendering, bounded by max_bytes but up to that large, runs after it is released.
    std::unique_lock lock(mutex_);
    changed_.wait_until(lock, deadline, [&] { return stopping_ || catalog_.first_missing(tenant, *refs) == nullptr; });
    copy = catalog_.subset(tenant, *refs);
  }
  return templates::render_flow_nodes(flow, copy, tenant, max_bytes, failure);
}

std::vector<v1::Template> TemplateSource::versions(std::string_view tenant, std::string_view name) const {
  const std::lock_guard lock(mutex_);
  std::vector<v1::Template> result;
  for (const auto* version : catalog_.versions(tenant, name)) result.push_back(*version);
  return result;
}

std::vector<v1::Template> TemplateSource::latest_of_each(std::string_view tenant) const {
  const std::lock_guard lock(mutex_);
  std::vector<v1::Template> result;
  for (const auto* latest : catalog_.latest_of_each(tenant)) result.push_back(*latest);
  return result;
}

Result<bool> TemplateSource::is_new_version(const v1::Template& definition) const {
  const std::lock_guard lock(mutex_);
  return templates::is_new_version(catalog_, definition);
}

void TemplateSource::put(const v1::Template& definition) {
  {
    const std::lock_guard lock(mutex_);
    catalog_.put(definition);
  }
  changed_.notify_all();
}

}  // namespace kcron::api
