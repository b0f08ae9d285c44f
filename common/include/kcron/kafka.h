// Thin librdkafka adapters shared by all programs: configuration from kcron's Config, producers
// and consumers with kcron's safety defaults (docs/architecture.md#librdkafka-202-traps), admin calls for topics, and the
// conversion of librdkafka errors into kcron Errors. Nothing above this layer sees RdKafka types
// except the programs' own Kafka loops.
#pragma once

#include <librdkafka/rdkafkacpp.h>

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "kcron/config.h"
#include "kcron/kafka_acls.h"
#include "kcron/metrics.h"
#include "kcron/out_record.h"
#include "kcron/result.h"
#include "kcron/topic_drift.h"
#include "kcron/topics.h"

namespace kcron::kafka {

using Properties = std::map<std::string, std::string>;

// Owns a list of TopicPartition (librdkafka hands out and takes raw pointers).
struct PartitionList {
  std::vector<RdKafka::TopicPartition*> items;
  PartitionList() = default;
  PartitionList(const PartitionList&) = delete;
  PartitionList& operator=(const PartitionList&) = delete;
  ~PartitionList() { RdKafka::TopicPartition::destroy(items); }
};

// bootstrap.servers, client.id and every kafka.* pass-through key of the config.
Properties client_properties(const Config& config, const std::string& client_id);

// Producer defaults: idempotent, acks=all, murmur2_random partitioner (Java-compatible).
// A non-empty transactional_id makes it transactional.
Result<std::unique_ptr<RdKafka::Producer>> make_producer(Properties properties, const std::string& transactional_id,
                                                         RdKafka::DeliveryReportCb* delivery = nullptr);

// Consumer defaults: no auto-commit, earliest, read_committed, no auto topic creation, eager
// round-robin assignment. `rebalance` may be null.
Result<std::unique_ptr<RdKafka::KafkaConsumer>> make_consumer(Properties properties, RdKafka::RebalanceCb* rebalance = nullptr);

// init_transactions in short steps, so SIGTERM during start-up is honoured; retries retriable
// errors (coordinator not ready yet) until `timeout`.
Status init_transactions(RdKafka::Producer& producer, std::chrono::milliseconds timeout);

// A transactional producer (transaction.timeout.ms set) whose init_transactions fenced any earlier
// producer of `transactional_id` and resolved its open transaction.
Result<std::unique_ptr<RdKafka::Producer>> make_transactional_producer(Properties properties, const std::string& transactional_id,
                                                                       std::chrono::milliseconds transaction_timeout,
                                                                       RdKafka::DeliveryReportCb* delivery = nullptr);

// A consumer of `group_id` as the static member `instance_id` (group.instance.id), subscribed to
// `topics`. `extra` properties win over the client's.
Result<std::unique_ptr<RdKafka::KafkaConsumer>> make_static_member(Properties client, const Properties& extra,
                                                                   const std::string& group_id, const std::string& instance_id,
                                                                   const std::vector<std::string>& topics,
                                                                   RdKafka::RebalanceCb* rebalance);

// Calls `attempt` until it succeeds, backing off from 0.5 s doubling to 5 s, for at most
// `timeout` or until a stop signal; then returns its last failure. For a transactional producer
// recreated while its coordinator may still be away (a broker restart, a network partition).
Status retry_with_backoff(const std::function<Status()>& attempt, std::chrono::milliseconds timeout, std::string_view what);

// The fatal error a client raised (librdkafka's underlying code and text), e.g. a consumer whose
// static group membership was fenced: "FENCED_INSTANCE_ID: ...". Empty if none was raised.
std::string fatal_reason(RdKafka::Handle& handle);

// Destroys a consumer without the close protocol (no leave, no commit, no rebalance callback):
// for a consumer being replaced after a fence or a fault, whose owner already let go of its
// partitions. close() could block for minutes on requests to a broker that is gone.
void discard_consumer(std::unique_ptr<RdKafka::KafkaConsumer>& consumer);

// Produces one record, retrying (bounded) while the local queue is full. On failure, the code goes
// to `failed_code` when given.
Status produce(RdKafka::Producer& producer, const OutRecord& record, void* opaque = nullptr,
               RdKafka::ErrorCode* failed_code = nullptr);

// Errors that refuse a record for what it is (its size, its form, its destination), as opposed to
// the cluster's state: producing it again cannot succeed. A batch that aborts on one is bisected.
bool record_refused(RdKafka::ErrorCode code);

std::string header_value(RdKafka::Message& message, std::string_view name);

// Partition count of each topic that exists (missing topics are absent from the map).
Result<std::map<std::string, std::int32_t>> partition_counts(RdKafka::Handle& handle, std::chrono::milliseconds timeout);

// Checks every topic exists with its expected partition count (0: any count).
Status check_topics(RdKafka::Handle& handle, const std::vector<TopicSpec>& topics, std::chrono::milliseconds timeout);

// Creates the topics that do not exist yet (librdkafka Admin API); existing ones are left alone.
// Returns the names created.
Result<std::vector<std::string>> create_topics(const Properties& properties, const std::vector<TopicSpec>& topics,
                                               int replication_factor, std::chrono::milliseconds timeout);

// The config of each of `topics` that exists (DescribeConfigs; missing topics are left out).
// Needs the DescribeConfigs permission on the topics.
Result<std::vector<DescribedTopicConfig>> describe_topic_configs(RdKafka::Handle& handle, const std::vector<std::string>& topics,
                                                                 std::chrono::milliseconds timeout);

// Every key of an existing topic of `specs` whose value is not its spec's (config_drift), in
// spec order; topics that do not exist have no drift.
Result<std::vector<ConfigDrift>> topic_config_drift(RdKafka::Handle& handle, const std::vector<TopicSpec>& specs,
                                                    std::chrono::milliseconds timeout);

// Replaces every dynamic override of `topic` with `overrides` (a legacy AlterConfigs): a key not
// in `overrides` falls back to the broker's value. Needs the AlterConfigs permission on the topic.
Status set_topic_overrides(RdKafka::Handle& handle, const std::string& topic, const std::map<std::string, std::string>& overrides,
                           std::chrono::milliseconds timeout);

// Sets `wanted` on an existing topic and keeps every other override it has, those kcron does not
// know included: set_topic_overrides (librdkafka 2.0.2 has no incremental AlterConfigs) of the
// overlay (overlay_overrides) of its overrides as described just before. Needs the DescribeConfigs
// and AlterConfigs permissions on the topic. An override set by someone else between the describe
// and the alter is lost.
Status align_topic_configs(RdKafka::Handle& handle, const std::string& topic, const ConfigEntries& wanted,
                           std::chrono::milliseconds timeout);

// Low and high watermark of a partition, retrying transient errors (leader moves, a topic just
// created) for up to `timeout`.
Result<std::pair<std::int64_t, std::int64_t>> watermarks(RdKafka::Handle& handle, const std::string& topic,
                                                         std::int32_t partition, std::chrono::milliseconds timeout);

// Waits until every partition of the topics has a leader (after creation), up to `timeout`.
Status wait_for_leaders(RdKafka::Handle& handle, const std::vector<std::string>& topics, std::chrono::milliseconds timeout);

// Replays one partition (a changelog, a compacted table) with read_committed, from the offset
// `choose_start(low, high)` picks, to its end. The end is the high watermark, not the last stable
// offset: an open transaction of a dead or fenced writer is waited out (it aborts within its
// transaction.timeout.ms) so no committed record is missed. Returns the next offset after the end.
Result<std::int64_t> replay_partition(const Properties& client, const std::string& group_id, const std::string& topic,
                                      std::int32_t partition,
                                      const std::function<std::int64_t(std::int64_t low, std::int64_t high)>& choose_start,
                                      const std::function<Status(RdKafka::Message& record)>& on_record,
                                      std::chrono::milliseconds timeout);

// The same for several partitions of one topic at once, with one reader: the reader's start-up
// and the wait at each partition's end are paid once, not per partition (a dispatcher taking
// over twelve partitions restores them together). Records arrive in order within a partition,
// interleaved across partitions. Returns the next offset after the end of each partition;
// `transaction_wait`, when given, gets the longest time a partition sat at an open transaction of
// another writer (read_committed stops there until it commits or aborts).
Result<std::map<std::int32_t, std::int64_t>> replay_partitions(
    const Properties& client, const std::string& group_id, const std::string& topic, const std::vector<std::int32_t>& partitions,
    const std::function<std::int64_t(std::int32_t partition, std::int64_t low, std::int64_t high)>& choose_start,
    const std::function<Status(RdKafka::Message& record)>& on_record, std::chrono::milliseconds timeout,
    std::chrono::milliseconds* transaction_wait = nullptr);

// Records not yet consumed on the consumer's assigned partitions: high watermark minus position,
// summed. Non-blocking: watermarks are librdkafka's cached values from the latest fetch (a paused
// partition keeps its last known ones). Partitions without a position yet are left out. On a
// transactional topic the commit marker after the last record counts as 1 until a record follows.
std::int64_t consumer_lag(RdKafka::KafkaConsumer& consumer);

// Samples consumer_lag() into a gauge (kcron_consumer_lag_records{component=...}) at most once
// per interval; called from a program's loop.
class LagSampler {
 public:
  LagSampler(Metrics& metrics, const std::string& component, std::chrono::milliseconds interval = std::chrono::seconds(1));
  void sample(RdKafka::KafkaConsumer& consumer);

