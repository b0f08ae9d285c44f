#include "text.h"

#include <fmt/chrono.h>
#include <fmt/format.h>

#include <algorithm>
#include <ctime>

#include "kcron/codec.h"

namespace kcron::cli {

std::string rfc3339_ms(std::int64_t epoch_ms) {
  if (epoch_ms <= 0) return "-";
  return fmt::format("{:%Y-%m-%dT%H:%M:%S}.{:03d}Z", fmt::gmtime(static_cast<std::time_t>(epoch_ms / 1000)),
                     static_cast<int>(epoch_ms % 1000));
}

std::string one_line(std::string text, std::size_t limit) {
  for (auto& c : text) {
    if (c == '\n' || c == '\r' || c == '\t') c = ' ';
  }
  return text.size() <= limit ? text : text.substr(0, limit) + "...";
}

std::string workers_table_header() {
  return fmt::format("{:<20} {:<8} {:<16} {:<20} {:>5} {:>7} {:>9} {:>8} {:>10}\n", "WORKER", "STATE", "HOST", "QUEUES", "SLOTS",
                     "RUNNING", "CPU_S", "RSS_MB", "SEEN_S_AGO");
}

std::string workers_table_row(const v1::WorkerHeartbeat& beat, std::string_view state, std::int64_t now_ms) {
  return fmt::format("{:<20} {:<8} {:<16} {:<20} {:>5} {:>7} {:>9.1f} {:>8.1f} {:>10.1f}\n", beat.worker_id(), state,
                     one_line(beat.host(), 16), one_line(fmt::format("{}", fmt::join(beat.queues(), ",")), 20), beat.slots(),
                     beat.running_size(), beat.cpu_seconds(), static_cast<double>(beat.rss_bytes()) / 1048576.0,
                     static_cast<double>(now_ms - beat.at_ms()) / 1000.0);
}

std::string_view worker_state(const v1::WorkerHeartbeat& beat, std::int64_t now_ms) {
  const auto interval = std::max<std::int64_t>(beat.interval_ms(), 1000);
  if (beat.stopped()) return "stopped";
  return now_ms - beat.at_ms() <= 3 * interval ? "live" : "lost";
}

std::string dead_letters_table_header() {
  return fmt::format("{:<25} {:<9} {:<16} {:<32} {:>8}  {}\n", "AT", "STATE", "TENANT", "JOB", "ATTEMPTS", "REASON");
}

std::string dead_letters_table_row(const v1::DeadLetter& letter, std::string_view tenant, std::string_view id_from_key) {
  // A REJECTED record has no job: the id its dead letter is keyed by (the job's, for one the
  // dispatcher could read), else where the record was.
  const std::string job = letter.has_job()       ? letter.job().id()
                          : !id_from_key.empty() ? std::string(id_from_key)
                                                 : fmt::format("({}[{}]@{})", letter.source_topic(), letter.source_partition(),
                                                               letter.source_offset());
  return fmt::format("{:<25} {:<9} {:<16} {:<32} {:>8}  {}\n", rfc3339_ms(letter.at_ms()), state_name(letter.state()), tenant,
                     job, letter.history_size(), one_line(letter.reason()));
}

}  // namespace kcron::cli
