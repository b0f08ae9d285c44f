// kcron-api's writes: each request's records produced with the idempotent producer, answered only
// once the broker acknowledged them. A background thread serves delivery reports; many request
// threads wait on their own records at once, so their records share batches on the wire.
#pragma once

#include <librdkafka/rdkafkacpp.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "kcron/kafka.h"
#include "kcron/out_record.h"
#include "kcron/result.h"

namespace kcron::api {

// Where a record landed: a read carrying it waits until the view covers it.
struct WritePosition {
  std::string topic;
  std::int32_t partition = -1;
  std::int64_t offset = -1;
};

class JobWriter {
 public:
  static Result<std::unique_ptr<JobWriter>> create(kafka::Properties client, std::chrono::milliseconds ack_timeout);
  ~JobWriter();
  JobWriter(const JobWriter&) = delete;
  JobWriter& operator=(const JobWriter&) = delete;

  // Produces the record and waits for its acknowledgement. Thread-safe.
  Result<WritePosition> write(const OutRecord& record);
  // Produces every record, then waits for all of them: one position per record, or the first
  // refusal (records before it may have been written: each is idempotent to send again).
  Result<std::vector<WritePosition>> write_all(const std::vector<OutRecord>& records);
  // Waits up to `timeout` for every record in flight (SIGTERM drain).
  void flush(std::chrono::milliseconds timeout);

 private:
  class Reports;
  JobWriter() = default;
  std::unique_ptr<Reports> reports_;
  std::unique_ptr<RdKafka::Producer> producer_;
  std::chrono::milliseconds ack_timeout_{15000};
  std::atomic<bool> stopping_{false};
  std::thread poller_;
};

}  // namespace kcron::api
