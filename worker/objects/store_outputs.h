// What a slot does with an attempt's large outputs once it ran, before the worker publishes it
// (and so before its result transaction commits): each whole output goes to the object store
// under a key unique to this execution, and its ObjectRef joins the outcome. A store that fails
// turns a succeeded attempt into a retriable failure saying why; an attempt that already failed
// (or timed out, or was cancelled) keeps its state and retriability, its error noting the lost
// output. Its result is published as always.
// An attempt stopped for a shutdown (handed back, never published) stores nothing. Pure: the store
// is the interface of object_store.h.
#pragma once

#include <string_view>

#include "core/attempt.h"
#include "objects/object_store.h"

namespace kcron::worker {

// Returns the store's error when one failed (the outcome says so already), for the worker's log.
Status store_large_outputs(Attempt& attempt, ObjectStore& store, const ObjectSettings& settings, std::string_view run_token);

}  // namespace kcron::worker
