#include "kcron/sealing.h"

#include <catch2/catch.hpp>
#include <string>

namespace {

const std::string kCanary = "CANARY-7f3e1d-never-in-clear";

kcron::v1::Job exec_job(const std::string& id) {
  kcron::v1::Job job;
  job.set_id(id);
  job.set_tenant("a");
  auto* exec = job.mutable_exec();
  exec->add_argv("/bin/sh");
  exec->add_argv("-c");
  exec->add_argv("exit 0 # " + kCanary);
  (*exec->mutable_env())["TOKEN"] = "env-" + kCanary;
  job.set_payload("payload-" + kCanary);
  return job;
}

std::string master() {
  std::string key(kcron::kSealingKeyBytes, '\x42');
  return key;
}

kcron::Keyring keyring_with(int versions) {
  kcron::v1::TenantSettings settings;
  for (int version = 1; version <= versions; ++version) {
    auto key = kcron::new_sealing_key(master(), "a", static_cast<std::uint32_t>(version), 1000);
    REQUIRE(key.ok());
    *settings.add_sealing_keys() = *key;
  }
  auto keyring = kcron::keyring_of(master(), "a", settings);
  REQUIRE(keyring.ok());
  return *keyring;
}

}  // namespace

TEST_CASE("a sealed job holds no task text, and opens back to its task and payload", "[sealing]") {
  const auto keyring = keyring_with(1);
  auto job = exec_job("j1");
  const auto original = job;
  REQUIRE(kcron::seal_job(job, keyring, kcron::sealing_origin_of(job)).ok());
  CHECK(job.has_sealed());
  CHECK(job.payload().empty());
  CHECK(job.SerializeAsString().find("CANARY") == std::string::npos);
  CHECK(job.sealed().key_version() == 1);
  REQUIRE(kcron::open_job(job, keyring, kcron::sealing_origin_of(job)).ok());
  CHECK(job.exec().argv(2) == original.exec().argv(2));
  CHECK(job.exec().env().at("TOKEN") == "env-" + kCanary);
  CHECK(job.payload() == original.payload());
}

TEST_CASE("a sealed task moved to another job, schedule or tenant does not open, and the error quotes none of it", "[sealing]") {
  const auto keyring = keyring_with(1);
  auto job = exec_job("j1");
  REQUIRE(kcron::seal_job(job, keyring, kcron::sealing_origin_of(job)).ok());

  auto moved = job;
  moved.set_id("j2");
  auto opened = kcron::open_job(moved, keyring, kcron::sealing_origin_of(moved));
  REQUIRE_FALSE(opened.ok());
  CHECK_THAT(opened.error().message(), Catch::Contains("sealed for another job, schedule or tenant"));
  CHECK(opened.error().message().find("CANARY") == std::string::npos);

  auto as_run = job;
  as_run.mutable_schedule_run()->set_schedule_id("j1");  // the same id, but a schedule's origin
  CHECK_FALSE(kcron::open_job(as_run, keyring, kcron::sealing_origin_of(as_run)).ok());

  auto other_tenant = keyring;
  other_tenant.tenant = "b";
  CHECK_FALSE(kcron::open_job(job, other_tenant, kcron::sealing_origin_of(job)).ok());

  auto altered = job;
  altered.mutable_sealed()->mutable_ciphertext()->back() ^= 1;
  CHECK_FALSE(kcron::open_job(altered, keyring, kcron::sealing_origin_of(altered)).ok());
}

TEST_CASE("a schedule's sealed template opens in each of its runs", "[sealing]") {
  const auto keyring = keyring_with(1);
  auto run = exec_job("nightly@2026-12-07T00:00:00Z");
  run.mutable_schedule_run()->set_schedule_id("nightly");
  REQUIRE(kcron::seal_job(run, keyring, {"schedule", "nightly"}).ok());
  auto next = run;
  next.set_id("nightly@2026-12-08T00:00:00Z");
  CHECK(kcron::open_job(next, keyring, kcron::sealing_origin_of(next)).ok());
}

