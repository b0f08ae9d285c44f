// A tenant's own output topic, `<prefix>out.<tenant>` (docs/security.md#tenant-output-topics): a
// Kafka-native tenant that opted in (TenantSettings.kafka_output) reads its jobs' results, status
// changes and dead letters there, with its own certificate, instead of through kcron-api. The
// dispatchers and workers write each such record twice, in the same transaction: to the shared
// topic and to the tenant's, so the tenant's copy commits exactly when the shared one does.
#pragma once

#include <cstdint>
#include <functional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "kcron/out_record.h"
#include "kcron/topics.h"

namespace kcron {

std::string tenant_output_topic(std::string_view topic_prefix, std::string_view tenant);  // "<prefix>out.<tenant>"

using TenantSet = std::set<std::string, std::less<>>;

// The copies for `tenants` of the records on results, status and dead-letters: same key, value and
// headers, on the tenant's output topic; the tenant is the record's kcron-tenant header (a record
// of the default tenant, which has none, is never copied). `sources`, when given, gets the index in
// `records` of each copy's original.
std::vector<OutRecord> tenant_output_copies(const std::vector<OutRecord>& records, const TopicNames& names,
                                            const TenantSet& tenants, std::vector<std::size_t>* sources = nullptr);

}  // namespace kcron
