// `kcron status`, `kcron dlq list|replay` and `kcron workers`: read kcron's output topics with
// read_committed up to their end and print what an operator asks about a job, the dead letters
// or the workers. Each command reads only the partition a key lives on when it has a key.
// read_to_end is shared with `kcron schedule lint` and `kcron tenant`, read_since with `kcron audit`.
#pragma once

#include <CLI/CLI.hpp>
#include <cstdint>
#include <functional>
#include <iosfwd>
#include <string>
#include <vector>

#include "api_client.h"
#include "kcron/clock.h"
#include "kcron/config.h"
#include "kcron/result.h"

namespace kcron::cli {

struct Read {
  std::int32_t partition = 0;
  std::string key;
  std::string value;       // empty for a tombstone
  bool tombstone = false;  // a null value (a delete on a compacted topic)
  std::int64_t timestamp_ms = 0;
  std::string content_type;
};

// Every committed record of the topic (or of the partition `key` hashes to), oldest first per
// partition, up to the end the topic had when reading began; `partition_count`, when given,
// receives the topic's partition count.
Result<std::vector<Read>> read_to_end(const Config& config, const std::string& topic, const std::string& key = "",
                                      std::int32_t* partition_count = nullptr);

// Every committed record of the topic (or of the partition `key` hashes to) timestamped at or after
// `since`: each partition from the first offset offsetsForTimes gives for `since`, oldest first per
// partition, up to the end it had when reading began, handed to `visit` as it is read (nothing is
// kept). An error when the end is not reached within `timeout`.
Status read_since(const Config& config, const std::string& topic, Instant since, const std::function<void(Read&&)>& visit,
                  const std::string& key = "", Millis timeout = Millis(60000));

class InspectCommands {
 public:
  explicit InspectCommands(CLI::App& app);
  bool parsed() const;
  int run(const Config& config, std::ostream& out, std::ostream& err) const;
  // `status JOB-ID [--json]`, which also runs through kcron-api (api_commands.h).
  bool status_parsed() const { return status_->parsed(); }
  const std::string& job_id() const { return job_id_; }
  bool json() const { return json_; }
  // dlq list|replay and workers, which run through kcron-api too.
  bool api_parsed() const { return status_->parsed() || dlq_list_->parsed() || dlq_replay_->parsed() || workers_->parsed(); }
  int run_api(ApiClient& client, std::ostream& out, std::ostream& err) const;

 private:
  CLI::App* status_ = nullptr;
  CLI::App* dlq_list_ = nullptr;
  CLI::App* dlq_replay_ = nullptr;
  CLI::App* workers_ = nullptr;
  std::string job_id_;
  std::vector<std::string> replay_ids_;
  bool replay_all_ = false;
  bool json_ = false;
  long max_ = 0;
};

}  // namespace kcron::cli
