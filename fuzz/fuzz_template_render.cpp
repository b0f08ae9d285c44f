// libFuzzer target: a kcron.templates record through the catalog (decode, validate, key check),
// then rendered with parameters from the input. Whatever the bytes, nothing crashes; a rendered
// job carries its template's name@version and no placeholder opening.
#include <google/protobuf/stubs/logging.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "kcron/templates.h"

// Protobuf logs every invalid UTF-8 string it refuses; that much stderr slows the fuzzer down.
extern "C" int LLVMFuzzerInitialize(int* /*argc*/, char*** /*argv*/) {
  google::protobuf::SetLogHandler([](google::protobuf::LogLevel, const char*, int, const std::string&) {});
  return 0;
}

// Input: <params>\0<template bytes>; params are `name=value` lines.
extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const auto split = input.find('\0');
  if (split == std::string_view::npos) return 0;
  std::vector<std::string> assignments;
  std::string_view lines = input.substr(0, split);
  while (!lines.empty()) {
    const auto end = lines.find('\n');
    assignments.emplace_back(lines.substr(0, end));
    lines = end == std::string_view::npos ? std::string_view() : lines.substr(end + 1);
  }
  const std::string_view value = input.substr(split + 1);
  kcron::v1::Template definition;
  if (!definition.ParseFromArray(value.data(), static_cast<int>(value.size()))) return 0;
  kcron::templates::Catalog catalog;
  const auto key = kcron::templates::template_key(definition.tenant(), definition.name(), definition.version());
  if (!catalog.apply(key, value, "application/x-protobuf", false)) return 0;
  const auto* stored = catalog.find(definition.tenant(), definition.name(), definition.version());
  if (stored == nullptr) std::abort();
  auto params = kcron::templates::parse_params(assignments);
  if (!params) return 0;
  auto job = kcron::templates::render(*stored, *params);
  if (!job) {
    if (job.error().message().empty()) std::abort();
    return 0;
  }
  if (job->template_() != definition.name() + "@" + std::to_string(definition.version())) std::abort();
  return 0;
}
