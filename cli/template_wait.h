// Waiting for template versions a flow's nodes name (docs/templates.md#templates-in-flows): the
// CLI reads kcron.templates, and reads it again only while a version is still missing, under one
// deadline for all of them. Pure: the reader and the sleep are given (the tests fake them).
#pragma once

#include <functional>
#include <string_view>
#include <vector>

#include "kcron/clock.h"
#include "kcron/result.h"
#include "kcron/templates.h"

namespace kcron::cli {

struct CatalogWait {
  Millis wait{0};                     // in all, for every version
  Millis interval{500};               // between reads
  std::function<void(Millis)> sleep;  // empty: std::this_thread::sleep_for
};

// The catalog `read` returns once none of `refs` is missing from it for `tenant` (held or
// unusable), reading again every `interval` while one is, until `wait` has passed in all (by the
// clock and by the sleeps taken, so at most wait / interval + 1 reads); then the catalog as last
// read. A read error is returned at once.
Result<templates::Catalog> read_catalog_until(const std::function<Result<templates::Catalog>()>& read, std::string_view tenant,
                                              const std::vector<templates::Ref>& refs, const CatalogWait& wait);

// Why `ref` of `tenant` is not usable in `catalog`: "template 'report' of tenant 'acme' has no
// version 3 (waited 2000 ms for it; its versions: 1, 2)", or that its record cannot be read.
std::string missing_version(const templates::Catalog& catalog, std::string_view tenant, const templates::Ref& ref, Millis waited);

}  // namespace kcron::cli
