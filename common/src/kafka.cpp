#include "kcron/kafka.h"

#include <fmt/ranges.h>
#include <librdkafka/rdkafka.h>
#include <openssl/asn1.h>
#include <openssl/bio.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <mutex>
#include <optional>
#include <thread>

#include "kcron/kafka_diagnosis.h"
#include "kcron/service.h"

namespace kcron::kafka {
namespace {

// A property whose value must never be printed (passwords, keys, tokens).
bool secret_property(std::string_view name) {
  return name.find("password") != std::string_view::npos || name.find("secret") != std::string_view::npos ||
         name.find("jaas") != std::string_view::npos || name.find("token") != std::string_view::npos || name.ends_with(".pem") ||
         name == "ssl.key.pem";
}

// The client certificate of an mTLS client, checked before librdkafka uses it: librdkafka sends an
// expired certificate, and the broker's answer is a bare "certificate unknown" alert.
Status check_client_certificate(const std::string& path) {
  std::unique_ptr<BIO, decltype(&BIO_free)> file(BIO_new_file(path.c_str(), "r"), &BIO_free);
  if (!file) return make_error("kafka.ssl.certificate.location: cannot read {}", path);
  std::unique_ptr<X509, decltype(&X509_free)> certificate(PEM_read_bio_X509(file.get(), nullptr, nullptr, nullptr), &X509_free);
  if (!certificate) return make_error("kafka.ssl.certificate.location: {} holds no PEM certificate", path);
  std::string subject(256, '\0');
  X509_NAME_oneline(X509_get_subject_name(certificate.get()), subject.data(), static_cast<int>(subject.size()));
  subject.resize(subject.find('\0'));
  const auto when = [](const ASN1_TIME* time) {
    std::unique_ptr<BIO, decltype(&BIO_free)> text(BIO_new(BIO_s_mem()), &BIO_free);
    if (!text || ASN1_TIME_print(text.get(), time) != 1) return std::string("?");
    char* data = nullptr;
    const auto size = BIO_get_mem_data(text.get(), &data);
    return std::string(data, static_cast<std::size_t>(size));
  };
  if (X509_cmp_current_time(X509_get0_notAfter(certificate.get())) < 0) {
    return make_error("the client certificate {} ({}) expired on {}: the broker will refuse it; issue a new one", path, subject,
                      when(X509_get0_notAfter(certificate.get())));
  }
  if (X509_cmp_current_time(X509_get0_notBefore(certificate.get())) > 0) {
    return make_error("the client certificate {} ({}) is not valid before {}: check this machine's clock", path, subject,
                      when(X509_get0_notBefore(certificate.get())));
  }
  return Status::success();
}

Result<std::unique_ptr<RdKafka::Conf>> make_conf(const Properties& properties) {
  std::unique_ptr<RdKafka::Conf> conf(RdKafka::Conf::create(RdKafka::Conf::CONF_GLOBAL));
  std::string error;
  for (const auto& [name, value] : properties) {
    if (conf->set(name, value, error) != RdKafka::Conf::CONF_OK) {
      if (secret_property(name)) return make_error("kafka property {} (value not shown): {}", name, error);
      return make_error("kafka property {}={}: {}", name, value, error);
    }
  }
  if (const auto certificate = properties.find("ssl.certificate.location"); certificate != properties.end()) {
    if (auto status = check_client_certificate(certificate->second); !status) return status.error();
  }
  return conf;
}

// The connections the broker refused for who this client is (TLS, SASL), process-wide: every
// client of a program uses the same credentials. Read by the start-up waits to fail fast.
struct Refusals {
  using Clock = std::chrono::steady_clock;
  std::mutex mutex;
  std::string last;            // guarded by mutex
  Clock::time_point at_last;   // guarded by mutex: when `last` was noted
  Clock::time_point at_prior;  // guarded by mutex: when the refusal before it was noted
  std::atomic<std::uint64_t> count{0};
  void note(std::string text) {
    {
      std::lock_guard lock(mutex);
      last = std::move(text);
      at_prior = at_last;
      at_last = Clock::now();
    }
    count.fetch_add(1);
  }
  static Refusals& instance() {
    static Refusals refusals;
    return refusals;
  }
};

// An error naming the refusal when the broker refused this client's connections lately: twice
// since `mark` (a count() read before waiting), or twice within the last kRecent with the latest
// kFresh ago at most. Twice: librdkafka retries a refused connection within a second, while a single
// TLS failure can be a broker closing connections as it restarts. Lately, not only since the mark:
// librdkafka reports an error identical to a connection's previous one at most once per 30 s (log
// and error event both), so a wait that starts just after the first refusals may see no new one
// before it times out; it still fails with the cause.
std::optional<Error> refused_since(std::uint64_t mark, std::string_view what) {
  constexpr auto kRecent = std::chrono::seconds(75);
  constexpr auto kFresh = std::chrono::seconds(40);
  auto& refusals = Refusals::instance();
  std::string text;
  {
    std::lock_guard lock(refusals.mutex);
    const auto now = Refusals::Clock::now();
    const auto count = refusals.count.load();
    const bool since_mark = count >= mark + 2;
    const bool lately = count >= 2 && now - refusals.at_prior <= kRecent && now - refusals.at_last <= kFresh;
    if (!since_mark && !lately) return std::nullopt;
    text = refusals.last;
  }
  const auto hint = connection_refusal_hint(text);
  return make_error("{}: the broker connection was refused: {}{}{}", what, text, hint.empty() ? "" : "; ", hint);
}

template <typename Callback>
Status set_callback(RdKafka::Conf& conf, const char* name, Callback* callback) {
  if (callback == nullptr) return Status::success();
  std::string error;
  if (conf.set(name, callback, error) != RdKafka::Conf::CONF_OK) return make_error("kafka {}: {}", name, error);
  return Status::success();
}

// librdkafka's own log lines, as structured log lines of the program.
class LogBridge final : public RdKafka::EventCb {
 public:
  void event_cb(RdKafka::Event& event) override {
    if (event.type() == RdKafka::Event::EVENT_LOG) {
      const auto severity = event.severity();
      const auto level = severity <= RdKafka::Event::EVENT_SEVERITY_ERROR     ? spdlog::level::err
                         : severity == RdKafka::Event::EVENT_SEVERITY_WARNING ? spdlog::level::warn
                         : severity <= RdKafka::Event::EVENT_SEVERITY_INFO    ? spdlog::level::info
                                                                              : spdlog::level::debug;
      spdlog::log(level, "event=librdkafka facility={} msg=\"{}\"", event.fac(), event.str());
      if (severity <= RdKafka::Event::EVENT_SEVERITY_ERROR && is_connection_refusal(event.str()))
        Refusals::instance().note(event.str());
    } else if (event.type() == RdKafka::Event::EVENT_ERROR) {
      if (event.err() == RdKafka::ERR__AUTHENTICATION || event.err() == RdKafka::ERR__SSL || is_connection_refusal(event.str())) {
        Refusals::instance().note(event.str());
      }
      spdlog::log(event.fatal() ? spdlog::level::err : spdlog::level::warn, "event=librdkafka_error error=\"{}\" fatal={}",
                  event.str(), event.fatal());
    }
  }
  static LogBridge& instance() {
    static LogBridge bridge;
    return bridge;
  }
};

}  // namespace

Properties client_properties(const Config& config, const std::string& client_id) {
  Properties properties = {{"bootstrap.servers", config.get("brokers")}, {"client.id", client_id}};
  for (const auto& [name, value] : config.kafka_properties()) {
    if (!value.empty()) properties[name] = value;  // an empty value (an env override) unsets
  }
  return properties;
}

Result<std::unique_ptr<RdKafka::Producer>> make_producer(Properties properties, const std::string& transactional_id,
                                                         RdKafka::DeliveryReportCb* delivery) {
  properties.try_emplace("enable.idempotence", "true");
  properties.try_emplace("acks", "all");
  properties.try_emplace("partitioner", "murmur2_random");
  properties.try_emplace("linger.ms", "5");
  properties.try_emplace("compression.type", "lz4");
  properties.try_emplace("message.max.bytes", "1000000");
  if (!transactional_id.empty()) {
    properties["transactional.id"] = transactional_id;
    properties.try_emplace("transaction.timeout.ms", "10000");
  }
  auto conf = make_conf(properties);
  if (!conf) return conf.error();
  if (auto status = set_callback(**conf, "dr_cb", delivery); !status) return status.error();
  if (auto status = set_callback(**conf, "event_cb", &LogBridge::instance()); !status) return status.error();
  std::string error;
  std::unique_ptr<RdKafka::Producer> producer(RdKafka::Producer::create(conf->get(), error));
  if (!producer) return make_error("cannot create Kafka producer: {}", error);
  return producer;
}

Result<std::unique_ptr<RdKafka::KafkaConsumer>> make_consumer(Properties properties, RdKafka::RebalanceCb* rebalance) {
  properties.try_emplace("enable.auto.commit", "false");
  properties.try_emplace("enable.auto.offset.store", "false");
  properties.try_emplace("auto.offset.reset", "earliest");
  properties.try_emplace("isolation.level", "read_committed");
  properties.try_emplace("allow.auto.create.topics", "false");
  properties.try_emplace("partition.assignment.strategy", "roundrobin");
  properties.try_emplace("session.timeout.ms", "6000");
  properties.try_emplace("heartbeat.interval.ms", "1500");
  auto conf = make_conf(properties);
  if (!conf) return conf.error();
  if (auto status = set_callback(**conf, "rebalance_cb", rebalance); !status) return status.error();
  if (auto status = set_callback(**conf, "event_cb", &LogBridge::instance()); !status) return status.error();
  std::string error;
  std::unique_ptr<RdKafka::KafkaConsumer> consumer(RdKafka::KafkaConsumer::create(conf->get(), error));
  if (!consumer) return make_error("cannot create Kafka consumer: {}", error);
  return consumer;
}

Status init_transactions(RdKafka::Producer& producer, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  const auto mark = Refusals::instance().count.load();
  while (true) {
    std::unique_ptr<RdKafka::Error> error(producer.init_transactions(2000));
    if (!error) return Status::success();
    if (auto refused = refused_since(mark, "init_transactions")) return *refused;
    const bool may_retry = error->is_retriable() || error->code() == RdKafka::ERR__TIMED_OUT;
    if (!may_retry || stop_requested() || std::chrono::steady_clock::now() >= deadline) {
      return to_error(*error, stop_requested() ? "init_transactions (interrupted by a stop signal)" : "init_transactions");
    }
  }
}

std::string fatal_reason(RdKafka::Handle& handle) {
  std::string text;
  const auto code = handle.fatal_error(text);
  if (code == RdKafka::ERR_NO_ERROR) return {};
  return fmt::format("{}: {}", RdKafka::err2str(code), text);
}

void discard_consumer(std::unique_ptr<RdKafka::KafkaConsumer>& consumer) {
  // No close(): it waits for the consumer's queued requests, and with its group coordinator or a
  // broker gone (the very faults that bring us here) that took minutes. The destructor destroys
  // the handle without the close protocol; a static member is replaced by the new consumer with
  // the same group.instance.id, and no rebalance callback runs for a consumer that owns nothing.
  consumer.reset();
}

bool record_refused(RdKafka::ErrorCode code) {
  switch (code) {
    case RdKafka::ERR_MSG_SIZE_TOO_LARGE:     // over the broker's or the topic's max.message.bytes
    case RdKafka::ERR_RECORD_LIST_TOO_LARGE:  // a batch (of one record) over the segment size
    case RdKafka::ERR_INVALID_RECORD:         // e.g. a null key on a compacted topic
    case RdKafka::ERR_POLICY_VIOLATION:       // a broker-side create/alter policy
    case RdKafka::ERR_TOPIC_AUTHORIZATION_FAILED:
      return true;
    default:
      return false;
  }
}

Result<std::unique_ptr<RdKafka::Producer>> make_transactional_producer(Properties properties, const std::string& transactional_id,
                                                                       std::chrono::milliseconds transaction_timeout,
                                                                       RdKafka::DeliveryReportCb* delivery) {
  properties["transaction.timeout.ms"] = std::to_string(transaction_timeout.count());
  auto producer = make_producer(std::move(properties), transactional_id, delivery);
  if (!producer) return producer.error();
  if (auto status = init_transactions(**producer, transaction_timeout * 3); !status) return status.error();
  return producer;
}

Result<std::unique_ptr<RdKafka::KafkaConsumer>> make_static_member(Properties client, const Properties& extra,
                                                                   const std::string& group_id, const std::string& instance_id,
                                                                   const std::vector<std::string>& topics,
                                                                   RdKafka::RebalanceCb* rebalance) {
  for (const auto& [key, value] : extra) client.insert_or_assign(key, value);
  client["group.id"] = group_id;
  client["group.instance.id"] = instance_id;
  auto consumer = make_consumer(std::move(client), rebalance);
  if (!consumer) return consumer.error();
  if (const auto code = (*consumer)->subscribe(topics); code != RdKafka::ERR_NO_ERROR) {
    return to_error(code, fmt::format("subscribe to {}", fmt::join(topics, ",")));
  }
  return consumer;
}

Status retry_with_backoff(const std::function<Status()>& attempt, std::chrono::milliseconds timeout, std::string_view what) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (auto backoff = std::chrono::milliseconds(500);; backoff = std::min(backoff * 2, std::chrono::milliseconds(5000))) {
    auto status = attempt();
    if (status || stop_requested() || std::chrono::steady_clock::now() + backoff >= deadline) return status;
    spdlog::warn("event=retry what=\"{}\" error=\"{}\" backoff_ms={}", what, status.error().message(), backoff.count());
    std::this_thread::sleep_for(backoff);
  }
}

