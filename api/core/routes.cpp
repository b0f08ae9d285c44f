#include "core/routes.h"

#include <regex>

namespace kcron::api {

std::vector<std::pair<std::string, std::string>> route_list() {
  std::vector<std::pair<std::string, std::string>> list;
  list.reserve(kRoutes.size());
  for (const auto& spec : kRoutes) list.emplace_back(spec.method, spec.path);
  return list;
}

std::string path_regex(std::string_view path_template) {
  constexpr std::string_view kSpecial = R"(\^$.|?*+()[]{}/)";
  std::string pattern;
  for (std::size_t at = 0; at < path_template.size(); ++at) {
    const char c = path_template[at];
    if (c == '{') {
      const auto close = path_template.find('}', at);
      if (close != std::string_view::npos) {
        pattern += "(.+)";
        at = close;
        continue;
      }
    }
    if (c != '/' && kSpecial.find(c) != std::string_view::npos) pattern.push_back('\\');
    pattern.push_back(c);
  }
  return pattern;
}

bool path_matches(std::string_view path_template, std::string_view path) {
  const std::regex pattern(path_regex(path_template));
  return std::regex_match(path.begin(), path.end(), pattern);
}

}  // namespace kcron::api
