#include "kcron/transaction.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstdint>
#include <limits>
#include <memory>

#include "kcron/fault_points.h"
#include "kcron/kafka.h"

namespace kcron::kafka {
namespace {

using Clock = std::chrono::steady_clock;
using ErrorPtr = std::unique_ptr<RdKafka::Error>;

int millis(std::chrono::milliseconds timeout) {
  return static_cast<int>(std::clamp<std::int64_t>(timeout.count(), 0, std::numeric_limits<int>::max()));
}

fault::Action hit(const TransactionOptions& options, std::string_view step) {
  if (options.program.empty() || !fault::armed()) return fault::Action::kNone;
  return fault::hit(fmt::format("{}.{}", options.program, step));
}

TransactionResult failed(TransactionOutcome outcome, std::string reason) {
  return TransactionResult{outcome, std::move(reason), false, std::nullopt};
}

// Aborts the open transaction. `refused` and `refused_record` say what is known of a refused record
// so far; the delivery reports (served by the flush after the abort) may add to it.
TransactionResult abort(RdKafka::Producer& producer, const TransactionOptions& options, std::string reason, bool refused,
                        std::optional<std::size_t> refused_record) {
  spdlog::warn("event=transaction_abort reason=\"{}\"", reason);
  if (ErrorPtr error{producer.abort_transaction(millis(options.timeout))}) {
    return failed(error->is_fatal() ? TransactionOutcome::kFenced : TransactionOutcome::kUnknown,
                  fmt::format("abort_transaction failed ({}) after: {}", error->str(), reason));
  }
  // The abort purged what was still queued: serve those reports now, or they would read as
  // failures of the next transaction.
  producer.flush(millis(options.timeout));
  if (options.deliveries != nullptr) {
    if (options.deliveries->refused()) {
      if (refused) {
        refused_record.reset();  // refused locally and by the broker: more than one, none named alone
      } else {
        reason = options.deliveries->reason();
        refused_record = options.deliveries->refused_record();
      }
      refused = true;
    }
    options.deliveries->clear();
  }
  return TransactionResult{TransactionOutcome::kAborted, std::move(reason), refused, refused ? refused_record : std::nullopt};
}

// Waits for every delivery report, or for the first failure (the transaction can only abort
// then). Reports of the records queued behind a failure are purge reports that may come before
// the failure's own: collect them briefly, so the refusal that caused it is seen.
void await_deliveries(RdKafka::Producer& producer, const TransactionOptions& options) {
  const auto& deliveries = *options.deliveries;
  const auto deadline = Clock::now() + options.timeout;
  while (producer.outq_len() > 0 && !deliveries.failed() && Clock::now() < deadline) producer.flush(50);
  if (!deliveries.failed()) return;
  const auto grace = std::min(deadline, Clock::now() + std::chrono::seconds(1));
  while (producer.outq_len() > 0 && !deliveries.refused() && Clock::now() < grace) producer.flush(20);
}

// Calls `call` again while it fails with an error that is only retriable (not fatal, not
// requiring an abort), at most options.retries more times.
ErrorPtr with_retries(const TransactionOptions& options, std::string_view what, const std::function<RdKafka::Error*()>& call) {
  ErrorPtr error{call()};
  for (int attempt = 0;
       error && error->is_retriable() && !error->is_fatal() && !error->txn_requires_abort() && attempt < options.retries;
       ++attempt) {
    spdlog::warn("event=transaction_retry call={} attempt={} error=\"{}\"", what, attempt + 1, error->str());
    error.reset(call());
  }
  return error;
}

}  // namespace

LoopCounters::LoopCounters(Metrics& metrics, std::string_view component)
    : committed(metrics.counter(fmt::format("kcron_transactions_committed_total{{component=\"{}\"}}", component),
                                "Kafka transactions committed")),
      aborted(metrics.counter(fmt::format("kcron_transactions_aborted_total{{component=\"{}\"}}", component),
                              "Kafka transactions aborted (the batch is rewound and tried again)")),
      recoveries(metrics.counter(fmt::format("kcron_recoveries_total{{component=\"{}\"}}", component),
                                 "new producer and state rebuilt from Kafka after a fence or an unknown commit outcome")),
      rejoins(metrics.counter(fmt::format("kcron_consumer_rejoins_total{{component=\"{}\"}}", component),
                              "consumer recreated after its group membership was fenced or an assignment failed")),
      rebalances(metrics.counter(fmt::format("kcron_rebalances_total{{component=\"{}\"}}", component),
                                 "partition assignments received")) {}

void LoopCounters::count(const TransactionResult& result) {
  if (result.outcome == TransactionOutcome::kCommitted) committed.inc();
  if (result.outcome == TransactionOutcome::kAborted) aborted.inc();
}

std::string_view outcome_name(TransactionOutcome outcome) {
  switch (outcome) {
    case TransactionOutcome::kCommitted:
      return "committed";
    case TransactionOutcome::kAborted:
      return "aborted";
    case TransactionOutcome::kFenced:
      return "fenced";
    case TransactionOutcome::kUnknown:
      return "unknown";
  }
  return "?";
}

DeliveryReports::DeliveryReports(std::function<void(RdKafka::Message&)> on_delivered) : on_delivered_(std::move(on_delivered)) {}

void DeliveryReports::dr_cb(RdKafka::Message& message) {
  if (message.err() == RdKafka::ERR_NO_ERROR) {
    if (on_delivered_) on_delivered_(message);
    return;
  }
  auto error = fmt::format("delivery to {} failed: {}", message.topic_name(), message.errstr());
  if (record_refused(message.err())) {
    if (refused_count_++ == 0) {
      first_refusal_ = error;
      const auto opaque = reinterpret_cast<std::uintptr_t>(message.msg_opaque());
      if (opaque > 0) first_refused_index_ = static_cast<std::size_t>(opaque - 1);
    }
  }
  // A purge report only says the transaction failed: the failure that made it fail says why.
  const bool purged = message.err() == RdKafka::ERR__PURGE_QUEUE || message.err() == RdKafka::ERR__PURGE_INFLIGHT;
  if (first_failure_.empty() || (first_failure_purged_ && !purged)) {
    first_failure_ = std::move(error);
    first_failure_purged_ = purged;
  }
}

void DeliveryReports::clear() {
  first_failure_.clear();
  first_failure_purged_ = false;
  first_refusal_.clear();
  refused_count_ = 0;
  first_refused_index_.reset();
}

std::optional<std::size_t> DeliveryReports::refused_record() const {
  return refused_count_ == 1 ? first_refused_index_ : std::nullopt;
}

TransactionResult commit_transaction(RdKafka::Producer& producer, RdKafka::KafkaConsumer& consumer,
                                     const std::vector<OutRecord>& records, const std::vector<RdKafka::TopicPartition*>& offsets,
                                     const TransactionOptions& options) {
  const int timeout = millis(options.timeout);
  if (ErrorPtr error{producer.begin_transaction()}) {
    return failed(TransactionOutcome::kFenced, fmt::format("begin_transaction: {}", error->str()));
  }
  if (options.deliveries != nullptr) options.deliveries->clear();
  for (std::size_t index = 0; index < records.size(); ++index) {
    RdKafka::ErrorCode code = RdKafka::ERR_NO_ERROR;
    // The opaque (index + 1) lets a delivery report name its record.
    if (auto status = produce(producer, records[index], reinterpret_cast<void*>(index + 1), &code); !status) {
      const bool refused = record_refused(code);
      return abort(producer, options, status.error().message(), refused, refused ? std::optional(index) : std::nullopt);
    }
    producer.poll(0);
  }
  if (options.deliveries != nullptr) {
    await_deliveries(producer, options);
    if (options.deliveries->failed()) return abort(producer, options, options.deliveries->reason(), false, std::nullopt);
  }
  (void)hit(options, "after_produce");

  std::unique_ptr<RdKafka::ConsumerGroupMetadata> group(consumer.groupMetadata());
  ErrorPtr error = with_retries(options, "send_offsets_to_transaction",
                                [&] { return producer.send_offsets_to_transaction(offsets, group.get(), timeout); });
  if (error) {
    const auto reason = fmt::format("send_offsets_to_transaction: {}", error->str());
    if (error->is_fatal()) return failed(TransactionOutcome::kFenced, reason);
    // Nothing was committed. Without awaited deliveries, a record the broker refused comes back
    // here (or from the commit) with the produce error's code.
    return abort(producer, options, reason, record_refused(error->code()), std::nullopt);
  }
  if (hit(options, "after_offsets") == fault::Action::kUnknown) {
    return failed(TransactionOutcome::kUnknown, "injected: commit outcome unknown (not sent)");
  }

  error = with_retries(options, "commit_transaction", [&] { return producer.commit_transaction(timeout); });
  if (error) {
    const auto reason = fmt::format("commit_transaction: {}", error->str());
    if (error->is_fatal()) return failed(TransactionOutcome::kFenced, reason);
    if (error->txn_requires_abort()) return abort(producer, options, reason, record_refused(error->code()), std::nullopt);
    return failed(TransactionOutcome::kUnknown, reason);  // e.g. timed out: it may have committed
  }
  if (hit(options, "after_commit") == fault::Action::kUnknown) {
    return failed(TransactionOutcome::kUnknown, "injected: commit outcome unknown (committed)");
  }
  return TransactionResult{};
}

}  // namespace kcron::kafka
