// kcron-api's view of kcron.templates (docs/templates.md): a catalog kept in memory, followed by
// a thread of its own (kcron/template_follower.h), that the template routes read and that
// POST /v1/jobs renders a template body from. Writes of versions go through write_lock(), so two
// requests to this instance cannot both pass the immutability check for one version.
#pragma once

#include <condition_variable>
#include <mutex>
#include <optional>
#include <string_view>
#include <thread>
#include <vector>

#include "kcron.pb.h"
#include "kcron/clock.h"
#include "kcron/kafka.h"
#include "kcron/result.h"
#include "kcron/template_follower.h"
#include "kcron/templates.h"
#include "kcron/topics.h"

namespace kcron::api {

class TemplateSource {
 public:
  TemplateSource(kafka::Properties client, const TopicNames& names);
  ~TemplateSource();
  TemplateSource(const TemplateSource&) = delete;
  TemplateSource& operator=(const TemplateSource&) = delete;

  // Reads the topic to its end (at most `timeout`; a slower catch-up is logged and goes on), then
  // follows it on a thread until stop().
  Status start(Millis timeout);
  void stop();

  // One version of a tenant's template; waits up to `wait` for one not there yet.
  std::optional<v1::Template> find(std::string_view tenant, std::string_view name, std::uint32_t version,
                                   Millis wait = Millis(0)) const;
  // `flow`'s template nodes rendered from `tenant`'s versions (templates::render_flow_nodes, at
  // most `max_bytes` of rendered jobs), waiting up to `wait` in all for the versions not there
  // yet: a FlowRender naming a version still missing after it, with `flow` unchanged. Rendered
  // from a copy of the versions named, not under the catalog's lock. `failure`: the node an error
  // names, and whether it was the byte budget.
  Result<templates::FlowRender> render_flow(v1::Flow& flow, std::string_view tenant,
                                            std::size_t max_bytes = templates::kMaxFlowRecordBytes, Millis wait = Millis(0),
                                            templates::RenderFailure* failure = nullptr) const;
  // Every version of a tenant's template, oldest first; the latest of each of its templates.
  std::vector<v1::Template> versions(std::string_view tenant, std::string_view name) const;
  std::vector<v1::Template> latest_of_each(std::string_view tenant) const;
  // templates::is_new_version over the catalog as it is now.
  Result<bool> is_new_version(const v1::Template& definition) const;
  // A version this instance wrote (Kafka acknowledged it): in the catalog at once.
  void put(const v1::Template& definition);
  // Held by a writer from its check to its put.
  std::unique_lock<std::mutex> write_lock() { return std::unique_lock(write_mutex_); }

 private:
  void follow();

  mutable std::mutex mutex_;
  mutable std::condition_variable changed_;
  templates::Catalog catalog_;
  TemplateFollower follower_;
  std::mutex write_mutex_;
  std::thread thread_;
  bool stopping_ = false;
};

}  // namespace kcron::api
