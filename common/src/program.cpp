#include "kcron/program.h"

#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <exception>
#include <iostream>

#include "kcron/service.h"

namespace kcron {

ProgramConfig load_program_config(const std::string& program, const std::string& description, const std::vector<ConfigKey>& keys,
                                  int argc, char** argv) {
  CLI::App app{program + ": " + description};
  std::string config_file;
  std::vector<std::string> overrides;
  app.add_option("-c,--config", config_file, "TOML configuration file");
  app.add_option("-s,--set", overrides, "override a configuration key: --set key=value (repeatable)");
  app.footer(Config::describe(keys));
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& error) {
    return {std::nullopt, app.exit(error)};
  }
  auto loaded = Config::load(keys, config_file, overrides, process_environment());
  if (!loaded) {
    std::cerr << program << ": " << loaded.error().message() << "\n";
    return {std::nullopt, 2};
  }
  return {std::move(*loaded), 0};
}

std::int64_t ConfigNumbers::operator()(const std::string& name) {
  auto value = config_.get_int(name);
  if (!value) {
    problems_.push_back(value.error().message());
    return 0;
  }
  return *value;
}

int exit_code_for(const Status& status) {
  if (status) return 0;
  if (stop_requested()) {
    spdlog::info("event=stopped msg=\"stop requested during start-up\" detail=\"{}\"", status.error().message());
    return 0;
  }
  spdlog::error("event=fatal error=\"{}\"", status.error().message());
  return 1;
}

int run_main(std::string_view program, const std::function<int()>& body) noexcept {
  try {
    return body();
  } catch (const std::exception& error) {
    std::cerr << program << ": " << error.what() << "\n";
  } catch (...) {
    std::cerr << program << ": an exception that is not a std::exception\n";
  }
  return 1;
}

}  // namespace kcron
