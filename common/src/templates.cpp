#include "kcron/templates.h"

#include <fmt/format.h>
#include <google/protobuf/descriptor.h>
#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>
#include <google/protobuf/message.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <set>

#include "kcron/codec.h"
#include "kcron/tenant.h"

namespace kcron::templates {
namespace {

using google::protobuf::FieldDescriptor;
using google::protobuf::Message;

constexpr std::string_view kOpen = "{{";
constexpr std::string_view kClose = "}}";
constexpr std::size_t kShownValueBytes = 64;  // of a refused value, in a message

bool is_lower_or_digit(char c) {
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

bool is_utf8(std::string_view text) {
  std::size_t index = 0;
  while (index < text.size()) {
    const auto lead = static_cast<unsigned char>(text[index]);
    std::size_t extra = 0;
    std::uint32_t point = 0;
    if (lead < 0x80) {
      ++index;
      continue;
    }
    if ((lead & 0xE0U) == 0xC0U) {
      extra = 1;
      point = lead & 0x1FU;
    } else if ((lead & 0xF0U) == 0xE0U) {
      extra = 2;
      point = lead & 0x0FU;
    } else if ((lead & 0xF8U) == 0xF0U) {
      extra = 3;
      point = lead & 0x07U;
    } else {
      return false;
    }
    if (index + extra >= text.size()) return false;
    for (std::size_t next = 1; next <= extra; ++next) {
      const auto byte = static_cast<unsigned char>(text[index + next]);
      if ((byte & 0xC0U) != 0x80U) return false;
      point = (point << 6U) | (byte & 0x3FU);
    }
    // Overlong forms, surrogates and points past U+10FFFF are not UTF-8.
    const std::uint32_t least = extra == 1 ? 0x80U : extra == 2 ? 0x800U : 0x10000U;
    if (point < least || point > 0x10FFFFU || (point >= 0xD800U && point <= 0xDFFFU)) return false;
    index += extra + 1;
  }
  return true;
}

// A value as a message shows it: at most kShownValueBytes, cut at a character boundary.
std::string shown(std::string_view value) {
  if (value.size() <= kShownValueBytes) return std::string(value);
  std::size_t cut = kShownValueBytes;
  while (cut > 0 && (static_cast<unsigned char>(value[cut]) & 0xC0U) == 0x80U) --cut;
  return std::string(value.substr(0, cut)) + "...";
}

bool is_duration(std::string_view text) {
  if (text.empty()) return false;
  std::size_t index = 0;
  while (index < text.size()) {
    const std::size_t digits = index;
    while (index < text.size() && text[index] >= '0' && text[index] <= '9') ++index;
    if (index == digits || index - digits > 12) return false;
    if (text.substr(index).starts_with("ms")) {
      index += 2;
    } else if (index < text.size() && (text[index] == 's' || text[index] == 'm' || text[index] == 'h' || text[index] == 'd')) {
      ++index;
    } else {
      return false;
    }
  }
  return true;
}

std::string_view type_word(v1::TemplateParam::Type type) {
  switch (type) {
    case v1::TemplateParam::INT:
      return "an integer";
    case v1::TemplateParam::NUMBER:
      return "a number";
    case v1::TemplateParam::BOOL:
      return "true or false";
    case v1::TemplateParam::DURATION:
      return "a duration such as 90s, 1h30m or 250ms";
    default:
      return "text";
  }
}

// Replaces every placeholder of `text` by what `value_of` says for its name; an error for a
// malformed placeholder or from `value_of`. `where` names the field, for messages.
using ValueOf = std::function<Result<std::string>(std::string_view name, std::string_view where)>;

Result<std::string> expand(std::string_view text, std::string_view where, const ValueOf& value_of) {
  std::string out;
  std::size_t from = 0;
  while (true) {
    const auto open = text.find(kOpen, from);
    if (open == std::string_view::npos) break;
    const auto close = text.find(kClose, open + kOpen.size());
    if (close == std::string_view::npos) return make_error("{}: '{{{{' without a closing '}}}}'", where);
    std::string_view inner = text.substr(open + kOpen.size(), close - open - kOpen.size());
    while (!inner.empty() && inner.front() == ' ') inner.remove_prefix(1);
    while (!inner.empty() && inner.back() == ' ') inner.remove_suffix(1);
    if (!is_valid_param_name(inner)) {
      return make_error("{}: '{}' is not a placeholder: a placeholder is {{{{name}}}} with a parameter name ([a-z0-9_])", where,
                        shown(text.substr(open, close + kClose.size() - open)));
    }
    auto value = value_of(inner, where);
    if (!value) return value.error();
    out.append(text.substr(from, open - from));
    out.append(*value);
    from = close + kClose.size();
  }
  out.append(text.substr(from));
  return out;
}

// Calls `edit` on every set string field of `message` and its messages, and on its bytes fields
// that are UTF-8 (other bytes are not text and stay as they are). `path` names the field.
using Edit = std::function<Status(std::string& text, const std::string& path)>;

Status walk(Message& message, const std::string& path, const Edit& edit) {
  const auto* reflection = message.GetReflection();
  std::vector<const FieldDescriptor*> fields;
  reflection->ListFields(message, &fields);
  for (const auto* field : fields) {
    const std::string here = path + "." + field->name();
    if (field->cpp_type() == FieldDescriptor::CPPTYPE_STRING) {
      const bool bytes = field->type() == FieldDescriptor::TYPE_BYTES;
      if (field->is_repeated()) {
        for (int index = 0; index < reflection->FieldSize(message, field); ++index) {
          std::string text = reflection->GetRepeatedString(message, field, index);
          if (bytes && !is_utf8(text)) continue;
          if (auto status = edit(text, fmt::format("{}[{}]", here, index)); !status) return status;
          reflection->SetRepeatedString(&message, field, index, std::move(text));
        }
      } else {
        std::string text = reflection->GetString(message, field);
        if (bytes && !is_utf8(text)) continue;
        if (auto status = edit(text, here); !status) return status;
        reflection->SetString(&message, field, std::move(text));
      }
    } else if (field->is_map()) {
      // A map's entries are named by their key. Keys hold no placeholder: two keys rendering to the
      // same text would fold into one entry, and an empty value would make an empty key.
      for (int index = 0; index < reflection->FieldSize(message, field); ++index) {
        auto& entry = *reflection->MutableRepeatedMessage(&message, field, index);
        const auto* entry_reflection = entry.GetReflection();
        const auto* key_field = entry.GetDescriptor()->map_key();
        const auto* value_field = entry.GetDescriptor()->map_value();
        const std::string key =
            key_field->cpp_type() == FieldDescriptor::CPPTYPE_STRING ? entry_reflection->GetString(entry, key_field) : "";
        const std::string at = fmt::format("{}['{}']", here, shown(key));
        if (key.find(kOpen) != std::string::npos) {
          return make_error("{}: a map key cannot hold a placeholder; put it in the value", at);
        }
        if (value_field->cpp_type() == FieldDescriptor::CPPTYPE_STRING) {
          std::string text = entry_reflection->GetString(entry, value_field);
          if (value_field->type() == FieldDescriptor::TYPE_BYTES && !is_utf8(text)) continue;
          if (auto status = edit(text, at); !status) return status;
          entry_reflection->SetString(&entry, value_field, std::move(text));
        } else if (value_field->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE) {
          if (auto status = walk(*entry_reflection->MutableMessage(&entry, value_field), at, edit); !status) return status;
        }
      }
    } else if (field->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE) {
      if (field->is_repeated()) {
        for (int index = 0; index < reflection->FieldSize(message, field); ++index) {
          if (auto status =
                  walk(*reflection->MutableRepeatedMessage(&message, field, index), fmt::format("{}[{}]", here, index), edit);
              !status) {
            return status;
          }
        }
      } else if (auto status = walk(*reflection->MutableMessage(&message, field), here, edit); !status) {
        return status;
      }
    }
  }
  return Status::success();
}

std::string version_text(const v1::Template& definition) {
  return fmt::format("{}@{}", definition.name(), definition.version());
}

Error in_template(const v1::Template& definition, const Error& error) {
  return Error(fmt::format("template '{}': {}", version_text(definition), error.message()));
}

Status validate_param(const v1::TemplateParam& param) {
  if (!is_valid_param_name(param.name())) {
    return make_error("parameter '{}': a name is 1-{} of [a-z0-9_], not starting with a digit", shown(param.name()),
                      kMaxNameBytes);
  }
  if (!v1::TemplateParam::Type_IsValid(param.type())) {
    return make_error("parameter '{}': unknown type {}", param.name(), static_cast<int>(param.type()));
  }
  if (param.description().size() > kMaxDescriptionBytes) {
    return make_error("parameter '{}': the description is over {} bytes", param.name(), kMaxDescriptionBytes);
  }
  if (param.has_default_()) {
    if (param.required()) return make_error("parameter '{}' is required and has a default: drop one", param.name());
    if (auto status = check_param_value(param, param.default_()); !status)
      return make_error("default: {}", status.error().message());
  }
  return Status::success();
}

const v1::TemplateParam* param_named(const v1::Template& definition, std::string_view name) {
  for (const auto& param : definition.params()) {
    if (param.name() == name) return &param;
  }
  return nullptr;
}

std::string tenant_name(std::string_view tenant) {
  return std::string(tenant_or_default(tenant));
}

}  // namespace

bool is_valid_template_name(std::string_view name) {
  if (name.empty() || name.size() > kMaxNameBytes || !is_lower_or_digit(name.front())) return false;
  return std::all_of(name.begin(), name.end(), [](char c) { return is_lower_or_digit(c) || c == '_' || c == '.' || c == '-'; });
}

bool is_valid_param_name(std::string_view name) {
  if (name.empty() || name.size() > kMaxNameBytes || (name.front() >= '0' && name.front() <= '9')) return false;
  return std::all_of(name.begin(), name.end(), [](char c) { return is_lower_or_digit(c) || c == '_'; });
}

std::string Ref::text() const {
  return fmt::format("{}@{}", name, version);
}

Result<Ref> parse_ref(std::string_view text, bool version_required) {
  const auto at = text.rfind('@');
  const std::string_view name = at == std::string_view::npos ? text : text.substr(0, at);
  if (!is_valid_template_name(name)) {
    return make_error("'{}' is not a template name: 1-{} of [a-z0-9_.-], starting with a letter or digit", shown(name),
                      kMaxNameBytes);
  }
  Ref ref{std::string(name), 0};
  if (at == std::string_view::npos) {
    if (version_required) return make_error("name the template's version: {}@VERSION", name);
    return ref;
  }
  const std::string_view digits = text.substr(at + 1);
  const auto* end = digits.data() + digits.size();
  const auto [stop, code] = std::from_chars(digits.data(), end, ref.version);
  if (digits.empty() || code != std::errc() || stop != end || ref.version == 0) {
    return make_error("template '{}': the version must be a whole number from 1, got '{}'", name, shown(digits));
  }
  return ref;
}

std::string template_key(std::string_view tenant, std::string_view name, std::uint32_t version) {
  return scoped_key(tenant_or_default(tenant), fmt::format("{}@{}", name, version));
}

Status check_param_value(const v1::TemplateParam& param, std::string_view value) {
  const auto refuse = [&] {
    return make_error("parameter '{}' must be {}, got '{}'", param.name(), type_word(param.type()), shown(value));
  };
  if (value.size() > kMaxValueBytes) return make_error("parameter '{}' is over {} bytes", param.name(), kMaxValueBytes);
  if (!is_utf8(value)) return make_error("parameter '{}' is not UTF-8 text", param.name());
  if (value.find(kOpen) != std::string_view::npos) return make_error("parameter '{}' must not contain '{{{{'", param.name());
  // One line of text: a control character (a newline, a NUL) would cut an argument at exec or split
  // an http header.
  for (const char character : value) {
    const auto code = static_cast<unsigned char>(character);
    if ((code < 0x20 && code != '\t') || code == 0x7f) {
      return make_error("parameter '{}' holds a control character (0x{:02x}): a value is one line of text", param.name(), code);
    }
  }
  const auto* end = value.data() + value.size();
  switch (param.type()) {
    case v1::TemplateParam::INT: {
      std::int64_t number = 0;
      const auto [stop, code] = std::from_chars(value.data(), end, number);
      if (value.empty() || code != std::errc() || stop != end) return refuse();
      break;
    }
    case v1::TemplateParam::NUMBER: {
      double number = 0;
      const auto [stop, code] = std::from_chars(value.data(), end, number);
      if (value.empty() || code != std::errc() || stop != end || !std::isfinite(number)) return refuse();
      break;
    }
    case v1::TemplateParam::BOOL:
      if (value != "true" && value != "false") return refuse();
      break;
    case v1::TemplateParam::DURATION:
      if (!is_duration(value)) return refuse();
      break;
    default:
      break;
  }
  return Status::success();
}

Status validate_template(const v1::Template& definition) {
  if (!is_valid_template_name(definition.name())) {
    return make_error("'{}' is not a template name: 1-{} of [a-z0-9_.-], starting with a letter or digit",
                      shown(definition.name()), kMaxNameBytes);
  }
  const auto refuse = [&](const Error& error) { return Status(in_template(definition, error)); };
  if (definition.version() == 0) return refuse(Error("the version must be 1 or more"));
  if (auto valid = validate_tenant_name(tenant_or_default(definition.tenant())); !valid) return refuse(valid.error());
  if (definition.ByteSizeLong() > kMaxTemplateBytes) {
    return refuse(Error(fmt::format("over {} bytes encoded", kMaxTemplateBytes)));
  }
  if (definition.description().size() > kMaxDescriptionBytes) {
    return refuse(Error(fmt::format("the description is over {} bytes", kMaxDescriptionBytes)));
  }
  if (static_cast<std::size_t>(definition.params_size()) > kMaxParams) {
    return refuse(Error(fmt::format("{} parameters, at most {}", definition.params_size(), kMaxParams)));
  }
  std::set<std::string_view> names;
  for (const auto& param : definition.params()) {
    if (auto valid = validate_param(param); !valid) return refuse(valid.error());
    if (!names.insert(param.name()).second) return refuse(Error(fmt::format("parameter '{}' is declared twice", param.name())));
  }
  if (!definition.has_job()) return refuse(Error("no job: a template's job is the job it renders"));
  const auto& job = definition.job();
  if (job.task_case() == v1::Job::TASK_NOT_SET) return refuse(Error("the job has no task"));
  if (job.has_sealed()) return refuse(Error("the job's task is sealed: a sealed task has no placeholders to fill"));
  if (!job.tenant().empty() && tenant_or_default(job.tenant()) != tenant_or_default(definition.tenant())) {
    return refuse(Error(fmt::format("the job names tenant '{}', the template '{}'", shown(job.tenant()),
                                    tenant_or_default(definition.tenant()))));
  }
  if (!job.template_().empty()) return refuse(Error("the job's `template` is set by kcron when it renders one"));
  if (job.attempt() != 0 || job.history_size() > 0 || job.has_flow() || job.has_schedule_run() || !job.submitted_by().empty()) {
    return refuse(Error("the job sets a field kcron sets (attempt, history, flow, schedule_run or submitted_by)"));
  }
  // Every placeholder names a declared parameter.
  v1::Job copy = job;
  auto declared = walk(copy, "job", [&](std::string& text, const std::string& path) -> Status {
    auto expanded = expand(text, path, [&](std::string_view name, std::string_view where) -> Result<std::string> {
      if (names.contains(name)) return std::string();
      return make_error("{}: '{{{{{}}}}}' is not a declared parameter", where, name);
    });
    if (!expanded) return expanded.error();
    return Status::success();
  });
  if (!declared) return refuse(declared.error());
  return Status::success();
}

Result<Params> parse_params(const std::vector<std::string>& assignments) {
  Params params;
  for (const auto& assignment : assignments) {
    const auto equals = assignment.find('=');
    if (equals == std::string::npos) return make_error("--param '{}': write name=value", shown(assignment));
    const std::string name = assignment.substr(0, equals);
    if (!is_valid_param_name(name)) {
      return make_error("--param '{}': a parameter name is 1-{} of [a-z0-9_], not starting with a digit", shown(assignment),
                        kMaxNameBytes);
    }
    if (!params.emplace(name, assignment.substr(equals + 1)).second) {
      return make_error("--param: parameter '{}' is given twice", name);
    }
  }
  return params;
}

Result<v1::Job> render(const v1::Template& definition, const Params& params) {
  if (auto valid = validate_template(definition); !valid) return valid.error();
  const auto refuse = [&](const Error& error) { return in_template(definition, error); };
  for (const auto& [name, value] : params) {
    if (param_named(definition, name) == nullptr) {
      return refuse(Error(fmt::format("unknown parameter '{}' (it declares: {})", shown(name), [&] {
        std::string declared;
        for (const auto& param : definition.params()) declared += (declared.empty() ? "" : ", ") + param.name();
        return declared.empty() ? std::string("none") : declared;
      }())));
    }
  }
  Params values;
  for (const auto& param : definition.params()) {
    const auto given = params.find(param.name());
    if (given != params.end() && given->second.empty() && param.required()) {
      return refuse(Error(fmt::format("required parameter '{}' is empty", param.name())));
    }
    if (given != params.end()) {
      if (auto valid = check_param_value(param, given->second); !valid) return refuse(valid.error());
      values.emplace(param.name(), given->second);
    } else if (param.required()) {
      return refuse(Error(fmt::format("required parameter '{}' is missing", param.name())));
    } else {
      values.emplace(param.name(), param.has_default_() ? param.default_() : std::string());
    }
  }
  v1::Job job = definition.job();
  auto rendered = walk(job, "job", [&](std::string& text, const std::string& path) -> Status {
    auto expanded = expand(text, path, [&](std::string_view name, std::string_view) -> Result<std::string> {
      return values.find(name)->second;  // declared: validate_template checked every placeholder
    });
    if (!expanded) return expanded.error();
    text = std::move(*expanded);
    return Status::success();
  });
  if (!rendered) return refuse(rendered.error());
  // A concrete job has no placeholder left (a value next to a brace of the job's text can make one).
  auto concrete = walk(job, "job", [](std::string& text, const std::string& path) -> Status {
    if (text.find(kOpen) != std::string::npos) return make_error("{}: the rendered text holds '{{{{'", path);
    return Status::success();
  });
  if (!concrete) return refuse(concrete.error());
  job.set_tenant(std::string(tenant_field(tenant_or_default(definition.tenant()))));
  job.set_template_(version_text(definition));
  if (job.ByteSizeLong() > kMaxRenderedBytes) {
    return refuse(Error(fmt::format("the rendered job is over {} bytes encoded", kMaxRenderedBytes)));
  }
  return job;
}

bool same_content(const v1::Template& left, const v1::Template& right) {
  auto normal = [](v1::Template definition) {
    definition.clear_written_by();
    definition.clear_written_at_ms();
    definition.set_tenant(std::string(tenant_field(tenant_or_default(definition.tenant()))));
    for (auto& param : *definition.mutable_params()) {
      if (param.type() == v1::TemplateParam::TYPE_UNSPECIFIED) param.set_type(v1::TemplateParam::STRING);
    }
    std::string bytes;
    google::protobuf::io::StringOutputStream stream(&bytes);
    google::protobuf::io::CodedOutputStream coded(&stream);
    coded.SetSerializationDeterministic(true);
    definition.SerializeToCodedStream(&coded);
    coded.Trim();
    return bytes;
  };
  return normal(left) == normal(right);
}

Result<bool> is_new_version(const Catalog& catalog, const v1::Template& definition) {
  if (const auto* reason = catalog.unusable(definition.tenant(), definition.name(), definition.version())) {
    return make_error("template '{}' version {} is on kcron.templates, but its record cannot be read here ({}); write version {}",
                      definition.name(), definition.version(), *reason, definition.version() + 1);
  }
  const auto* existing = catalog.find(definition.tenant(), definition.name(), definition.version());
  if (existing == nullptr) return true;
  if (same_content(*existing, definition)) return false;
  const auto* latest = catalog.latest(definition.tenant(), definition.name());
  return make_error("template '{}' version {} already exists with different content; write version {}", definition.name(),
                    definition.version(), latest->version() + 1);
}

Status Catalog::apply(std::string_view key, std::string_view value, std::string_view content_type, bool tombstone) {
  const auto scoped = split_scoped_key(key);
  const std::pair<std::string, std::string> at{tenant_name(scoped.tenant), std::string(scoped.id)};
  unusable_.erase(at);
  auto status = apply_record(key, value, content_type, tombstone);
  if (!status && !tombstone && parse_ref(scoped.id, true)) unusable_.emplace(at, status.error().message());
  return status;
}

const std::string* Catalog::unusable(std::string_view tenant, std::string_view name, std::uint32_t version) const {
  const auto found =
      unusable_.find(std::pair<std::string, std::string>{tenant_name(tenant), fmt::format("{}@{}", name, version)});
  return found == unusable_.end() ? nullptr : &found->second;
}

Status Catalog::apply_record(std::string_view key, std::string_view value, std::string_view content_type, bool tombstone) {
  const auto scoped = split_scoped_key(key);
  if (tombstone) {
    auto ref = parse_ref(scoped.id, true);
    if (!ref) return make_error("a tombstone of key '{}': {}", shown(key), ref.error().message());
    const auto tenant = templates_.find(tenant_name(scoped.tenant));
    if (tenant == templates_.end()) return Status::success();
    const auto name = tenant->second.find(ref->name);
    if (name != tenant->second.end()) name->second.erase(ref->version);
    return Status::success();
  }
  v1::Template definition;
  if (auto decoded = decode_message(value, content_type, definition); !decoded) return decoded.error();
  if (auto valid = validate_template(definition); !valid) return valid;
  if (template_key(definition.tenant(), definition.name(), definition.version()) != key) {
    return make_error("key '{}' does not name the template it holds ('{}' of tenant '{}')", shown(key), version_text(definition),
                      tenant_or_default(definition.tenant()));
  }
  put(definition);
  return Status::success();
}

Catalog Catalog::subset(std::string_view tenant, const std::vector<Ref>& refs) const {
  Catalog copy;
  for (const auto& ref : refs) {
    if (const auto* found = find(tenant, ref.name, ref.version)) {
      copy.templates_[tenant_name(tenant)][ref.name][ref.version] = *found;
    } else if (const auto* reason = unusable(tenant, ref.name, ref.version)) {
      copy.unusable_.emplace(std::pair<std::string, std::string>{tenant_name(tenant), ref.text()}, *reason);
    }
  }
  return copy;
}

const Ref* Catalog::first_missing(std::string_view tenant, const std::vector<Ref>& refs) const {
  for (const auto& ref : refs) {
    if (find(tenant, ref.name, ref.version) == nullptr && unusable(tenant, ref.name, ref.version) == nullptr) return &ref;
  }
  return nullptr;
}

void Catalog::put(const v1::Template& definition) {
  templates_[tenant_name(definition.tenant())][definition.name()][definition.version()] = definition;
}

const v1::Template* Catalog::find(std::string_view tenant, std::string_view name, std::uint32_t version) const {
  const auto of_tenant = templates_.find(tenant_name(tenant));
  if (of_tenant == templates_.end()) return nullptr;
  const auto of_name = of_tenant->second.find(name);
  if (of_name == of_tenant->second.end()) return nullptr;
  const auto found = of_name->second.find(version);
  return found == of_name->second.end() ? nullptr : &found->second;
}

const v1::Template* Catalog::latest(std::string_view tenant, std::string_view name) const {
  const auto all = versions(tenant, name);
  return all.empty() ? nullptr : all.back();
}

std::vector<const v1::Template*> Catalog::versions(std::string_view tenant, std::string_view name) const {
  std::vector<const v1::Template*> out;
  const auto of_tenant = templates_.find(tenant_name(tenant));
  if (of_tenant == templates_.end()) return out;
  const auto of_name = of_tenant->second.find(name);
  if (of_name == of_tenant->second.end()) return out;
  for (const auto& [version, definition] : of_name->second) out.push_back(&definition);
  return out;
}

std::vector<const v1::Template*> Catalog::latest_of_each(std::string_view tenant) const {
  std::vector<const v1::Template*> out;
  const auto of_tenant = templates_.find(tenant_name(tenant));
  if (of_tenant == templates_.end()) return out;
  for (const auto& [name, versions] : of_tenant->second) {
    if (!versions.empty()) out.push_back(&versions.rbegin()->second);
  }
  return out;
}

namespace {

// A template node's version after checking the node's shape; the error names the node.
Result<Ref> node_ref(const v1::FlowNode& node) {
  const std::string where = fmt::format("node '{}'", shown(node.name()));
  if (node.has_job()) return make_error("{}: set job or template_ref, not both", where);
  auto ref = parse_ref(node.template_ref().ref(), true);
  if (!ref) return ref.error().within(where + ": template_ref");
  for (const auto& [name, value] : node.template_ref().params()) {
    if (!is_valid_param_name(name)) {
      return make_error("{}: template_ref: '{}' is not a parameter name ([a-z0-9_], not starting with a digit)", where,
                        shown(name));
    }
    if (value.size() > kMaxValueBytes) {
      return make_error("{}: template_ref: the value of parameter '{}' is longer than {} bytes", where, name, kMaxValueBytes);
    }
  }
  return ref;
}

}  // namespace

Result<std::vector<Ref>> flow_template_refs(const v1::Flow& flow) {
  std::vector<Ref> refs;
  for (const auto& node : flow.nodes()) {
    if (!node.has_template_ref()) continue;
    auto ref = node_ref(node);
    if (!ref) return ref.error();
    if (std::none_of(refs.begin(), refs.end(), [&](const Ref& known) { return known.text() == ref->text(); })) {
      refs.push_back(std::move(*ref));
    }
  }
  return refs;
}

Result<FlowRender> render_flow_nodes(v1::Flow& flow, const Catalog& catalog, std::string_view tenant, std::size_t max_bytes,
                                     RenderFailure* failure) {
  const auto fail_at = [&](int at, Error error, bool too_large = false) -> Result<FlowRender> {
    if (failure != nullptr) *failure = RenderFailure{at, too_large};
    return error;
  };
  if (failure != nullptr) *failure = RenderFailure{};
  // First every node's shape and version: nothing is rendered while a version is missing.
  std::vector<std::pair<int, const v1::Template*>> found;  // node index -> its version
  for (int at = 0; at < flow.nodes_size(); ++at) {
    const auto& node = flow.nodes(at);
    if (!node.has_template_ref()) continue;
    auto ref = node_ref(node);
    if (!ref) return fail_at(at, ref.error());
    const v1::Template* version = catalog.find(tenant, ref->name, ref->version);
    if (version == nullptr) {
      if (const auto* reason = catalog.unusable(tenant, ref->name, ref->version)) {
        return fail_at(at,
                       make_error("node '{}': template '{}' cannot be read here: {}", shown(node.name()), ref->text(), *reason));
      }
      FlowRender outcome;
      outcome.missing_node = node.name();
      outcome.missing = std::move(*ref);
      return outcome;
    }
    found.emplace_back(at, version);
  }
  std::vector<std::pair<int, v1::Job>> jobs;  // node index -> its rendered job
  std::size_t total = 0;
  for (const auto& [at, version] : found) {
    const auto& node = flow.nodes(at);
    const std::string where = fmt::format("node '{}'", shown(node.name()));
    const Params params(node.template_ref().params().begin(), node.template_ref().params().end());
    auto job = render(*version, params);
    if (!job) return fail_at(at, job.error().within(where));
    job->clear_id();
    job->clear_tenant();
    total += job->ByteSizeLong();
    if (total > max_bytes) {
      return fail_at(at,
                     make_error("{}: template '{}@{}': the flow's rendered jobs come to more than {} bytes (the record "
                                "limit) at this node; render fewer or smaller jobs",
                                where, version->name(), version->version(), max_bytes),
                     true);
    }
    jobs.emplace_back(at, std::move(*job));
  }
  for (auto& [at, job] : jobs) {
    auto& node = *flow.mutable_nodes(at);
    *node.mutable_job() = std::move(job);
    node.clear_template_ref();
  }
  FlowRender outcome;
  outcome.rendered = jobs.size();
  return outcome;
}

std::optional<RenderedFlowProblem> check_rendered_flow(const v1::Flow& flow, const RenderedFlowRules& rules) {
  for (int at = 0; at < flow.nodes_size(); ++at) {
    const auto& job = flow.nodes(at).job();
    if (job.template_().empty()) continue;
    const auto refused = [&](std::string field, std::string_view why) {
      return RenderedFlowProblem{at, std::move(field),
                                 fmt::format("node '{}': template '{}' renders a job that is refused: {}",
                                             shown(flow.nodes(at).name()), job.template_(), why),
                                 false};
    };
    if (job.task_case() == v1::Job::TASK_NOT_SET) {
      return refused("task", "a job needs a task: one of noop, sleep, exec, http, kafka, handler");
    }
    const std::string queue = job.queue().empty() ? "default" : job.queue();
    if (rules.queues != nullptr && !rules.queues->contains(queue)) {
      return refused("queue", fmt::format("unknown queue '{}'", shown(queue)));
    }
    if (job.has_priority() && job.priority() > 9)
      return refused("priority", fmt::format("priority {} is outside 0-9", job.priority()));
    if (rules.refuse_run_at && (job.when_case() == v1::Job::kRunAt || job.when_case() == v1::Job::kRunAtMs)) {
      return refused("run_at", "run_at would be the same instant for every run; use delay (counted from the run's start)");
    }
  }
  if (const auto bytes = flow.ByteSizeLong() + rules.overhead_bytes; bytes > rules.max_record_bytes) {
    return RenderedFlowProblem{
        -1, "", fmt::format("the flow, rendered, is {} bytes, over the record limit of {} bytes", bytes, rules.max_record_bytes),
        true};
  }
  return std::nullopt;
}

}  // namespace kcron::templates
