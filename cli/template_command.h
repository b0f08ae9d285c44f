// `kcron template put|get|list|versions` (docs/templates.md): job templates on the compacted
// kcron.templates, one record per version keyed by the tenant-scoped `name@version`. put reads the
// topic to its end first and refuses a version that exists with other content (the same content
// again is a no-op); `kcron submit --template NAME@VERSION` renders with find_template and render
// (kcron/templates.h) and writes the concrete job.
#pragma once

#include <CLI/CLI.hpp>
#include <iosfwd>
#include <string>

#include "kcron.pb.h"
#include "kcron/clock.h"
#include "kcron/config.h"
#include "kcron/result.h"
#include "kcron/templates.h"

namespace kcron::cli {

// The catalog as kcron.templates holds it now; records that do not apply are skipped.
Result<templates::Catalog> read_catalog(const Config& config);

// The version `ref` names of `tenant`'s template, as kcron.templates holds it: re-read every half
// second until it is there or `wait` has passed, then an error naming the template, the version
// and the versions there are. `ref.version` 0: the latest, without waiting.
Result<v1::Template> find_template(const Config& config, std::string_view tenant, const templates::Ref& ref, Millis wait);

class TemplateCommands {
 public:
  explicit TemplateCommands(CLI::App& app);
  bool parsed() const;
  int run(const Config& config, std::ostream& out, std::ostream& err) const;

 private:
  CLI::App* put_ = nullptr;
  CLI::App* get_ = nullptr;
  CLI::App* list_ = nullptr;
  CLI::App* versions_ = nullptr;
  std::string input_;
  std::string ref_;
  std::string name_;
};

}  // namespace kcron::cli
