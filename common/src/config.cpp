#include "kcron/config.h"

#include <fmt/format.h>
#include <toml++/toml.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <set>

namespace kcron {
namespace {

std::string env_name_for(const std::string& key) {
  std::string name = "KCRON_";
  for (const char c : key) name += (c == '.') ? '_' : static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return name;
}

std::string toml_scalar(const toml::node& node) {
  if (const auto* text = node.as_string()) return text->get();
  if (const auto* integer = node.as_integer()) return std::to_string(integer->get());
  if (const auto* floating = node.as_floating_point()) return fmt::format("{}", floating->get());
  if (const auto* boolean = node.as_boolean()) return boolean->get() ? "true" : "false";
  if (const auto* array = node.as_array()) {
    std::string joined;
    for (const auto& element : *array) {
      if (!joined.empty()) joined += ',';
      joined += toml_scalar(element);
    }
    return joined;
  }
  return {};
}

void flatten(const toml::table& table, const std::string& prefix, std::map<std::string, std::string>& out) {
  for (const auto& [key, node] : table) {
    const std::string name = prefix.empty() ? std::string(key.str()) : prefix + "." + std::string(key.str());
    if (const auto* child = node.as_table()) {
      flatten(*child, name, out);
    } else {
      out[name] = toml_scalar(node);
    }
  }
}

}  // namespace

std::vector<ConfigKey> common_config_keys(std::string_view program, int default_http_port) {
  return {
      {"brokers", "127.0.0.1:9092", "Kafka bootstrap servers"},
      {"topic_prefix", "kcron.", "prefix of every kcron topic"},
      {"instance_id", fmt::format("{}-1", program), "stable id of this instance (transactional.id, group.instance.id)"},
      {"http_address", "127.0.0.1", "address of the /metrics, /healthz, /readyz server"},
      {"http_port", std::to_string(default_http_port), "port of the HTTP server (0 = any free port, -1 = disabled)"},
      {"log_level", "info", "trace, debug, info, warn, error"},
      {"queues", "default,critical,batch", "known queues (lanes); each has exec.<queue>.{high,normal,low}"},
  };
}

Result<Config> Config::load(const std::vector<ConfigKey>& keys, const std::string& file_path,
                            const std::vector<std::string>& overrides, const std::vector<std::string>& environment) {
  Config config;
  std::set<std::string> known;
  for (const auto& key : keys) {
    config.values_[key.name] = key.default_value;
    known.insert(key.name);
  }
  auto check_known = [&](const std::string& name, std::string_view source) -> Status {
    if (known.contains(name) || name.starts_with("kafka.")) return Status::success();
    return make_error("{}: unknown configuration key '{}' (see --help for the list)", source, name);
  };

  if (!file_path.empty()) {
    try {
      const auto table = toml::parse_file(file_path);
      std::map<std::string, std::string> flat;
      flatten(table, "", flat);
      for (const auto& [name, value] : flat) {
        if (auto status = check_known(name, file_path); !status) return status.error();
        config.values_[name] = value;
      }
    } catch (const toml::parse_error& error) {
      return make_error("{}: {} (line {})", file_path, error.description(), error.source().begin.line);
    }
  }

  for (const auto& entry : environment) {
    const auto equals = entry.find('=');
    if (equals == std::string::npos) continue;
    const std::string name = entry.substr(0, equals);
    const std::string value = entry.substr(equals + 1);
    if (name.starts_with("KCRON_KAFKA_")) {
      std::string property;
      for (const char c : name.substr(12))
        property += (c == '_') ? '.' : static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      config.values_["kafka." + property] = value;
      continue;
    }
    for (const auto& key : keys) {
      if (env_name_for(key.name) == name) config.values_[key.name] = value;
    }
  }

  for (const auto& assignment : overrides) {
    const auto equals = assignment.find('=');
    if (equals == std::string::npos) return make_error("--set {}: expected key=value", assignment);
    const std::string name = assignment.substr(0, equals);
    if (auto status = check_known(name, "--set"); !status) return status.error();
    config.values_[name] = assignment.substr(equals + 1);
  }
  return config;
}

const std::string& Config::get(const std::string& name) const {
  static const std::string empty;
  const auto found = values_.find(name);
  return found == values_.end() ? empty : found->second;
}

Result<std::int64_t> Config::get_int(const std::string& name) const {
  const auto& text = get(name);
  std::int64_t value = 0;
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (error != std::errc() || end != text.data() + text.size()) {
    return make_error("configuration {}: '{}' is not an integer", name, text);
  }
  return value;
}

Result<bool> Config::get_bool(const std::string& name) const {
  const auto& text = get(name);
  if (text == "true" || text == "1" || text == "yes") return true;
  if (text == "false" || text == "0" || text == "no") return false;
  return make_error("configuration {}: '{}' is not a boolean", name, text);
}

std::vector<std::string> Config::get_list(const std::string& name) const {
  std::vector<std::string> items;
  std::string current;
  for (const char c : get(name) + ",") {
    if (c == ',') {
      if (!current.empty()) items.push_back(current);
      current.clear();
    } else if (c != ' ') {
      current += c;
    }
  }
  return items;
}

std::chrono::milliseconds Config::get_ms(const std::string& name) const {
  const auto value = get_int(name);
  return std::chrono::milliseconds(value.ok() ? *value : 0);
}

std::map<std::string, std::string> Config::kafka_properties() const {
  std::map<std::string, std::string> properties;
  for (const auto& [name, value] : values_) {
    if (name.starts_with("kafka.")) properties[name.substr(6)] = value;
  }
  return properties;
}

std::string Config::describe(const std::vector<ConfigKey>& keys) {
  std::string out = "Configuration (TOML file via --config, env KCRON_<KEY>, or --set key=value):\n";
  for (const auto& key : keys) {
    out += fmt::format("  {:<34} {:<26} {}\n", key.name, key.default_value.empty() ? "\"\"" : key.default_value, key.help);
  }
  out +=
      "  kafka.<property>                   (librdkafka)               any librdkafka property, e.g. kafka.security.protocol\n";
  return out;
}

std::vector<std::string> process_environment() {
  std::vector<std::string> entries;
  for (char** entry = environ; entry != nullptr && *entry != nullptr; ++entry) entries.emplace_back(*entry);
  return entries;
}

}  // namespace kcron
