// How the kcron command prints values in its tables: instants as RFC 3339 UTC with milliseconds,
// free text on one line, cut at a limit. Pure.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "kcron.pb.h"

namespace kcron::cli {

// `2026-12-06T15:32:51.525Z`; "-" for 0 or less (not set).
std::string rfc3339_ms(std::int64_t epoch_ms);
// Newlines and tabs as spaces, and at most `limit` bytes (then "...").
std::string one_line(std::string text, std::size_t limit = 100);

// `kcron workers`, over Kafka or the API: a header line, and one line per worker. `state` is
// live, stopped or lost; `now_ms` gives SEEN_S_AGO.
std::string workers_table_header();
std::string workers_table_row(const v1::WorkerHeartbeat& beat, std::string_view state, std::int64_t now_ms);
// A worker's state from its latest heartbeat: stopped after a clean stop, live while heartbeats
// arrive, lost after three missed intervals (at least 1 s each).
std::string_view worker_state(const v1::WorkerHeartbeat& beat, std::int64_t now_ms);

// `kcron dlq list`: a header line, and one line per letter (its tenant as given).
std::string dead_letters_table_header();
std::string dead_letters_table_row(const v1::DeadLetter& letter, std::string_view tenant, std::string_view id_from_key = {});

}  // namespace kcron::cli