TEST_CASE("after a key rotation the newest key seals and every older payload still opens", "[sealing]") {
  const auto one = keyring_with(1);
  auto old_job = exec_job("old");
  REQUIRE(kcron::seal_job(old_job, one, kcron::sealing_origin_of(old_job)).ok());
  // Rotation adds a version; the registry keeps the old one.
  auto rotated = one;
  kcron::v1::TenantSettings settings;
  std::string second;
  auto added = kcron::new_sealing_key(master(), "a", 2, 2000, &second);
  REQUIRE(added.ok());
  rotated.keys[2] = second;
  auto new_job = exec_job("new");
  REQUIRE(kcron::seal_job(new_job, rotated, kcron::sealing_origin_of(new_job)).ok());
  CHECK(new_job.sealed().key_version() == 2);
  CHECK(kcron::open_job(old_job, rotated, kcron::sealing_origin_of(old_job)).ok());
  CHECK(kcron::open_job(new_job, rotated, kcron::sealing_origin_of(new_job)).ok());
  auto missing = kcron::open_job(new_job = exec_job("x"), one, {"job", "x"});
  CHECK(missing.ok());  // not sealed: nothing to open
  auto sealed_new = exec_job("n2");
  REQUIRE(kcron::seal_job(sealed_new, rotated, kcron::sealing_origin_of(sealed_new)).ok());
  auto unknown = kcron::open_job(sealed_new, one, kcron::sealing_origin_of(sealed_new));
  REQUIRE_FALSE(unknown.ok());
  CHECK_THAT(unknown.error().message(), Catch::Contains("data key version 2, which tenant 'a' does not have"));
}

TEST_CASE("data keys open only with their master key, tenant and version", "[sealing]") {
  auto key = kcron::new_sealing_key(master(), "a", 1, 1000);
  REQUIRE(key.ok());
  CHECK(kcron::unwrap_sealing_key(master(), "a", *key).ok());
  CHECK_FALSE(kcron::unwrap_sealing_key(std::string(32, '\x43'), "a", *key).ok());
  CHECK_FALSE(kcron::unwrap_sealing_key(master(), "b", *key).ok());
  auto renumbered = *key;
  renumbered.set_version(2);
  CHECK_FALSE(kcron::unwrap_sealing_key(master(), "a", renumbered).ok());
  CHECK(kcron::new_key_hex().size() == 64);
}

TEST_CASE("kafka tasks and sealed jobs are not sealed, and results are redacted of every task string", "[sealing]") {
  const auto keyring = keyring_with(1);
  kcron::v1::Job kafka;
  kafka.set_id("k");
  kafka.mutable_kafka()->set_topic("orders");
  CHECK_FALSE(kcron::seal_job(kafka, keyring, {"job", "k"}).ok());
  CHECK_FALSE(kcron::seal_job(kafka, kcron::Keyring{"a", {}}, {"job", "k"}).ok());
  const auto job = exec_job("j");
  const auto secrets = kcron::sealed_strings(job);
  const auto text = kcron::redact("cannot execute exit 0 # " + kCanary + ": env-" + kCanary + " -c", secrets);
  CHECK(text.find("CANARY") == std::string::npos);
  CHECK_THAT(text, Catch::Contains("[sealed]"));
  CHECK_THAT(text, Catch::Contains(" -c"));  // shorter than 4 bytes: left alone
}

TEST_CASE("a sealed http job's URL parts, header names and a secret cut by a bounded capture are redacted", "[sealing]") {
  kcron::v1::Job job;
  job.set_id("h");
  job.mutable_http()->set_url("https://internal-billing.example:8443/charge?customer=4711-secret");
  (*job.mutable_http()->mutable_headers())["X-Billing-Token"] = "tok-" + kCanary;
  const auto secrets = kcron::sealed_strings(job);
  for (const auto* error :
       {"refused http target internal-billing.example:8443 (private address)", "cannot resolve internal-billing.example",
        "POST https://internal-billing.example:8443: timed out", "header X-Billing-Token rejected", "path /charge failed"}) {
    const auto text = kcron::redact(error, secrets);
    INFO(text);
    CHECK(text.find("internal-billing") == std::string::npos);
    CHECK(text.find("X-Billing-Token") == std::string::npos);
    CHECK(text.find("/charge") == std::string::npos);
  }
  // A head capture that ends inside the token, a stderr tail that starts inside it.
  const std::string token = "tok-" + kCanary;
  const auto head = kcron::redact("output: " + token.substr(0, 12), secrets);
  CHECK(head.find(token.substr(0, 12)) == std::string::npos);
  const auto tail = kcron::redact("exit 1; stderr: " + token.substr(9) + " and more", secrets);
  CHECK(tail.find(token.substr(9)) == std::string::npos);
  CHECK_THAT(tail, Catch::Contains(" and more"));
}
