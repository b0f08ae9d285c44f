#include "support/flags.h"

#include <charconv>
#include <stdexcept>

namespace kcron::bench {
namespace {

bool valid_integer(const std::string& text) {
  std::int64_t parsed = 0;
  const auto* end = text.data() + text.size();
  const auto [stop, code] = std::from_chars(text.data(), end, parsed);
  return !text.empty() && code == std::errc() && stop == end;
}

bool valid_number(const std::string& text) {
  try {
    std::size_t used = 0;
    (void)std::stod(text, &used);
    return used == text.size();
  } catch (const std::exception&) {
    return false;
  }
}

}  // namespace

Flags& Flags::declare(const std::string& name, Kind kind, std::string default_value, std::string help) {
  if (!flags_.contains(name)) order_.push_back(name);
  flags_[name] = Flag{kind, std::move(default_value), std::move(help)};
  return *this;
}

Flags& Flags::text(const std::string& name, std::string default_value, std::string help) {
  return declare(name, Kind::kText, std::move(default_value), std::move(help));
}
Flags& Flags::integer(const std::string& name, std::int64_t default_value, std::string help) {
  return declare(name, Kind::kInteger, std::to_string(default_value), std::move(help));
}
Flags& Flags::number(const std::string& name, double default_value, std::string help) {
  return declare(name, Kind::kNumber, fmt::format("{}", default_value), std::move(help));
}
Flags& Flags::toggle(const std::string& name, std::string help) {
  return declare(name, Kind::kToggle, "false", std::move(help));
}

Status Flags::parse(int argc, char** argv, bool command_expected) {
  for (int index = 1; index < argc; ++index) {
    const std::string argument = argv[index];
    if (argument == "-h" || argument == "--help") {
      help_ = true;
      continue;
    }
    if (!argument.starts_with("--")) {
      if (command_expected && command_.empty()) {
        command_ = argument;
        continue;
      }
      return make_error("unexpected argument '{}'", argument);
    }
    const auto equals = argument.find('=');
    const std::string name = argument.substr(2, equals == std::string::npos ? std::string::npos : equals - 2);
    auto flag = flags_.find(name);
    if (flag == flags_.end()) return make_error("unknown flag --{} (see --help)", name);
    std::string value;
    if (equals != std::string::npos) {
      value = argument.substr(equals + 1);
    } else if (flag->second.kind == Kind::kToggle) {
      value = "true";
    } else if (index + 1 < argc) {
      value = argv[++index];
    } else {
      return make_error("--{} needs a value", name);
    }
    const auto kind = flag->second.kind;
    if (kind == Kind::kInteger && !valid_integer(value)) return make_error("--{}: '{}' is not a whole number", name, value);
    if (kind == Kind::kNumber && !valid_number(value)) return make_error("--{}: '{}' is not a number", name, value);
    if (kind == Kind::kToggle && value != "true" && value != "false") {
      return make_error("--{}: '{}' is neither true nor false", name, value);
    }
    flag->second.value = value;
  }
  return Status::success();
}

const Flags::Flag& Flags::find(const std::string& name) const {
  const auto flag = flags_.find(name);
  if (flag == flags_.end()) throw std::logic_error("undeclared flag --" + name);  // a programming error
  return flag->second;
}

const std::string& Flags::get(const std::string& name) const {
  return find(name).value;
}

std::int64_t Flags::get_int(const std::string& name) const {
  std::int64_t parsed = 0;
  const auto& value = find(name).value;
  (void)std::from_chars(value.data(), value.data() + value.size(), parsed);
  return parsed;
}

double Flags::get_double(const std::string& name) const {
  return std::stod(find(name).value);
}

bool Flags::get_toggle(const std::string& name) const {
  return find(name).value == "true";
}

std::vector<std::string> Flags::get_list(const std::string& name) const {
  std::vector<std::string> items;
  const auto& value = find(name).value;
  std::size_t start = 0;
  while (start <= value.size()) {
    const auto comma = value.find(',', start);
    const auto end = comma == std::string::npos ? value.size() : comma;
    if (end > start) items.push_back(value.substr(start, end - start));
    start = end + 1;
  }
  return items;
}

std::string Flags::usage() const {
  std::string text = fmt::format("{}: {}\n\nflags:\n", program_, summary_);
  for (const auto& name : order_) {
    const auto& flag = flags_.at(name);
    const std::string shown =
        flag.kind == Kind::kToggle ? "" : fmt::format(" (default: {})", flag.value.empty() ? "none" : flag.value);
    text += fmt::format("  --{:<22} {}{}\n", name, flag.help, shown);
  }
  return text;
}

}  // namespace kcron::bench