 private:
  Gauge& gauge_;
  std::chrono::milliseconds interval_;
  std::chrono::steady_clock::time_point next_{};
};

// ACLs through the Admin API (kafka_acls.h has what kcron writes). librdkafka 2.0.2 knows only the
// topic and group resource types: an entry on a transactional id or the cluster is refused with
// an error saying so (its caller prints the kafka-acls command instead). A broker without an
// authorizer answers with SECURITY_DISABLED.
Status create_acls(const Properties& properties, const std::vector<AclEntry>& entries, std::chrono::milliseconds timeout);
// The topic and group entries of `principal` ("User:NAME"); delete_acls_of removes them and
// returns what it removed.
Result<std::vector<AclEntry>> describe_acls_of(const Properties& properties, const std::string& principal,
                                               std::chrono::milliseconds timeout);
Result<std::vector<AclEntry>> delete_acls_of(const Properties& properties, const std::string& principal,
                                             std::chrono::milliseconds timeout);

// Deletes those of `topics` that exist; returns the names it deleted.
Result<std::vector<std::string>> delete_topics(const Properties& properties, const std::vector<std::string>& topics,
                                               std::chrono::milliseconds timeout);

Error to_error(const RdKafka::Error& error, std::string_view what);
Error to_error(RdKafka::ErrorCode code, std::string_view what);

// Dates a record: its timestamp in epoch ms, or now when the broker gave none.
std::int64_t record_timestamp_ms(const RdKafka::Message& message, std::int64_t now_ms);

}  // namespace kcron::kafka
