// What GET /v1/workers shows a caller of a tenant: the workers are shared by every tenant, so a
// tenant's caller sees each worker's queues, slots, liveness, CPU and memory, what it can run (exec
// programs, handler names) and only its own tenant's running jobs (by their ids in the tenant),
// never another tenant's job ids or the worker's host, group member id or totals of jobs run.
// kcron's operators (the system scope) see the heartbeats whole. Pure.
#pragma once

#include <string_view>

#include "kcron.pb.h"

namespace kcron::api {

v1::WorkerHeartbeat worker_for_tenant(const v1::WorkerHeartbeat& heartbeat, std::string_view tenant);

}  // namespace kcron::api