Status produce(RdKafka::Producer& producer, const OutRecord& record, void* opaque, RdKafka::ErrorCode* failed_code) {
  constexpr int kMaxAttempts = 600;  // ~60 s of a full queue
  for (int attempt = 0; attempt < kMaxAttempts; ++attempt) {
    RdKafka::Headers* headers = RdKafka::Headers::create();
    for (const auto& [name, value] : record.headers) headers->add(name, value);
    const void* value = record.tombstone ? nullptr : record.value.data();
    const auto code = producer.produce(record.topic, record.partition, RdKafka::Producer::RK_MSG_COPY, const_cast<void*>(value),
                                       record.tombstone ? 0 : record.value.size(), record.key.data(), record.key.size(),
                                       record.timestamp_ms, headers, opaque);
    if (code == RdKafka::ERR_NO_ERROR) return Status::success();
    delete headers;  // ownership passes to librdkafka only on success
    if (code != RdKafka::ERR__QUEUE_FULL) {
      if (failed_code != nullptr) *failed_code = code;
      return to_error(code, fmt::format("produce to {}", record.topic));
    }
    producer.poll(100);
  }
  return make_error("produce to {}: local queue stayed full", record.topic);
}

std::string header_value(RdKafka::Message& message, std::string_view name) {
  RdKafka::Headers* headers = message.headers();
  if (headers == nullptr) return {};
  const auto matches = headers->get_last(std::string(name));
  if (matches.err() != RdKafka::ERR_NO_ERROR || matches.value() == nullptr) return {};
  return {static_cast<const char*>(matches.value()), matches.value_size()};
}

