// `kcron flow submit|cancel|status`: a flow of dependent jobs (docs/flows.md). submit checks the
// graph as the dispatcher will (so a cycle is named here, not in a dead letter), renders each node
// that names a template version from kcron.templates (docs/templates.md#templates-in-flows) and
// writes one concrete Flow record; status reads the flow's partition of the dispatcher changelog (its header and one
// entry per node, the state the dispatcher decides with) and prints every node.
#pragma once

#include <CLI/CLI.hpp>
#include <iosfwd>
#include <string>

#include "kcron/config.h"
#include "kcron/result.h"

namespace kcron::cli {

class FlowCommands {
 public:
  explicit FlowCommands(CLI::App& app);
  bool parsed() const;
  int run(const Config& config, std::ostream& out, std::ostream& err) const;

 private:
  CLI::App* submit_ = nullptr;
  CLI::App* cancel_ = nullptr;
  CLI::App* retry_ = nullptr;
  CLI::App* status_ = nullptr;
  std::string input_;
  std::string flow_id_;
  std::string reason_;
  bool json_ = false;
  double template_wait_s_ = 10;
};

}  // namespace kcron::cli
