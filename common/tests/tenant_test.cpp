#include "kcron/tenant.h"

#include <algorithm>
#include <catch2/catch.hpp>
#include <string>
#include <vector>

using namespace kcron;

TEST_CASE("the default tenant keeps bare ids, any other tenant's keys are <tenant>~<id>") {
  CHECK(scoped_key("", "nightly-report") == "nightly-report");
  CHECK(scoped_key("default", "nightly-report") == "nightly-report");
  CHECK(scoped_key("acme", "nightly-report") == "acme~nightly-report");
  CHECK(scoped_key("a", "nightly@2026-12-06T09:00:00Z") == "a~nightly@2026-12-06T09:00:00Z");
}

TEST_CASE("a key splits back into its tenant and id, for every id, including ids with '~'") {
  const std::vector<std::string> tenants = {"default", "a", "ab", "acme-prod", "0", std::string(40, 'z')};
  const std::vector<std::string> ids = {
      "x", "same-id", "a~b", "~", "x~", "report@2026-01-01T00:00:00Z", "etl/load", std::string(256, 'i')};
  for (const auto& tenant : tenants) {
    for (const auto& id : ids) {
      if (tenant == "default" && !validate_default_tenant_id(id)) continue;  // refused on submit
      const auto key = scoped_key(tenant, id);
      const auto split = split_scoped_key(key);
      INFO(tenant << " / " << id << " -> " << key);
      CHECK(split.tenant == tenant);
      CHECK(split.id == id);
    }
  }
}

TEST_CASE("tenants a and ab never share a key, whatever their ids") {
  // `a~b~x` is tenant a's `b~x`; tenant ab's keys start with `ab~`.
  CHECK(scoped_key("a", "b~x") != scoped_key("ab", "x"));
  CHECK(split_scoped_key("a~b~x").tenant == "a");
  CHECK(split_scoped_key("ab~x").tenant == "ab");
  CHECK(scoped_key("a", "same-id") != scoped_key("ab", "same-id"));
}

TEST_CASE("a key whose prefix is not a tenant name belongs to the default tenant whole") {
  for (const std::string_view key : {"Acme~x", "-a~x", "a b~x", "report@10:00~x", "~x", "default~x"}) {
    INFO(key);
    CHECK(split_scoped_key(key).tenant == "default");
    CHECK(split_scoped_key(key).id == key);
  }
  CHECK(split_scoped_key(std::string(41, 'z') + "~x").tenant == "default");
}

TEST_CASE("tenant names are 1-40 of a-z, 0-9 and '-', not starting with '-', and say what is wrong") {
  CHECK(validate_tenant_name("acme"));
  CHECK(validate_tenant_name("team-42"));
  CHECK(validate_tenant_name(std::string(40, 'a')));
  CHECK(validate_tenant_name("").error().message() == "tenant name is empty");
  CHECK(validate_tenant_name(std::string(41, 'a')).error().message() == "tenant name of 41 bytes exceeds 40 bytes");
  CHECK(validate_tenant_name("-x").error().message() == "tenant name '-x' starts with '-'");
  CHECK(validate_tenant_name("Acme").error().message() == "tenant name \"Acme\" has \"A\": only a-z, 0-9 and '-' are allowed");
  CHECK_FALSE(validate_tenant_name("a~b"));
  CHECK_FALSE(validate_tenant_name("a/b"));
}

TEST_CASE("a default-tenant id that would read as another tenant's key is refused, with the reason") {
  CHECK(validate_default_tenant_id("nightly-report"));
  CHECK(validate_default_tenant_id("Mail~x"));     // not a tenant name before '~'
  CHECK(validate_default_tenant_id("default~x"));  // "default" names the default tenant: still bare
  CHECK(validate_default_tenant_id("~x"));
  CHECK(validate_default_tenant_id("acme~x").error().message() ==
        "id \"acme~x\" of the default tenant reads as tenant 'acme''s id \"x\" ('<tenant>~' starts another tenant's keys)");
}

TEST_CASE("keys of one tenant sort together, so a prefix scan finds all of a tenant's entries") {
  std::vector<std::string> keys = {
      scoped_key("b", "1"), scoped_key("a", "2"), scoped_key("ab", "1"), scoped_key("a", "1"), "zeta", scoped_key("a", "~3")};
  std::sort(keys.begin(), keys.end());
  const std::string prefix = "a~";
  const auto first = std::find_if(keys.begin(), keys.end(), [&](const auto& key) { return key.starts_with(prefix); });
  const auto last = std::find_if(first, keys.end(), [&](const auto& key) { return !key.starts_with(prefix); });
  CHECK(std::distance(first, last) == 3);
  CHECK(std::all_of(first, last, [](const auto& key) { return split_scoped_key(key).tenant == "a"; }));
}