Result<std::map<std::string, std::int32_t>> partition_counts(RdKafka::Handle& handle, std::chrono::milliseconds timeout) {
  // Steps of at most 15 s, so a stop signal during start-up is honoured in time; not shorter, since
  // a cluster with thousands of topics (or a busy one) can take seconds to answer a full request.
  // The first steps are short: a refused connection (TLS, SASL) is reported within seconds.
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  const auto mark = Refusals::instance().count.load();
  std::unique_ptr<RdKafka::Metadata> metadata;
  for (std::int64_t step = 2000;; step = std::min<std::int64_t>(step * 2, 15000)) {
    RdKafka::Metadata* raw = nullptr;
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now()).count();
    const auto code = handle.metadata(true, nullptr, &raw, static_cast<int>(std::clamp<std::int64_t>(left, 1000, step)));
    metadata.reset(raw);
    if (code == RdKafka::ERR_NO_ERROR) break;
    if (auto refused = refused_since(mark, "fetch cluster metadata")) return *refused;
    if (stop_requested() || std::chrono::steady_clock::now() >= deadline) {
      return to_error(code, fmt::format("fetch cluster metadata from {}", stop_requested() ? "(stop requested)" : "the brokers"));
    }
  }
  std::map<std::string, std::int32_t> counts;
  for (const auto* topic : *metadata->topics()) {
    if (topic->err() == RdKafka::ERR_NO_ERROR) counts[topic->topic()] = static_cast<std::int32_t>(topic->partitions()->size());
  }
  return counts;
}

Status check_topics(RdKafka::Handle& handle, const std::vector<TopicSpec>& topics, std::chrono::milliseconds timeout) {
  auto counts = partition_counts(handle, timeout);
  if (!counts) return counts.error();
  std::string problems;
  for (const auto& spec : topics) {
    const auto found = counts->find(spec.name);
    if (found == counts->end()) {
      problems += fmt::format(" {} is missing;", spec.name);
    } else if (spec.partitions > 0 && found->second != spec.partitions) {
      problems += fmt::format(" {} has {} partitions, expected {};", spec.name, found->second, spec.partitions);
    }
  }
  if (!problems.empty()) {
    // A secured broker lists only the topics this principal may Describe.
    return make_error(
        "topics do not match the layout:{} run `kcron topics create` (on a broker with ACLs, a topic this client may not "
        "Describe is listed as missing: `kcron kafka-acls` grants kcron's principal its topics)",
        problems);
  }
  return Status::success();
}

