// Command-line flags of the benchmark tools: `--name value`, `--name=value`, or `--name` alone for
// a switch. Every flag is declared with a kind, a default and a line of help; an unknown flag or a
// malformed number is an error at parse time, so the getters never fail. (Not CLI11: its header
// trips GCC 12's -Wnull-dereference at -O2, see bench/README.md.)
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "kcron/result.h"

namespace kcron::bench {

class Flags {
 public:
  enum class Kind { kText, kInteger, kNumber, kToggle };

  Flags(std::string program, std::string summary) : program_(std::move(program)), summary_(std::move(summary)) {}

  Flags& text(const std::string& name, std::string default_value, std::string help);
  Flags& integer(const std::string& name, std::int64_t default_value, std::string help);
  Flags& number(const std::string& name, double default_value, std::string help);
  Flags& toggle(const std::string& name, std::string help);

  // Parses argv; the first non-flag argument, if `command_expected`, is the command.
  Status parse(int argc, char** argv, bool command_expected = false);

  const std::string& get(const std::string& name) const;
  std::int64_t get_int(const std::string& name) const;
  double get_double(const std::string& name) const;
  bool get_toggle(const std::string& name) const;
  // A comma-separated text flag, split; empty items dropped.
  std::vector<std::string> get_list(const std::string& name) const;

  const std::string& command() const { return command_; }
  bool help_requested() const { return help_; }
  std::string usage() const;

 private:
  struct Flag {
    Kind kind = Kind::kText;
    std::string value;
    std::string help;
  };
  Flags& declare(const std::string& name, Kind kind, std::string default_value, std::string help);
  const Flag& find(const std::string& name) const;

  std::string program_;
  std::string summary_;
  std::map<std::string, Flag> flags_;
  std::vector<std::string> order_;
  std::string command_;
  bool help_ = false;
};

}  // namespace kcron::bench
