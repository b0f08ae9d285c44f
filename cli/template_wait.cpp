#include "template_wait.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <string>
#include <thread>

#include "kcron/tenant.h"

namespace kcron::cli {

Result<templates::Catalog> read_catalog_until(const std::function<Result<templates::Catalog>()>& read, std::string_view tenant,
                                              const std::vector<templates::Ref>& refs, const CatalogWait& wait) {
  const auto deadline = std::chrono::steady_clock::now() + wait.wait;
  Millis slept{0};
  while (true) {
    auto catalog = read();
    if (!catalog) return catalog.error();
    if (catalog->first_missing(tenant, refs) == nullptr) return catalog;
    if (slept >= wait.wait || std::chrono::steady_clock::now() >= deadline || wait.interval.count() <= 0) return catalog;
    const Millis pause = std::min(wait.interval, wait.wait - slept);
    if (wait.sleep) {
      wait.sleep(pause);
    } else {
      std::this_thread::sleep_for(pause);
    }
    slept += pause;
  }
}

std::string missing_version(const templates::Catalog& catalog, std::string_view tenant, const templates::Ref& ref,
                            Millis waited) {
  if (const auto* reason = catalog.unusable(tenant, ref.name, ref.version)) {
    return fmt::format("template '{}' version {} cannot be read here: {}", ref.name, ref.version, *reason);
  }
  std::string there;
  for (const auto* version : catalog.versions(tenant, ref.name)) {
    there += (there.empty() ? "" : ", ") + std::to_string(version->version());
  }
  const std::string whose = is_default_tenant(tenant) ? "" : fmt::format(" of tenant '{}'", tenant);
  const std::string spent = waited.count() > 0 ? fmt::format("waited {} ms for it; ", waited.count()) : std::string();
  return fmt::format("template '{}'{} has no version {} ({}its versions: {})", ref.name, whose, ref.version, spent,
                     there.empty() ? "none" : there);
}

}  // namespace kcron::cli