Result<std::vector<std::string>> create_topics(const Properties& properties, const std::vector<TopicSpec>& topics,
                                               int replication_factor, std::chrono::milliseconds timeout) {
  auto producer = make_producer(properties, "");
  if (!producer) return producer.error();
  auto existing = partition_counts(**producer, timeout);
  if (!existing) return existing.error();

  rd_kafka_t* handle = (*producer)->c_ptr();
  std::vector<rd_kafka_NewTopic_t*> requests;
  std::vector<std::string> wanted;
  char error_text[512];
  for (const auto& spec : topics) {
    if (existing->contains(spec.name)) continue;
    auto* request = rd_kafka_NewTopic_new(spec.name.c_str(), spec.partitions, replication_factor, error_text, sizeof error_text);
    if (request == nullptr) return make_error("topic {}: {}", spec.name, error_text);
    for (const auto& [name, value] : spec.config) rd_kafka_NewTopic_set_config(request, name.c_str(), value.c_str());
    requests.push_back(request);
    wanted.push_back(spec.name);
  }
  if (requests.empty()) return std::vector<std::string>{};

  rd_kafka_queue_t* queue = rd_kafka_queue_new(handle);
  rd_kafka_AdminOptions_t* options = rd_kafka_AdminOptions_new(handle, RD_KAFKA_ADMIN_OP_CREATETOPICS);
  rd_kafka_AdminOptions_set_operation_timeout(options, static_cast<int>(timeout.count()), error_text, sizeof error_text);
  rd_kafka_CreateTopics(handle, requests.data(), requests.size(), options, queue);
  rd_kafka_event_t* event = rd_kafka_queue_poll(queue, static_cast<int>(timeout.count()) + 5000);

  Result<std::vector<std::string>> outcome = make_error("create topics: no answer from the cluster in time");
  if (event != nullptr) {
    if (rd_kafka_event_error(event) != RD_KAFKA_RESP_ERR_NO_ERROR) {
      outcome = make_error("create topics: {}", rd_kafka_event_error_string(event));
    } else {
      const auto* result = rd_kafka_event_CreateTopics_result(event);
      std::size_t count = 0;
      const auto* results = rd_kafka_CreateTopics_result_topics(result, &count);
      std::vector<std::string> created;
      std::string problems;
      for (std::size_t index = 0; index < count; ++index) {
        const auto code = rd_kafka_topic_result_error(results[index]);
        const std::string name = rd_kafka_topic_result_name(results[index]);
        if (code == RD_KAFKA_RESP_ERR_NO_ERROR) {
          created.push_back(name);
        } else if (code != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) {
          problems += fmt::format(" {}: {};", name, rd_kafka_topic_result_error_string(results[index]));
        }
      }
      outcome = problems.empty() ? Result<std::vector<std::string>>(created) : make_error("create topics:{}", problems);
      if (outcome.ok()) {
        if (auto status = wait_for_leaders(**producer, wanted, timeout); !status) outcome = status.error();
      }
    }
    rd_kafka_event_destroy(event);
  }
  rd_kafka_AdminOptions_destroy(options);
  rd_kafka_NewTopic_destroy_array(requests.data(), requests.size());
  rd_kafka_queue_destroy(queue);
  return outcome;
}

namespace {

// Owners of the C admin API's objects.
template <auto Destroy>
struct Destroyer {
  template <typename Object>
  void operator()(Object* object) const {
    Destroy(object);
  }
};
using QueuePtr = std::unique_ptr<rd_kafka_queue_t, Destroyer<&rd_kafka_queue_destroy>>;
using AdminOptionsPtr = std::unique_ptr<rd_kafka_AdminOptions_t, Destroyer<&rd_kafka_AdminOptions_destroy>>;
using EventPtr = std::unique_ptr<rd_kafka_event_t, Destroyer<&rd_kafka_event_destroy>>;
using ConfigResourcePtr = std::unique_ptr<rd_kafka_ConfigResource_t, Destroyer<&rd_kafka_ConfigResource_destroy>>;

// Sends one admin request (`send` enqueues it with the options and the reply queue it is given) and
// waits for its answer; a request-level error is an Error, per-resource errors are the caller's.
Result<EventPtr> admin_call(rd_kafka_t* handle, rd_kafka_admin_op_t operation, std::chrono::milliseconds timeout,
                            const std::function<void(rd_kafka_AdminOptions_t*, rd_kafka_queue_t*)>& send, std::string_view what) {
  const QueuePtr queue(rd_kafka_queue_new(handle));
  const AdminOptionsPtr options(rd_kafka_AdminOptions_new(handle, operation));
  char error_text[512];
  if (rd_kafka_AdminOptions_set_request_timeout(options.get(), static_cast<int>(timeout.count()), error_text,
                                                sizeof error_text) != RD_KAFKA_RESP_ERR_NO_ERROR) {
    return make_error("{}: {}", what, error_text);
  }
  send(options.get(), queue.get());
  EventPtr event(rd_kafka_queue_poll(queue.get(), static_cast<int>(timeout.count()) + 5000));
  if (event == nullptr) return make_error("{}: no answer from the cluster in {} ms", what, timeout.count());
  if (rd_kafka_event_error(event.get()) != RD_KAFKA_RESP_ERR_NO_ERROR) {
    return make_error("{}: {}", what, rd_kafka_event_error_string(event.get()));
  }
  return event;
}

// The broker's words for a resource's error, and for a refusal the permission that is missing.
std::string resource_error(const rd_kafka_ConfigResource_t* resource, std::string_view permission) {
  const auto code = rd_kafka_ConfigResource_error(resource);
  const char* text = rd_kafka_ConfigResource_error_string(resource);
  std::string message = text != nullptr && *text != '\0' ? text : rd_kafka_err2str(code);
  if (code == RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED || code == RD_KAFKA_RESP_ERR_CLUSTER_AUTHORIZATION_FAILED) {
    message += fmt::format(" (kcron's principal needs the {} permission on topic {})", permission,
                           rd_kafka_ConfigResource_name(resource));
  }
  return message;
}

}  // namespace

