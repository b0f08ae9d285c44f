#include "kafka/job_writer.h"

#include <condition_variable>
#include <mutex>
#include <optional>

namespace kcron::api {

// One request's wait for its record's delivery report.
struct Pending {
  std::mutex mutex;
  std::condition_variable done;
  std::optional<Result<WritePosition>> outcome;
};

class JobWriter::Reports : public RdKafka::DeliveryReportCb {
 public:
  void dr_cb(RdKafka::Message& message) override {
    auto* pending = static_cast<Pending*>(message.msg_opaque());
    if (pending == nullptr) return;
    Result<WritePosition> outcome =
        message.err() == RdKafka::ERR_NO_ERROR
            ? Result<WritePosition>(WritePosition{message.topic_name(), message.partition(), message.offset()})
            : Result<WritePosition>(make_error("Kafka refused the record: {}", message.errstr()));
    std::lock_guard lock(pending->mutex);
    pending->outcome = std::move(outcome);
    pending->done.notify_all();
  }
};

Result<std::unique_ptr<JobWriter>> JobWriter::create(kafka::Properties client, std::chrono::milliseconds ack_timeout) {
  std::unique_ptr<JobWriter> writer(new JobWriter());
  writer->reports_ = std::make_unique<Reports>();
  writer->ack_timeout_ = ack_timeout;
  client.emplace("linger.ms", "2");
  client["message.timeout.ms"] = std::to_string(ack_timeout.count());
  auto producer = kafka::make_producer(std::move(client), "", writer->reports_.get());
  if (!producer) return producer.error();
  writer->producer_ = std::move(*producer);
  writer->poller_ = std::thread([raw = writer.get()] {
    while (!raw->stopping_.load()) raw->producer_->poll(50);
  });
  return writer;
}

JobWriter::~JobWriter() {
  if (producer_) producer_->flush(5000);
  stopping_ = true;
  if (poller_.joinable()) poller_.join();
}

Result<WritePosition> JobWriter::write(const OutRecord& record) {
  auto written = write_all({record});
  if (!written) return written.error();
  return written->front();
}

Result<std::vector<WritePosition>> JobWriter::write_all(const std::vector<OutRecord>& records) {
  std::vector<Pending> pending(records.size());
  std::size_t produced = 0;
  std::optional<Error> refused;
  for (; produced < records.size(); ++produced) {
    RdKafka::ErrorCode code = RdKafka::ERR_NO_ERROR;
    if (auto status = kafka::produce(*producer_, records[produced], &pending[produced], &code); !status) {
      refused = status.error();
      break;
    }
  }
  // librdkafka reports every produced record within message.timeout.ms (the ack timeout),
  // delivered or not; the wait must not end before its report, which writes into `pending`.
  std::vector<WritePosition> positions;
  for (std::size_t index = 0; index < produced; ++index) {
    std::unique_lock lock(pending[index].mutex);
    pending[index].done.wait(lock, [&] { return pending[index].outcome.has_value(); });
    if (!*pending[index].outcome && !refused) refused = pending[index].outcome->error();
    if (*pending[index].outcome) positions.push_back(pending[index].outcome->value());
  }
  if (refused) return *refused;
  return positions;
}

void JobWriter::flush(std::chrono::milliseconds timeout) {
  producer_->flush(static_cast<int>(timeout.count()));
}

}  // namespace kcron::api
