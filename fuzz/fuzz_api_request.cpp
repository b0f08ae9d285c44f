// libFuzzer target: what kcron-api reads from a request before anything is produced: a job body,
// list parameters and page tokens (api/core/requests.h). None may crash; an accepted job body
// must carry the caller's tenant and subject, and a page token must round trip.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/requests.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::string_view text(reinterpret_cast<const char*>(data) + 1, size - 1);
  switch (data[0] % 3) {
    case 0: {
      auto job = kcron::api::parse_job_body(text, "acme", "alice", "job-fuzz");
      if (job.ok() && (job.value->tenant() != "acme" || job.value->submitted_by() != "alice" || job.value->id().empty()))
        std::abort();
      // The same body as a template body (POST /v1/jobs): a reference it accepts names a version.
      if (auto from_template = kcron::api::parse_template_submission(text);
          from_template && from_template->ok() && from_template->value->ref.version == 0) {
        std::abort();
      }
      break;
    }
    case 1: {
      // A query string, as GET /v1/jobs gets it.
      const auto parameters = kcron::api::split_query(text);
      if (!parameters) break;
      auto query = kcron::api::parse_list_query(*parameters);
      if (query.ok() && (query.value->page_size < 1 || query.value->page_size > kcron::api::kMaxPageSize)) std::abort();
      break;
    }
    default: {
      auto key = kcron::api::decode_page_token(text);
      if (key) {
        auto again = kcron::api::decode_page_token(kcron::api::encode_page_token(*key));
        if (!again || again->submitted_ms != key->submitted_ms || again->id != key->id) std::abort();
      }
      break;
    }
  }
  return 0;
}