Result<std::vector<DescribedTopicConfig>> describe_topic_configs(RdKafka::Handle& handle, const std::vector<std::string>& topics,
                                                                 std::chrono::milliseconds timeout) {
  if (topics.empty()) return std::vector<DescribedTopicConfig>{};
  std::vector<ConfigResourcePtr> owned;
  std::vector<rd_kafka_ConfigResource_t*> resources;
  for (const auto& topic : topics) {
    owned.emplace_back(rd_kafka_ConfigResource_new(RD_KAFKA_RESOURCE_TOPIC, topic.c_str()));
    resources.push_back(owned.back().get());
  }
  rd_kafka_t* client = handle.c_ptr();
  auto event = admin_call(
      client, RD_KAFKA_ADMIN_OP_DESCRIBECONFIGS, timeout,
      [&](rd_kafka_AdminOptions_t* options, rd_kafka_queue_t* queue) {
        rd_kafka_DescribeConfigs(client, resources.data(), resources.size(), options, queue);
      },
      "describe the configs of the topics");
  if (!event) return event.error();
  std::size_t count = 0;
  const auto* described = rd_kafka_DescribeConfigs_result_resources(rd_kafka_event_DescribeConfigs_result(event->get()), &count);
  std::vector<DescribedTopicConfig> configs;
  std::string problems;
  for (std::size_t index = 0; index < count; ++index) {
    const auto* resource = described[index];
    const std::string topic = rd_kafka_ConfigResource_name(resource);
    const auto code = rd_kafka_ConfigResource_error(resource);
    if (code == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART) continue;
    if (code != RD_KAFKA_RESP_ERR_NO_ERROR) {
      problems += fmt::format(" {}: {};", topic, resource_error(resource, "DescribeConfigs"));
      continue;
    }
    DescribedTopicConfig config;
    config.topic = topic;
    std::size_t entry_count = 0;
    const auto* entries = rd_kafka_ConfigResource_configs(resource, &entry_count);
    for (std::size_t entry_index = 0; entry_index < entry_count; ++entry_index) {
      const auto* entry = entries[entry_index];
      const std::string key = rd_kafka_ConfigEntry_name(entry);
      const char* value = rd_kafka_ConfigEntry_value(entry);
      const bool overridden = rd_kafka_ConfigEntry_source(entry) == RD_KAFKA_CONFIG_SOURCE_DYNAMIC_TOPIC_CONFIG;
      if (value == nullptr || rd_kafka_ConfigEntry_is_sensitive(entry) != 0) {
        if (overridden) config.hidden_overrides.push_back(key);
        continue;
      }
      config.effective[key] = value;
      if (overridden) config.overrides[key] = value;
    }
    configs.push_back(std::move(config));
  }
  if (!problems.empty()) return make_error("describe the configs of the topics:{}", problems);
  return configs;
}

Result<std::vector<ConfigDrift>> topic_config_drift(RdKafka::Handle& handle, const std::vector<TopicSpec>& specs,
                                                    std::chrono::milliseconds timeout) {
  auto counts = partition_counts(handle, timeout);
  if (!counts) return counts.error();
  std::vector<std::string> existing;
  for (const auto& spec : specs) {
    if (counts->contains(spec.name)) existing.push_back(spec.name);
  }
  auto described = describe_topic_configs(handle, existing, timeout);
  if (!described) return described.error();
  std::vector<ConfigDrift> drift;
  for (const auto& spec : specs) {
    const auto found = std::find_if(described->begin(), described->end(),
                                    [&](const DescribedTopicConfig& config) { return config.topic == spec.name; });
    if (found == described->end()) continue;
    auto topic_drift = config_drift(spec, *found);
    drift.insert(drift.end(), topic_drift.begin(), topic_drift.end());
  }
  return drift;
}

Status set_topic_overrides(RdKafka::Handle& handle, const std::string& topic, const std::map<std::string, std::string>& overrides,
                           std::chrono::milliseconds timeout) {
  const ConfigResourcePtr resource(rd_kafka_ConfigResource_new(RD_KAFKA_RESOURCE_TOPIC, topic.c_str()));
  for (const auto& [key, value] : overrides) {
    if (rd_kafka_ConfigResource_set_config(resource.get(), key.c_str(), value.c_str()) != RD_KAFKA_RESP_ERR_NO_ERROR) {
      return make_error("topic {}: config {}={} cannot be sent", topic, key, value);
    }
  }
  rd_kafka_t* client = handle.c_ptr();
  rd_kafka_ConfigResource_t* request = resource.get();
  const std::string what = fmt::format("topic {}: alter its configs", topic);
  auto event = admin_call(
      client, RD_KAFKA_ADMIN_OP_ALTERCONFIGS, timeout,
      [&](rd_kafka_AdminOptions_t* options, rd_kafka_queue_t* queue) {
        rd_kafka_AlterConfigs(client, &request, 1, options, queue);
      },
      what);
  if (!event) return event.error();
  std::size_t count = 0;
  const auto* altered = rd_kafka_AlterConfigs_result_resources(rd_kafka_event_AlterConfigs_result(event->get()), &count);
  if (count == 0) return make_error("{}: the cluster's answer names no topic", what);
  for (std::size_t index = 0; index < count; ++index) {
    if (rd_kafka_ConfigResource_error(altered[index]) != RD_KAFKA_RESP_ERR_NO_ERROR) {
      return make_error("{}: {}", what, resource_error(altered[index], "AlterConfigs"));
    }
  }
  return Status::success();
}

Status align_topic_configs(RdKafka::Handle& handle, const std::string& topic, const ConfigEntries& wanted,
                           std::chrono::milliseconds timeout) {
  auto described = describe_topic_configs(handle, {topic}, timeout);
  if (!described) return described.error();
  if (described->empty()) return make_error("topic {} does not exist (kcron topics create makes it)", topic);
  auto overrides = overlay_overrides(described->front(), wanted);
  if (!overrides) return overrides.error();
  return set_topic_overrides(handle, topic, *overrides, timeout);
}

