#include "template_command.h"

#include <fmt/format.h>
#include <pwd.h>
#include <unistd.h>

#include <fstream>
#include <iostream>
#include <iterator>
#include <sstream>
#include <thread>

#include "inspect_command.h"
#include "kcron/codec.h"
#include "kcron/kafka.h"
#include "kcron/out_record.h"
#include "kcron/tenant.h"
#include "kcron/topics.h"
#include "text.h"

namespace kcron::cli {
namespace {

constexpr int kFlushTimeoutMs = 15000;
constexpr Millis kRereadInterval{500};

int fail(std::ostream& err, const std::string& message) {
  err << "kcron: " << message << "\n";
  return 1;
}

Result<std::string> read_source(const std::string& source) {
  if (source == "-") return std::string(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
  if (!source.empty() && source.front() == '{') return source;
  std::ifstream file(source);
  if (!file) return make_error("cannot read '{}'", source);
  std::ostringstream text;
  text << file.rdbuf();
  return text.str();
}

// The tenant the command acts in, and the one a body names, which must agree.
Result<std::string> tenant_for(const Config& config, std::string_view named) {
  const std::string given = config.get("tenant");
  const std::string tenant(tenant_or_default(given));
  if (named.empty() || tenant_or_default(named) == tenant) return tenant;
  if (given.empty()) return std::string(named);
  return make_error("the template names tenant '{}' but --tenant is '{}'", named, tenant);
}

// Who writes, as far as the CLI knows: the Kafka SASL user when one is configured, else the
// operating system's user. Not verified by anything: a record of who ran the command.
std::string writer(const Config& config) {
  const auto properties = kafka::client_properties(config, "kcron-cli");
  if (const auto sasl = properties.find("sasl.username"); sasl != properties.end() && !sasl->second.empty()) {
    return "kafka:User:" + sasl->second;
  }
  const passwd* entry = getpwuid(geteuid());  // NOLINT(concurrency-mt-unsafe): one thread
  if (entry != nullptr && entry->pw_name != nullptr) return std::string("cli:") + entry->pw_name;
  return "cli:uid " + std::to_string(geteuid());
}

Status write_template(const Config& config, const v1::Template& definition) {
  const TopicNames names(config.get("topic_prefix"));
  std::vector<std::pair<std::string, std::string>> headers = {
      {std::string(header::kType), "template"}, {std::string(header::kContentType), std::string(header::kProtobuf)}};
  if (!is_default_tenant(definition.tenant())) headers.emplace_back(header::kTenant, definition.tenant());
  const OutRecord record{
      names.templates(),  -1,    templates::template_key(definition.tenant(), definition.name(), definition.version()),
      encode(definition), false, std::move(headers)};
  auto producer = kafka::make_producer(kafka::client_properties(config, "kcron-cli"), "");
  if (!producer) return producer.error();
  if (auto status = kafka::produce(**producer, record); !status) return status;
  if ((*producer)->flush(kFlushTimeoutMs) != RdKafka::ERR_NO_ERROR) {
    return make_error("the template record was not acknowledged within {} s", kFlushTimeoutMs / 1000);
  }
  return Status::success();
}

std::string params_text(const v1::Template& definition) {
  std::string text;
  for (const auto& param : definition.params()) {
    if (!text.empty()) text += ' ';
    text += param.name();
    text += ':';
    const auto type = v1::TemplateParam::Type_Name(param.type());
    text += param.type() == v1::TemplateParam::TYPE_UNSPECIFIED ? "STRING" : type;
    if (param.required()) text += '!';
    if (param.has_default_()) text += "=" + param.default_();
  }
  return text.empty() ? "-" : text;
}

}  // namespace

// The catalog as kcron.templates holds it now; records that do not apply are skipped (a writer
// checks every template it writes, so one only comes from elsewhere).
Result<templates::Catalog> read_catalog(const Config& config) {
  auto records = read_to_end(config, TopicNames(config.get("topic_prefix")).templates());
  if (!records) return records.error();
  templates::Catalog catalog;
  for (const auto& record : *records) {
    (void)catalog.apply(record.key, record.value, record.content_type, record.tombstone);
  }
  return catalog;
}

Result<v1::Template> find_template(const Config& config, std::string_view tenant, const templates::Ref& ref, Millis wait) {
  const auto deadline = std::chrono::steady_clock::now() + wait;
  while (true) {
    auto catalog = read_catalog(config);
    if (!catalog) return catalog.error();
    const auto* found = ref.version == 0 ? catalog->latest(tenant, ref.name) : catalog->find(tenant, ref.name, ref.version);
    if (found != nullptr) return *found;
    if (const auto* reason = ref.version == 0 ? nullptr : catalog->unusable(tenant, ref.name, ref.version)) {
      return make_error("template '{}' version {} cannot be read here: {}", ref.name, ref.version, *reason);
    }
    if (ref.version == 0 || std::chrono::steady_clock::now() >= deadline) {
      std::string there;
      for (const auto* version : catalog->versions(tenant, ref.name)) {
        there += (there.empty() ? "" : ", ") + std::to_string(version->version());
      }
      const std::string whose = is_default_tenant(tenant) ? "" : fmt::format(" of tenant '{}'", tenant);
      if (ref.version == 0) return make_error("template '{}'{} does not exist", ref.name, whose);
      const std::string waited = wait.count() > 0 ? fmt::format("waited {} ms for it; ", wait.count()) : std::string();
      return make_error("template '{}'{} has no version {} ({}its versions: {})", ref.name, whose, ref.version, waited,
                        there.empty() ? "none" : there);
    }
    std::this_thread::sleep_for(kRereadInterval);
  }
}

TemplateCommands::TemplateCommands(CLI::App& app) {
  auto* command =
      app.add_subcommand("template", "job templates on kcron.templates: put a version, read them (docs/templates.md)");
  command->require_subcommand(1);
  put_ = command->add_subcommand(
      "put", "write a template version (JSON Template; a file, '-' for stdin, or the JSON itself); versions are immutable");
  put_->add_option("template", input_, "e.g. report.json")->required();
  get_ = command->add_subcommand("get", "print a template version as JSON (the latest without @VERSION)");
  get_->add_option("ref", ref_, "NAME or NAME@VERSION")->required();
  list_ = command->add_subcommand("list", "the tenant's templates: each one's latest version and its parameters");
  versions_ = command->add_subcommand("versions", "every version of a template: who wrote it and when");
  versions_->add_option("name", name_, "the template's name")->required();
}

bool TemplateCommands::parsed() const {
  return put_->parsed() || get_->parsed() || list_->parsed() || versions_->parsed();
}

int TemplateCommands::run(const Config& config, std::ostream& out, std::ostream& err) const {
  if (put_->parsed()) {
    auto text = read_source(input_);
    if (!text) return fail(err, text.error().message());
    v1::Template definition;
    if (auto decoded = decode_message(*text, header::kJson, definition); !decoded) return fail(err, decoded.error().message());
    auto tenant = tenant_for(config, definition.tenant());
    if (!tenant) return fail(err, tenant.error().message());
    definition.set_tenant(std::string(tenant_field(*tenant)));
    definition.clear_written_by();
    definition.clear_written_at_ms();
    if (auto valid = templates::validate_template(definition); !valid) return fail(err, valid.error().message());
    auto catalog = read_catalog(config);
    if (!catalog) return fail(err, catalog.error().message());
    auto fresh = templates::is_new_version(*catalog, definition);
    if (!fresh) return fail(err, fresh.error().message());
    const std::string where = is_default_tenant(*tenant) ? "" : " for tenant " + *tenant;
    if (!*fresh) {
      const auto* existing = catalog->find(*tenant, definition.name(), definition.version());
      out << fmt::format("template {}@{}{} is already there with this content (written by {} at {})\n", definition.name(),
                         definition.version(), where, existing->written_by().empty() ? "-" : existing->written_by(),
                         rfc3339_ms(existing->written_at_ms()));
      return 0;
    }
    definition.set_written_by(writer(config));
    definition.set_written_at_ms(to_epoch_ms(SystemClock::instance().now()));
    if (auto written = write_template(config, definition); !written) return fail(err, written.error().message());
    out << fmt::format("put template {}@{}{}\n", definition.name(), definition.version(), where);
    return 0;
  }
  const std::string tenant(tenant_or_default(config.get("tenant")));
  if (auto valid = validate_tenant_name(tenant); !valid) return fail(err, valid.error().message());
  if (get_->parsed()) {
    auto ref = templates::parse_ref(ref_, false);
    if (!ref) return fail(err, ref.error().message());
    auto found = find_template(config, tenant, *ref, Millis(0));
    if (!found) return fail(err, found.error().message());
    out << to_json(*found) << "\n";
    return 0;
  }
  auto catalog = read_catalog(config);
  if (!catalog) return fail(err, catalog.error().message());
  if (list_->parsed()) {
    const auto latest = catalog->latest_of_each(tenant);
    if (latest.empty()) {
      out << "no templates" << (is_default_tenant(tenant) ? "" : " for tenant " + tenant) << "\n";
      return 0;
    }
    out << fmt::format("{:<32} {:>7} {:>8}  {}\n", "NAME", "LATEST", "VERSIONS", "PARAMS (name:type, ! required, =default)");
    for (const auto* definition : latest) {
      out << fmt::format("{:<32} {:>7} {:>8}  {}\n", definition->name(), definition->version(),
                         catalog->versions(tenant, definition->name()).size(), params_text(*definition));
    }
    return 0;
  }
  const auto all = catalog->versions(tenant, name_);
  if (all.empty()) {
    return fail(err, fmt::format("template '{}'{} does not exist", name_,
                                 is_default_tenant(tenant) ? "" : fmt::format(" of tenant '{}'", tenant)));
  }
  out << fmt::format("{:>7}  {:<24}  {:<24}  {}\n", "VERSION", "WRITTEN", "BY", "DESCRIPTION");
  for (const auto* definition : all) {
    out << fmt::format("{:>7}  {:<24}  {:<24}  {}\n", definition->version(), rfc3339_ms(definition->written_at_ms()),
                       definition->written_by().empty() ? "-" : definition->written_by(), definition->description());
  }
  return 0;
}

}  // namespace kcron::cli
