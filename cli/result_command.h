// `kcron result get JOB-ID [--attempt N] [--output FILE]`: a job's result from kcron.results, and
// its large output read back from the object store (docs/large-results.md): the bytes are checked
// against the size and SHA-256 the result recorded before they are written out. A result with no
// stored output gives its inline output.
#pragma once

#include <CLI/CLI.hpp>
#include <cstdint>
#include <iosfwd>
#include <string>

#include "kcron.pb.h"
#include "kcron/config.h"
#include "kcron/result.h"

namespace kcron::cli {

// Whether `bytes` are what `ref` recorded: its size, then its sha256; the error names both hashes.
Status verify_object(const v1::ObjectRef& ref, std::string_view bytes, std::string_view actual_sha256);

class ResultCommands {
 public:
  explicit ResultCommands(CLI::App& app);
  bool parsed() const { return get_->parsed(); }
  int run(const Config& config, std::ostream& out, std::ostream& err) const;

 private:
  CLI::App* get_ = nullptr;
  std::string job_id_;
  std::uint32_t attempt_ = 0;  // 0: the latest
  std::string name_ = "stdout";
  std::string output_file_;
  bool info_ = false;
};

}  // namespace kcron::cli
