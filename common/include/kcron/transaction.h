// The one transaction path of the three programs: begin, produce, send the consumed offsets,
// commit, with librdkafka's errors sorted in one order into four outcomes the caller acts on.
// Runs on the thread that owns the producer; it polls and flushes the producer itself, so a
// delivery report callback installed on it runs on that thread too.
#pragma once

#include <librdkafka/rdkafkacpp.h>

#include <chrono>
#include <cstddef>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "kcron/metrics.h"
#include "kcron/out_record.h"

namespace kcron::kafka {

enum class TransactionOutcome {
  kCommitted,  // the records and the offsets are durable
  kAborted,    // nothing committed and the producer is usable: rewind to the committed offsets, try again
  kFenced,     // nothing committed; the producer is fenced or failed fatally: make a new one
  kUnknown,    // it may have committed: a new producer (its init_transactions resolves the open
               // transaction), then state rebuilt from what Kafka holds
};

std::string_view outcome_name(TransactionOutcome outcome);

struct TransactionResult {
  TransactionOutcome outcome = TransactionOutcome::kCommitted;
  std::string reason;  // why it did not commit, for logs; empty when committed
  // Only with kAborted: the broker (or the client, before sending) refused a record for what it
  // is (kafka::record_refused), so producing the same records again cannot succeed.
  bool refused = false;
  // With `refused`: the index in `records` of the refused record, when it is the only one refused
  // (the broker refuses a whole producer batch, so a neighbour of the culprit is refused too).
  std::optional<std::size_t> refused_record;
};

// The delivery reports of one transaction, to install as the producer's dr_cb (make_producer's
// `delivery`). commit_transaction clears it when it begins and after it aborts, and passes each
// record's index + 1 as the opaque so a report names its record. Called on the thread that polls
// the producer; not thread safe.
class DeliveryReports final : public RdKafka::DeliveryReportCb {
 public:
  // `on_delivered` sees every successful delivery (e.g. the offset a changelog record got).
  explicit DeliveryReports(std::function<void(RdKafka::Message&)> on_delivered = {});

  void dr_cb(RdKafka::Message& message) override;
  void clear();

  bool failed() const { return !first_failure_.empty(); }
  bool refused() const { return refused_count_ > 0; }
  // The first refusal when a record was refused for what it is, else the first failure (one
  // that is not a purge report, if any).
  const std::string& reason() const { return refused() ? first_refusal_ : first_failure_; }
  // The refused record's index, when exactly one was refused.
  std::optional<std::size_t> refused_record() const;

 private:
  std::function<void(RdKafka::Message&)> on_delivered_;
  std::string first_failure_;
  bool first_failure_purged_ = false;
  std::string first_refusal_;
  std::size_t refused_count_ = 0;
  std::optional<std::size_t> first_refused_index_;
};

struct TransactionOptions {
  // Of each librdkafka call (and of the wait for delivery reports). A transaction can take
  // several: a retried call takes another, an abort and its flush another each.
  std::chrono::milliseconds timeout{10000};
  // Prefix of the test-only fault points "<program>.after_produce", ".after_offsets" and
  // ".after_commit" (kcron/fault_points.h); empty: none.
  std::string_view program;
  // When set (and installed as the producer's dr_cb), every delivery report is awaited before the
  // offsets are sent, and a failed delivery aborts the transaction.
  DeliveryReports* deliveries = nullptr;
  int retries = 3;  // further attempts of a send_offsets or commit that failed with a retriable error
};

// One transaction: begin, produce `records` (each record's index + 1 as its opaque), await the
// delivery reports when `options.deliveries` is set, send `offsets` with the consumer's group
// metadata (they are what fences a zombie: pass them always), commit. The caller keeps ownership
// of `offsets`.
//
// librdkafka's errors are sorted in one order, the first rule that applies deciding:
//   begin_transaction fails                     -> kFenced (the producer cannot start one)
//   produce fails locally (e.g. a record over message.max.bytes), or a delivery fails
//                                               -> abort; `refused` when kafka::record_refused
//   send_offsets or commit: error is_fatal()    -> kFenced (fenced, or the producer failed fatally)
//   error is_retriable() (and neither fatal nor abortable)
//                                               -> the same call again, up to `retries` more times
//   send_offsets: any other error               -> abort (commit was never called: nothing committed)
//   commit: error txn_requires_abort()          -> abort
//   commit: any other error                     -> kUnknown (a commit that timed out may have committed)
// An abort that succeeds gives kAborted (`refused` when a produce, a delivery or, without awaited
// deliveries, the produce error that send_offsets or commit reports refuses a record; a record
// refused both locally and by the broker names none alone); its purged delivery reports are
// served before it returns. An abort
// that fails gives kFenced when its error is fatal, else kUnknown.
//
// Each librdkafka call may take `timeout`, so a transaction that fails slowly can take several.
// The fault points stay where they were in the loops: after_produce once every record is produced
// (and, when awaited, delivered); after_offsets after the offsets were sent, where `unknown` returns
// kUnknown without committing (a commit that never reached the coordinator); after_commit, where
// `unknown` returns kUnknown for a commit that succeeded (an answer that was lost).
[[nodiscard]] TransactionResult commit_transaction(RdKafka::Producer& producer, RdKafka::KafkaConsumer& consumer,
                                                   const std::vector<OutRecord>& records,
                                                   const std::vector<RdKafka::TopicPartition*>& offsets,
                                                   const TransactionOptions& options);

// The words and counters every transactional loop shares, labelled {component="..."}:
//   rewind   after an abort: nothing of the batch committed; what it decided is dropped and read
//            again from the committed offsets (the worker, whose consumed records are running
//            jobs, keeps its finished outcomes for the next transaction)
//            (kcron_transactions_aborted_total);
//   recover  after a fence or an unknown outcome: a new producer (its init_transactions resolves
//            the open transaction), state rebuilt from what Kafka holds (kcron_recoveries_total);
//   rejoin   after the consumer's group membership was fenced or an assignment failed: a new
//            consumer with the same group.instance.id (kcron_consumer_rejoins_total).
// Logged as event=transaction_abort, event=recover and event=rejoin.
struct LoopCounters {
  LoopCounters(Metrics& metrics, std::string_view component);
  // Counts a transaction's outcome: committed or aborted (a fenced or unknown one is counted by
  // the recovery that follows).
  void count(const TransactionResult& result);

  Counter& committed;
  Counter& aborted;
  Counter& recoveries;
  Counter& rejoins;
  Counter& rebalances;  // partition assignments received
};

}  // namespace kcron::kafka
