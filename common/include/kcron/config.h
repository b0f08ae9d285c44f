// Configuration for every kcron program: declared keys with defaults, overridden in order by a
// TOML file (--config), environment variables (KCRON_<KEY> with dots as underscores) and flags
// (--set key=value). Keys under `kafka.` pass through to librdkafka (SASL, TLS, tuning); from the
// environment they are KCRON_KAFKA_<PROPERTY> with dots as underscores.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "kcron/result.h"

namespace kcron {

struct ConfigKey {
  std::string name;  // e.g. "dispatcher.commit_interval_ms"
  std::string default_value;
  std::string help;
};

// The keys every program shares (brokers, topic prefix, instance id, HTTP port, log level...).
std::vector<ConfigKey> common_config_keys(std::string_view program, int default_http_port);

class Config {
 public:
  // `environment` is a list of "NAME=value" strings (environ in production, fixed in tests).
  static Result<Config> load(const std::vector<ConfigKey>& keys, const std::string& file_path,
                             const std::vector<std::string>& overrides, const std::vector<std::string>& environment);

  const std::string& get(const std::string& name) const;
  Result<std::int64_t> get_int(const std::string& name) const;
  Result<bool> get_bool(const std::string& name) const;
  std::vector<std::string> get_list(const std::string& name) const;  // comma-separated
  std::chrono::milliseconds get_ms(const std::string& name) const;   // an int key in ms; 0 on error

  // Every kafka.* key without its prefix, ready for librdkafka.
  std::map<std::string, std::string> kafka_properties() const;
  const std::map<std::string, std::string>& values() const { return values_; }

  // A table of keys, defaults and help, for --help.
  static std::string describe(const std::vector<ConfigKey>& keys);

 private:
  std::map<std::string, std::string> values_;
};

std::vector<std::string> process_environment();

}  // namespace kcron
