// Client-independent routing. kcron partitions the jobs and schedules topics exactly as Java
// clients do (murmur2 of the key, positive, modulo the partition count), which is librdkafka's
// `murmur2_random` partitioner too. The routing key of a job derives from its id.
#pragma once

#include <cstdint>
#include <string_view>

#include "kcron/ids.h"

namespace kcron {

// Kafka's Utils.murmur2 (seed 0x9747b28c), bit for bit.
std::int32_t murmur2(std::string_view key);

// The partition a Java client (or librdkafka murmur2_random) picks for a non-empty key.
Partition partition_for_key(std::string_view key, std::int32_t partition_count);

// Routing key of a job id: `<schedule id>@<instant>` -> schedule id, `<flow id>/<node>` ->
// flow id, anything else -> the id itself. So all runs of a schedule share a partition.
std::string_view routing_key_for_job(std::string_view job_id);

}  // namespace kcron
