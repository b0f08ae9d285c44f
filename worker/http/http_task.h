// The executor of http jobs (webhooks), the libcurl edge of http_policy.h. Per job: check the
// request, resolve the host once and check every address, then send it with one curl easy handle
// pinned to the checked addresses (CURLOPT_RESOLVE, plus a socket callback that refuses any other
// address) so DNS rebinding cannot move it. No redirects, no proxies, bounded time and output.
#pragma once

#include "core/runner.h"
#include "core/tenant_walls.h"
#include "http/http_policy.h"

namespace kcron::worker {

// curl_global_init, once per process; call it before starting threads. Throws std::runtime_error
// when libcurl cannot start (a start-up error). make_http_executor calls it too.
void http_global_init();

// The handler to register for v1::Job::kHttp. Each call runs on the calling slot thread with its
// own curl handles and returns within ~50 ms of `stop` turning true. Host name resolution
// (getaddrinfo) is the one step `stop` cannot cut short; it is bounded by the resolver's own
// timeouts. Throws std::invalid_argument when policy.allow holds an invalid entry (use
// http_policy_from, which reports it as an error value instead).
// With `walls`: the job's host and port must match the tenant's allowed_http_targets
// (check_http_for_tenant), and its secret references (header values, URL query values) are
// resolved before the request and redacted from the outcome's error and output.
Handler make_http_executor(HttpPolicy policy, JobWalls walls = {});

}  // namespace kcron::worker
