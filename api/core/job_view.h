// How kcron-api folds the records of one job into its view (v1::JobView): the submit or update on
// kcron.jobs, every status record, every result. Records of one job arrive from three topics in
// no fixed order; each fold is idempotent and order-safe (status records by (attempt, sequence)),
// so a restart that replays records already folded changes nothing. Pure.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "kcron.pb.h"

namespace kcron::api {

// Transitions kept per job: the first, and the latest ones up to this count.
inline constexpr std::size_t kMaxTransitions = 50;

// A submit (`update` false) or an update of the job's definition. `record_ms` is the record's
// append time: the submit sets submitted_ms (and `source`) from it, also when another record of
// the job came first and set a provisional time, so every instance's view orders the job alike;
// after the submit it never changes (the list's keyset order is immutable).
void fold_definition(v1::JobView& view, const v1::Job& job, std::int64_t record_ms, std::string_view source, bool update);

// A status record. Returns whether it changed the view (an older or repeated record does not).
bool fold_status(v1::JobView& view, const v1::StatusRecord& status);

// A result: the latest attempt's result is kept (an older attempt's is not).
bool fold_result(v1::JobView& view, const v1::Result& result);

// The component a transition read from the dispatcher's changelog carries. Such a transition is
// provisional: the status record of the same (attempt, sequence) replaces it when it comes.
inline constexpr std::string_view kChangelogComponent = "dispatcher-changelog";

// How old a FIRED, CANCELLED, DEAD or SKIPPED changelog entry must be before the view takes it:
// younger, the status record written with it is surely still on kcron.status, says more (the
// reason) and comes in a moment.
inline constexpr std::int64_t kChangelogSettledMs = 3'600'000;

// What a job's entry on the dispatcher changelog says about it, for a view that started after the
// job's jobs and status records left their topics (status is compact,delete): a PENDING entry
// carries the definition and stands for the status the dispatcher wrote with it (PENDING, or
// RETRYING for a later attempt); a FIRED, CANCELLED, DEAD or SKIPPED entry at least
// kChangelogSettledMs old (by `now_ms`) moves a job the view holds as waiting on (FIRED: QUEUED)
// and creates nothing. Returns whether the view changed; a record that says nothing about a job
// (other entry kinds) returns false and changes nothing.
bool fold_changelog_entry(v1::JobView& view, const v1::DispatcherEntry& entry, std::int64_t record_ms, std::string_view source,
                          std::int64_t now_ms);

// Whether fold_changelog_entry could change any view with this entry (a cheap test before the
// job is looked up): PENDING entries with a job, and settled FIRED/CANCELLED/DEAD/SKIPPED ones.
bool changelog_entry_may_apply(const v1::DispatcherEntry& entry, std::int64_t record_ms, std::int64_t now_ms);

// Whether a changelog entry of this state may create a job in the view (only PENDING does).
bool changelog_entry_creates(const v1::DispatcherEntry& entry);

// Whether the state ends the job (nothing follows unless it is replayed).
bool is_terminal(v1::JobState state);

}  // namespace kcron::api