Result<std::pair<std::int64_t, std::int64_t>> watermarks(RdKafka::Handle& handle, const std::string& topic,
                                                         std::int32_t partition, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (true) {
    std::int64_t low = 0;
    std::int64_t high = 0;
    const auto code = handle.query_watermark_offsets(topic, partition, &low, &high, 5000);
    if (code == RdKafka::ERR_NO_ERROR) return std::pair{low, high};
    if (std::chrono::steady_clock::now() >= deadline)
      return to_error(code, fmt::format("query watermarks of {}[{}]", topic, partition));
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
}

Status wait_for_leaders(RdKafka::Handle& handle, const std::vector<std::string>& topics, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (true) {
    RdKafka::Metadata* raw = nullptr;
    const auto code = handle.metadata(true, nullptr, &raw, 5000);
    std::unique_ptr<RdKafka::Metadata> metadata(raw);
    std::size_t ready = 0;
    if (code == RdKafka::ERR_NO_ERROR) {
      for (const auto* topic : *metadata->topics()) {
        if (std::find(topics.begin(), topics.end(), topic->topic()) == topics.end() || topic->err() != RdKafka::ERR_NO_ERROR)
          continue;
        const auto* partitions = topic->partitions();
        const bool led = !partitions->empty() && std::all_of(partitions->begin(), partitions->end(), [](const auto* partition) {
          return partition->err() == RdKafka::ERR_NO_ERROR && partition->leader() >= 0;
        });
        ready += led ? 1 : 0;
      }
    }
    if (ready == topics.size()) return Status::success();
    if (std::chrono::steady_clock::now() >= deadline) return make_error("topics have no leader yet after {} ms", timeout.count());
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
}

Result<std::int64_t> replay_partition(const Properties& client, const std::string& group_id, const std::string& topic,
                                      std::int32_t partition,
                                      const std::function<std::int64_t(std::int64_t low, std::int64_t high)>& choose_start,
                                      const std::function<Status(RdKafka::Message& record)>& on_record,
                                      std::chrono::milliseconds timeout) {
  auto ends = replay_partitions(
      client, group_id, topic, {partition},
      [&](std::int32_t /*partition*/, std::int64_t low, std::int64_t high) { return choose_start(low, high); }, on_record,
      timeout);
  if (!ends) return ends.error();
  return ends->at(partition);
}

Result<std::map<std::int32_t, std::int64_t>> replay_partitions(
    const Properties& client, const std::string& group_id, const std::string& topic, const std::vector<std::int32_t>& partitions,
    const std::function<std::int64_t(std::int32_t partition, std::int64_t low, std::int64_t high)>& choose_start,
    const std::function<Status(RdKafka::Message& record)>& on_record, std::chrono::milliseconds timeout,
    std::chrono::milliseconds* transaction_wait) {
  auto properties = client;
  properties["group.id"] = group_id;
  properties["enable.partition.eof"] = "true";
  properties["fetch.max.bytes"] = "52428800";
  // At a partition's end the broker holds a fetch this long before answering "nothing new": keep
  // it short, the end of a replay is found by that answer.
  properties["fetch.wait.max.ms"] = "20";
  auto reader = make_consumer(properties);
  if (!reader) return reader.error();
  properties["isolation.level"] = "read_uncommitted";
  auto probe = make_consumer(properties);
  if (!probe) return probe.error();

  std::map<std::int32_t, std::int64_t> position;
  std::map<std::int32_t, std::int64_t> high;
  std::vector<RdKafka::TopicPartition*> assignment;
  for (const auto partition : partitions) {
    auto marks = watermarks(**probe, topic, partition, std::chrono::milliseconds(30000));
    if (!marks) {
      RdKafka::TopicPartition::destroy(assignment);
      return marks.error();
    }
    const std::int64_t start = choose_start(partition, marks->first, marks->second);
    position[partition] = start;
    if (start < marks->second) {
      high[partition] = marks->second;
      assignment.push_back(RdKafka::TopicPartition::create(topic, partition, start));
    }
  }
  if (!assignment.empty()) {
    const auto code = (*reader)->assign(assignment);
    RdKafka::TopicPartition::destroy(assignment);
    if (code != RdKafka::ERR_NO_ERROR) return to_error(code, fmt::format("assign {}", topic));
  }
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  std::map<std::int32_t, std::chrono::steady_clock::time_point> stopped_short;  // at an open transaction since
  std::chrono::steady_clock::duration longest_wait{};
  auto finished = [&](std::map<std::int32_t, std::int64_t>::iterator pending) {
    if (auto since = stopped_short.find(pending->first); since != stopped_short.end()) {
      longest_wait = std::max(longest_wait, std::chrono::steady_clock::now() - since->second);
    }
    high.erase(pending);
  };
  while (!high.empty()) {  // the partitions not yet at their end
    if (std::chrono::steady_clock::now() > deadline || stop_requested()) {
      const auto& [partition, end] = *high.begin();
      return make_error("replay of {}[{}] stopped at offset {} before the end ({})", topic, partition, position[partition], end);
    }
    std::unique_ptr<RdKafka::Message> message((*reader)->consume(50));
    if (message->err() == RdKafka::ERR__TIMED_OUT) continue;
    const std::int32_t partition = message->partition();
    auto pending = high.find(partition);
    if (message->err() == RdKafka::ERR__PARTITION_EOF) {
      if (pending == high.end()) continue;
      position[partition] = std::max(position[partition], message->offset());
      if (position[partition] >= pending->second) {
        finished(pending);
        continue;
      }
      // Short of the high watermark: an open transaction (read_committed stops at it) or records
      // written since. Look again; the reader reports the end again once the transaction ends.
      auto latest = watermarks(**probe, topic, partition, std::chrono::milliseconds(30000));
      if (!latest) return latest.error();
      pending->second = latest->second;
      if (position[partition] >= pending->second) {
        finished(pending);
      } else {
        stopped_short.try_emplace(partition, std::chrono::steady_clock::now());
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
      }
      continue;
    }
    if (message->err() != RdKafka::ERR_NO_ERROR) {
      spdlog::warn("event=replay_consume_error topic={} partition={} error=\"{}\"", topic, partition, message->errstr());
      continue;
    }
    if (auto status = on_record(*message); !status) return status.error();
    position[partition] = message->offset() + 1;
  }
  (*reader)->close();
  (*probe)->close();
  if (transaction_wait != nullptr) *transaction_wait = std::chrono::duration_cast<std::chrono::milliseconds>(longest_wait);
  return position;
}

std::int64_t consumer_lag(RdKafka::KafkaConsumer& consumer) {
  PartitionList assigned;
  if (consumer.assignment(assigned.items) != RdKafka::ERR_NO_ERROR || assigned.items.empty()) return 0;
  if (consumer.position(assigned.items) != RdKafka::ERR_NO_ERROR) return 0;
  std::int64_t lag = 0;
  for (const auto* partition : assigned.items) {
    if (partition->offset() < 0) continue;
    std::int64_t low = -1;
    std::int64_t high = -1;
    if (consumer.get_watermark_offsets(partition->topic(), partition->partition(), &low, &high) != RdKafka::ERR_NO_ERROR)
      continue;
    if (high > partition->offset()) lag += high - partition->offset();
  }
  return lag;
}

LagSampler::LagSampler(Metrics& metrics, const std::string& component, std::chrono::milliseconds interval)
    : gauge_(metrics.gauge(fmt::format("kcron_consumer_lag_records{{component=\"{}\"}}", component),
                           "records not yet consumed on the assigned input partitions (high watermark - position; a "
                           "transactional partition's trailing commit marker counts as 1)")),
      interval_(interval) {}

void LagSampler::sample(RdKafka::KafkaConsumer& consumer) {
  const auto now = std::chrono::steady_clock::now();
  if (now < next_) return;
  next_ = now + interval_;
  gauge_.set(static_cast<double>(consumer_lag(consumer)));
}

Error to_error(const RdKafka::Error& error, std::string_view what) {
  const auto hint = authorization_hint(error.name(), "");
  return make_error("{}: {} ({}){}{}", what, error.str(), error.name(), hint.empty() ? "" : "; ", hint);
}

Error to_error(RdKafka::ErrorCode code, std::string_view what) {
  const auto hint = authorization_hint(rd_kafka_err2name(static_cast<rd_kafka_resp_err_t>(code)), "");
  return make_error("{}: {}{}{}", what, RdKafka::err2str(code), hint.empty() ? "" : "; ", hint);
}

std::int64_t record_timestamp_ms(const RdKafka::Message& message, std::int64_t now_ms) {
  const auto timestamp = message.timestamp();
  if (timestamp.type == RdKafka::MessageTimestamp::MSG_TIMESTAMP_NOT_AVAILABLE || timestamp.timestamp <= 0) return now_ms;
  return timestamp.timestamp;
}

}  // namespace kcron::kafka

namespace kcron::kafka {
namespace {

using AclBindingPtr = std::unique_ptr<rd_kafka_AclBinding_t, Destroyer<&rd_kafka_AclBinding_destroy>>;

rd_kafka_AclOperation_t to_rd(AclOperation operation) {
  switch (operation) {
    case AclOperation::kAll:
      return RD_KAFKA_ACL_OPERATION_ALL;
    case AclOperation::kRead:
      return RD_KAFKA_ACL_OPERATION_READ;
    case AclOperation::kWrite:
      return RD_KAFKA_ACL_OPERATION_WRITE;
    case AclOperation::kDescribe:
      return RD_KAFKA_ACL_OPERATION_DESCRIBE;
    case AclOperation::kCreate:
      return RD_KAFKA_ACL_OPERATION_CREATE;
    case AclOperation::kDelete:
      return RD_KAFKA_ACL_OPERATION_DELETE;
    case AclOperation::kDescribeConfigs:
      return RD_KAFKA_ACL_OPERATION_DESCRIBE_CONFIGS;
    case AclOperation::kAlterConfigs:
      return RD_KAFKA_ACL_OPERATION_ALTER_CONFIGS;
    case AclOperation::kIdempotentWrite:
      return RD_KAFKA_ACL_OPERATION_IDEMPOTENT_WRITE;
  }
  return RD_KAFKA_ACL_OPERATION_UNKNOWN;
}

std::optional<AclOperation> from_rd(rd_kafka_AclOperation_t operation) {
  for (const auto candidate :
       {AclOperation::kAll, AclOperation::kRead, AclOperation::kWrite, AclOperation::kDescribe, AclOperation::kCreate,
        AclOperation::kDelete, AclOperation::kDescribeConfigs, AclOperation::kAlterConfigs, AclOperation::kIdempotentWrite}) {
    if (to_rd(candidate) == operation) return candidate;
  }
  return std::nullopt;
}

// A binding's entry, when it is one kcron can express (ALLOW, a topic or a group, any host).
std::optional<AclEntry> entry_of(const rd_kafka_AclBinding_t* binding) {
  const auto restype = rd_kafka_AclBinding_restype(binding);
  const auto operation = from_rd(rd_kafka_AclBinding_operation(binding));
  if ((restype != RD_KAFKA_RESOURCE_TOPIC && restype != RD_KAFKA_RESOURCE_GROUP) || !operation) return std::nullopt;
  return AclEntry{restype == RD_KAFKA_RESOURCE_TOPIC ? AclResource::kTopic : AclResource::kGroup,
                  rd_kafka_AclBinding_name(binding),
                  rd_kafka_AclBinding_resource_pattern_type(binding) == RD_KAFKA_RESOURCE_PATTERN_PREFIXED ? AclPattern::kPrefixed
                                                                                                           : AclPattern::kLiteral,
                  rd_kafka_AclBinding_principal(binding), *operation};
}

// The filter of every entry of `principal` on one resource type.
AclBindingPtr principal_filter(rd_kafka_ResourceType_t restype, const std::string& principal) {
  char error_text[512];
  return AclBindingPtr(rd_kafka_AclBindingFilter_new(restype, nullptr, RD_KAFKA_RESOURCE_PATTERN_ANY, principal.c_str(), nullptr,
                                                     RD_KAFKA_ACL_OPERATION_ANY, RD_KAFKA_ACL_PERMISSION_TYPE_ANY, error_text,
                                                     sizeof error_text));
}

}  // namespace

Status create_acls(const Properties& properties, const std::vector<AclEntry>& entries, std::chrono::milliseconds timeout) {
  if (entries.empty()) return Status::success();
  std::vector<AclBindingPtr> owned;
  std::vector<rd_kafka_AclBinding_t*> bindings;
  char error_text[512];
  for (const auto& entry : entries) {
    if (entry.resource != AclResource::kTopic && entry.resource != AclResource::kGroup) {
      return make_error(
          "{}: librdkafka 2.0.2's Admin API can write ACLs on topics and groups only; write this one with kafka-acls",
          describe_acl(entry));
    }
    owned.emplace_back(rd_kafka_AclBinding_new(
        entry.resource == AclResource::kTopic ? RD_KAFKA_RESOURCE_TOPIC : RD_KAFKA_RESOURCE_GROUP, entry.name.c_str(),
        entry.pattern == AclPattern::kLiteral ? RD_KAFKA_RESOURCE_PATTERN_LITERAL : RD_KAFKA_RESOURCE_PATTERN_PREFIXED,
        entry.principal.c_str(), "*", to_rd(entry.operation), RD_KAFKA_ACL_PERMISSION_TYPE_ALLOW, error_text, sizeof error_text));
    if (!owned.back()) return make_error("{}: {}", describe_acl(entry), error_text);
    bindings.push_back(owned.back().get());
  }
  auto producer = make_producer(properties, "");
  if (!producer) return producer.error();
  rd_kafka_t* client = (*producer)->c_ptr();
  auto event = admin_call(
      client, RD_KAFKA_ADMIN_OP_CREATEACLS, timeout,
      [&](rd_kafka_AdminOptions_t* options, rd_kafka_queue_t* queue) {
        rd_kafka_CreateAcls(client, bindings.data(), bindings.size(), options, queue);
      },
      "create ACLs");
  if (!event) return event.error();
  std::size_t count = 0;
  const auto* results = rd_kafka_CreateAcls_result_acls(rd_kafka_event_CreateAcls_result(event->get()), &count);
  std::string problems;
  for (std::size_t index = 0; index < count && index < entries.size(); ++index) {
    if (const auto* error = rd_kafka_acl_result_error(results[index]); error != nullptr) {
      problems +=
          fmt::format(" {}: {} ({});", describe_acl(entries[index]), rd_kafka_error_string(error), rd_kafka_error_name(error));
    }
  }
  if (!problems.empty()) return make_error("create ACLs:{}", problems);
  return Status::success();
}

namespace {

// DescribeAcls or DeleteAcls of every topic and group entry of `principal`.
Result<std::vector<AclEntry>> acls_of(const Properties& properties, const std::string& principal, bool remove,
                                      std::chrono::milliseconds timeout) {
  auto producer = make_producer(properties, "");
  if (!producer) return producer.error();
  rd_kafka_t* client = (*producer)->c_ptr();
  std::vector<AclEntry> found;
  for (const auto restype : {RD_KAFKA_RESOURCE_TOPIC, RD_KAFKA_RESOURCE_GROUP}) {
    auto filter = principal_filter(restype, principal);
    if (!filter) return make_error("ACL filter for {}: refused by librdkafka", principal);
    rd_kafka_AclBindingFilter_t* filters[] = {filter.get()};
    auto event = admin_call(
        client, remove ? RD_KAFKA_ADMIN_OP_DELETEACLS : RD_KAFKA_ADMIN_OP_DESCRIBEACLS, timeout,
        [&](rd_kafka_AdminOptions_t* options, rd_kafka_queue_t* queue) {
          if (remove) {
            rd_kafka_DeleteAcls(client, filters, 1, options, queue);
          } else {
            rd_kafka_DescribeAcls(client, filter.get(), options, queue);
          }
        },
        remove ? "delete ACLs" : "describe ACLs");
    if (!event) return event.error();
    std::size_t count = 0;
    if (remove) {
      const auto* responses = rd_kafka_DeleteAcls_result_responses(rd_kafka_event_DeleteAcls_result(event->get()), &count);
      for (std::size_t index = 0; index < count; ++index) {
        if (const auto* error = rd_kafka_DeleteAcls_result_response_error(responses[index]); error != nullptr) {
          return make_error("delete the ACLs of {}: {} ({})", principal, rd_kafka_error_string(error),
                            rd_kafka_error_name(error));
        }
        std::size_t matching = 0;
        const auto* bindings = rd_kafka_DeleteAcls_result_response_matching_acls(responses[index], &matching);
        for (std::size_t at = 0; at < matching; ++at) {
          if (auto entry = entry_of(bindings[at])) found.push_back(std::move(*entry));
        }
      }
    } else {
      const auto* bindings = rd_kafka_DescribeAcls_result_acls(rd_kafka_event_DescribeAcls_result(event->get()), &count);
      for (std::size_t index = 0; index < count; ++index) {
        if (auto entry = entry_of(bindings[index])) found.push_back(std::move(*entry));
      }
    }
  }
  return found;
}

}  // namespace

Result<std::vector<AclEntry>> describe_acls_of(const Properties& properties, const std::string& principal,
                                               std::chrono::milliseconds timeout) {
  return acls_of(properties, principal, false, timeout);
}

Result<std::vector<AclEntry>> delete_acls_of(const Properties& properties, const std::string& principal,
                                             std::chrono::milliseconds timeout) {
  return acls_of(properties, principal, true, timeout);
}

Result<std::vector<std::string>> delete_topics(const Properties& properties, const std::vector<std::string>& topics,
                                               std::chrono::milliseconds timeout) {
  auto producer = make_producer(properties, "");
  if (!producer) return producer.error();
  auto existing = partition_counts(**producer, timeout);
  if (!existing) return existing.error();
  std::vector<std::string> wanted;
  std::vector<rd_kafka_DeleteTopic_t*> requests;
  for (const auto& topic : topics) {
    if (!existing->contains(topic)) continue;
    wanted.push_back(topic);
    requests.push_back(rd_kafka_DeleteTopic_new(topic.c_str()));
  }
  if (requests.empty()) return wanted;
  rd_kafka_t* client = (*producer)->c_ptr();
  auto event = admin_call(
      client, RD_KAFKA_ADMIN_OP_DELETETOPICS, timeout,
      [&](rd_kafka_AdminOptions_t* options, rd_kafka_queue_t* queue) {
        rd_kafka_DeleteTopics(client, requests.data(), requests.size(), options, queue);
      },
      "delete topics");
  rd_kafka_DeleteTopic_destroy_array(requests.data(), requests.size());
  if (!event) return event.error();
  std::size_t count = 0;
  const auto* results = rd_kafka_DeleteTopics_result_topics(rd_kafka_event_DeleteTopics_result(event->get()), &count);
  std::string problems;
  for (std::size_t index = 0; index < count; ++index) {
    const auto code = rd_kafka_topic_result_error(results[index]);
    if (code != RD_KAFKA_RESP_ERR_NO_ERROR && code != RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART) {
      problems += fmt::format(" {}: {};", rd_kafka_topic_result_name(results[index]), rd_kafka_err2str(code));
    }
  }
  if (!problems.empty()) return make_error("delete topics:{}", problems);
  return wanted;
}

}  // namespace kcron::kafka
