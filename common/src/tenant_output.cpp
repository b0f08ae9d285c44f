#include "kcron/tenant_output.h"

#include <fmt/format.h>

#include "kcron/codec.h"

namespace kcron {

std::string tenant_output_topic(std::string_view topic_prefix, std::string_view tenant) {
  return fmt::format("{}out.{}", topic_prefix, tenant);
}

std::vector<OutRecord> tenant_output_copies(const std::vector<OutRecord>& records, const TopicNames& names,
                                            const TenantSet& tenants, std::vector<std::size_t>* sources) {
  std::vector<OutRecord> copies;
  if (tenants.empty()) return copies;
  const auto results = names.results();
  const auto status = names.status();
  const auto dead_letters = names.dead_letters();
  for (std::size_t index = 0; index < records.size(); ++index) {
    const auto& record = records[index];
    if (record.topic != results && record.topic != status && record.topic != dead_letters) continue;
    for (const auto& [name, value] : record.headers) {
      if (name != header::kTenant || !tenants.contains(value)) continue;
      OutRecord copy = record;
      copy.topic = tenant_output_topic(names.prefix, value);
      copy.partition = -1;  // the tenant's topic has its own partition count: keyed like the shared one
      copies.push_back(std::move(copy));
      if (sources != nullptr) sources->push_back(index);
      break;
    }
  }
  return copies;
}

}  // namespace kcron
