#include "template_wait.h"

#include <catch2/catch.hpp>

using namespace kcron;
using kcron::cli::CatalogWait;
using kcron::cli::read_catalog_until;

namespace {

v1::Template version(std::string name, std::uint32_t number) {
  v1::Template definition;
  definition.set_name(std::move(name));
  definition.set_version(number);
  definition.mutable_job()->mutable_noop();
  return definition;
}

}  // namespace

TEST_CASE("waiting for several missing versions takes one deadline for all of them") {
  int reads = 0;
  Millis slept{0};
  const std::vector<templates::Ref> refs{{"a", 1}, {"b", 1}, {"c", 1}};
  CatalogWait wait{Millis(2000), Millis(500), [&](Millis pause) { slept += pause; }};
  auto catalog = read_catalog_until(
      [&]() -> Result<templates::Catalog> {
        ++reads;
        return templates::Catalog();
      },
      "", refs, wait);
  REQUIRE(catalog);
  CHECK(catalog->first_missing("", refs) != nullptr);
  CHECK(reads == 5);  // 2000 / 500 + 1, not one wait per version
  CHECK(slept == Millis(2000));
}

TEST_CASE("the catalog is read once when every version is there, and again only while one is missing") {
  int reads = 0;
  const std::vector<templates::Ref> refs{{"a", 1}, {"b", 2}};
  CatalogWait wait{Millis(5000), Millis(500), [](Millis) {}};
  auto catalog = read_catalog_until(
      [&]() -> Result<templates::Catalog> {
        ++reads;
        templates::Catalog read;
        read.put(version("a", 1));
        if (reads >= 3) read.put(version("b", 2));  // arrives on the third read
        return read;
      },
      "", refs, wait);
  REQUIRE(catalog);
  CHECK(catalog->first_missing("", refs) == nullptr);
  CHECK(reads == 3);
}

TEST_CASE("no wait reads the catalog once and a read error is returned at once") {
  int reads = 0;
  const std::vector<templates::Ref> refs{{"a", 1}};
  auto once = read_catalog_until(
      [&]() -> Result<templates::Catalog> {
        ++reads;
        return templates::Catalog();
      },
      "", refs, CatalogWait{Millis(0), Millis(500), [](Millis) {}});
  REQUIRE(once);
  CHECK(reads == 1);
  auto failed = read_catalog_until([]() -> Result<templates::Catalog> { return make_error("broker down"); }, "", refs,
                                   CatalogWait{Millis(5000), Millis(500), [](Millis) {}});
  REQUIRE_FALSE(failed);
  CHECK(failed.error().message() == "broker down");
}

TEST_CASE("a missing version's message names the versions there are and the wait") {
  templates::Catalog catalog;
  catalog.put(version("report", 1));
  catalog.put(version("report", 2));
  CHECK(cli::missing_version(catalog, "", {"report", 3}, Millis(2000)) ==
        "template 'report' has no version 3 (waited 2000 ms for it; its versions: 1, 2)");
}
