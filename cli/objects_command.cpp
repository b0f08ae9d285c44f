#include "objects_command.h"

#include <fmt/format.h>

#include <chrono>
#include <iostream>
#include <set>

#include "inspect_command.h"
#include "kcron/codec.h"
#include "kcron/topics.h"
#include "objects/s3_store.h"

namespace kcron::cli {
namespace {

int fail(std::ostream& err, const std::string& message) {
  err << "kcron: " << message << "\n";
  return 1;
}

void add_refs(const v1::Result& result, const std::string& bucket, std::set<std::string>& keys) {
  for (const auto& ref : result.objects()) {
    auto location = worker::parse_object_uri(ref.uri());
    if (location && location->bucket == bucket) keys.insert(location->key);
  }
}

std::string age(std::int64_t now_ms, std::int64_t modified_ms) {
  if (modified_ms <= 0) return "age unknown";
  const auto minutes = (now_ms - modified_ms) / 60000;
  if (minutes < 120) return fmt::format("{} min old", minutes);
  return fmt::format("{} h old", minutes / 60);
}

}  // namespace

ObjectsCommands::ObjectsCommands(CLI::App& app) {
  auto* objects = app.add_subcommand("objects", "the object store of large outputs (docs/large-results.md)");
  objects->require_subcommand(1);
  sweep_ = objects->add_subcommand(
      "sweep", "delete stored outputs no committed result names, older than a grace period (an upload in flight is younger)");
  sweep_->add_option("--older-than", older_than_, "the grace: only objects older than this go, e.g. 24h, 90m, 7d (default 24h)");
  sweep_->add_flag("--dry-run", dry_run_, "print what would be deleted, delete nothing");
  sweep_->add_flag("--force", force_,
                   "allow a grace under 1h (a result's transaction may still be open), and deleting when no result was read");
}

int ObjectsCommands::run(const Config& config, std::ostream& out, std::ostream& err) const {
  auto grace = worker::parse_grace(older_than_);
  if (!grace) return fail(err, "--older-than: " + grace.error().message());
  if (*grace < std::chrono::hours(1) && !force_) {
    return fail(err, fmt::format("--older-than {} is under 1h: an upload whose result's transaction is still open (up to the "
                                 "producers' transaction.timeout.ms) would look unreferenced; add --force to sweep anyway",
                                 older_than_));
  }
  auto settings = worker::object_settings_from(config);
  if (!settings) return fail(err, settings.error().message());
  if (!settings->enabled()) {
    return fail(err, "no object store: set objects.endpoint and objects.credentials_file (--set or KCRON_OBJECTS_*)");
  }
  auto store = worker::make_s3_store(*settings);
  if (!store) return fail(err, store.error().message());
  // The listing first, the results after: a result committed before an object was listed is read
  // below; one committed later belongs to an upload younger than the grace.
  const auto now_ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
  auto objects = (*store)->list("");
  if (!objects) return fail(err, objects.error().message());
  const TopicNames names(config.get("topic_prefix"));
  std::set<std::string> referenced;
  auto results = read_to_end(config, names.results());
  if (!results) return fail(err, fmt::format("{} (nothing deleted)", results.error().message()));
  std::size_t result_count = 0;
  // A record that does not decode may name objects: nothing is deleted on a guess.
  const auto unreadable = [&](const std::string& topic, const Error& error) {
    return fail(err, fmt::format("a record of {} does not decode ({}): nothing deleted", topic, error.message()));
  };
  for (const auto& record : *results) {
    v1::Result result;
    if (record.tombstone) continue;
    if (auto decoded = decode_message(record.value, record.content_type, result); !decoded) {
      return unreadable(names.results(), decoded.error());
    }
    ++result_count;
    add_refs(result, settings->bucket, referenced);
  }
  // A dead letter keeps its job's history of results (refs included): what it names stays too.
  auto dead = read_to_end(config, names.dead_letters());
  if (!dead) return fail(err, fmt::format("{} (nothing deleted)", dead.error().message()));
  for (const auto& record : *dead) {
    v1::DeadLetter letter;
    if (record.tombstone) continue;
    if (auto decoded = decode_message(record.value, record.content_type, letter); !decoded) {
      return unreadable(names.dead_letters(), decoded.error());
    }
    for (const auto& result : letter.history()) add_refs(result, settings->bucket, referenced);
  }
  const auto plan = worker::plan_sweep(*objects, referenced, now_ms, *grace);
  if (result_count == 0 && !plan.remove.empty() && !force_) {
    return fail(err, fmt::format("no committed result was read from {}, yet {} objects are older than {}: is topic_prefix this "
                                 "deployment's? (--force deletes them anyway; nothing deleted)",
                                 names.results(), plan.remove.size(), older_than_));
  }
  for (const auto& object : plan.foreign) out << fmt::format("keep {}: not a kcron output's key\n", object.key);
  for (const auto& object : plan.referenced)
    out << fmt::format("keep {} ({} bytes): a committed result names it\n", object.key, object.size);
  for (const auto& object : plan.young) {
    out << fmt::format("keep {} ({} bytes, {}): younger than {}\n", object.key, object.size, age(now_ms, object.modified_ms),
                       older_than_);
  }
  std::size_t failed = 0;
  std::uint64_t freed = 0;
  for (const auto& object : plan.remove) {
    if (dry_run_) {
      out << fmt::format("would delete {} ({} bytes, {})\n", object.key, object.size, age(now_ms, object.modified_ms));
      continue;
    }
    if (auto removed = (*store)->remove(object.key); !removed) {
      ++failed;
      err << "kcron: " << removed.error().message() << "\n";
      continue;
    }
    freed += object.size;
    out << fmt::format("deleted {} ({} bytes, {})\n", object.key, object.size, age(now_ms, object.modified_ms));
  }
  out << fmt::format(
      "{}: {} objects in s3://{}, {} results read; {} named by a result, {} not kcron's, {} younger than {}, {} {}{}\n",
      dry_run_ ? "dry run" : "sweep", objects->size(), settings->bucket, result_count, plan.referenced.size(),
      plan.foreign.size(), plan.young.size(), older_than_, plan.remove.size() - failed, dry_run_ ? "to delete" : "deleted",
      dry_run_ ? "" : fmt::format(" ({} bytes)", freed));
  if (failed > 0) return fail(err, fmt::format("{} objects could not be deleted (above)", failed));
  return 0;
}

}  // namespace kcron::cli
