// kcron-bench-api: the HTTP load of the benchmark's `api` scenario against one kcron-api.
//   keygen   an ES256 key: writes the JWKS kcron-api verifies with and a bearer token minted with it
//   submit   POST /v1/jobs (one no-op job per call) or POST /v1/jobs:batch (--batch jobs per call)
//   get      GET /v1/jobs/{id} for ids drawn at random from <id-prefix>-<8 digits>, 0 <= index < --ids
//   list     GET of one filtered --path (e.g. /v1/jobs?state=PENDING&page_size=50), again and again
// Each load mode runs a fixed number of keep-alive HTTP/1.1 connections, one thread each, until
// --count calls (submit: jobs) are done or --timeout-s passes, and prints one JSON line: counts by
// HTTP status, jobs accepted, calls/s, jobs/s and the latency of each call in microseconds. Each
// connection is opened first by an untimed GET /v1/whoami (its time is reported apart as
// connect_us) and the calls start together once every connection is open, so the latencies are
// those of keep-alive connections.
#include <httplib.h>

#include <algorithm>
#include <atomic>
#include <fstream>
#include <iostream>
#include <latch>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>
#include <thread>

#include "auth/base64url.h"
#include "auth/jwt.h"
#include "kcron/service.h"
#include "support/bench.h"
#include "support/flags.h"

namespace {

using SteadyClock = std::chrono::steady_clock;
using kcron::Status;
using kcron::bench::JsonObject;

struct Options {
  std::string mode;
  std::string host = "127.0.0.1";
  int port = 0;
  std::string token;
  std::int64_t connections = 16;
  std::int64_t count = 1000;  // submit: jobs; get, list: requests
  std::int64_t batch = 1;     // submit: jobs per call; 1 is POST /v1/jobs
  std::string id_prefix = "api";
  std::int64_t ids = 0;  // get: ids drawn from [0, ids)
  std::string path;      // list
  std::size_t payload_bytes = 100;
  std::chrono::seconds timeout{300};
};

// What one connection saw; merged after its thread ends.
struct Tally {
  std::vector<std::int64_t> latency_us;
  std::vector<std::int64_t> connect_us;   // the untimed first request that opens the connection
  std::map<int, std::int64_t> by_status;  // 0: no response (connection error, timeout)
  std::int64_t jobs_accepted = 0;
  std::int64_t jobs_refused = 0;
  std::int64_t items = 0;            // list: jobs in the pages returned
  std::int64_t pages_with_next = 0;  // list: pages that carried a next_page_token
  std::string first_error;

  void merge(const Tally& other) {
    latency_us.insert(latency_us.end(), other.latency_us.begin(), other.latency_us.end());
    connect_us.insert(connect_us.end(), other.connect_us.begin(), other.connect_us.end());
    for (const auto& [status, calls] : other.by_status) by_status[status] += calls;
    jobs_accepted += other.jobs_accepted;
    jobs_refused += other.jobs_refused;
    items += other.items;
    pages_with_next += other.pages_with_next;
    if (first_error.empty()) first_error = other.first_error;
  }
};

// The same text payload the load generator puts in its jobs, spelled as the JSON mapping of bytes.
std::string payload_json(std::size_t bytes, std::uint64_t seed) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string payload(bytes, ' ');
  std::uint64_t state = seed * 0x9E3779B97F4A7C15ULL + 1;
  for (auto& character : payload) {
    state ^= state << 13U;
    state ^= state >> 7U;
    state ^= state << 17U;
    character = kHex[state & 0xFU];
  }
  return kcron::auth::base64url_encode(payload);
}

std::string job_id(const Options& options, std::int64_t index) {
  return fmt::format("{}-{:08}", options.id_prefix, index);
}

std::string job_json(const Options& options, std::int64_t index) {
  return fmt::format(R"({{"id":"{}","noop":{{}},"payload":"{}"}})", job_id(options, index),
                     payload_json(options.payload_bytes, static_cast<std::uint64_t>(index)));
}

// One call's request: the method, path and body of call number `call`.
struct Call {
  bool post = false;
  std::string path;
  std::string body;
  std::int64_t jobs = 0;
};

Call make_call(const Options& options, std::int64_t call, std::mt19937_64& random) {
  if (options.mode == "get") {
    std::uniform_int_distribution<std::int64_t> pick(0, std::max<std::int64_t>(1, options.ids) - 1);
    return {false, "/v1/jobs/" + job_id(options, pick(random)), "", 0};
  }
  if (options.mode == "list") return {false, options.path, "", 0};
  const std::int64_t first = call * options.batch;
  const std::int64_t last = std::min(options.count, first + options.batch);
  if (options.batch == 1) return {true, "/v1/jobs", job_json(options, first), 1};
  std::string body = R"({"jobs":[)";
  for (std::int64_t index = first; index < last; ++index) {
    if (index != first) body += ',';
    body += job_json(options, index);
  }
  body += "]}";
  return {true, "/v1/jobs:batch", std::move(body), last - first};
}

// Reads what the answer says beyond its status: jobs accepted by a submit, jobs in a list page.
void account(const Options& options, const Call& call, const httplib::Response& response, Tally& tally) {
  const bool success = response.status >= 200 && response.status < 300;
  if (!success) {
    if (tally.first_error.empty())
      tally.first_error = fmt::format("{} {}: {}", response.status, call.path, response.body.substr(0, 300));
    if (call.post) tally.jobs_refused += call.jobs;
    return;
  }
  if (options.mode == "submit" && options.batch == 1) {
    tally.jobs_accepted += 1;
  } else if (options.mode == "submit" || options.mode == "list") {
    const auto answer = nlohmann::json::parse(response.body, nullptr, false);
    if (answer.is_discarded()) {
      if (tally.first_error.empty()) tally.first_error = "an answer that is not JSON: " + response.body.substr(0, 200);
      return;
    }
    if (options.mode == "submit") {
      tally.jobs_accepted += answer.value("accepted", std::int64_t{0});
      tally.jobs_refused += answer.value("refused", std::int64_t{0});
    } else {
      if (answer.contains("jobs") && answer["jobs"].is_array()) tally.items += static_cast<std::int64_t>(answer["jobs"].size());
      if (!answer.value("next_page_token", std::string()).empty()) ++tally.pages_with_next;
    }
  }
}

// One keep-alive connection: opens it, waits at `ready` for the others, then takes call numbers
// from `next` until `calls` are taken or the deadline.
Tally drive(const Options& options, std::latch& ready, std::atomic<std::int64_t>& next, std::int64_t calls,
            SteadyClock::time_point deadline, std::uint64_t seed) {
  Tally tally;
  httplib::Client client(options.host, options.port);
  client.set_keep_alive(true);
  client.set_tcp_nodelay(true);  // a request's header and body go out at once, not one delayed ACK apart
  client.set_connection_timeout(5, 0);
  client.set_read_timeout(60, 0);
  client.set_write_timeout(60, 0);
  const httplib::Headers headers{{"Authorization", "Bearer " + options.token}};
  std::mt19937_64 random(seed);
  const auto opening = SteadyClock::now();
  if (auto opened = client.Get("/v1/whoami", headers); !opened || opened->status != 200) {
    tally.first_error = opened ? fmt::format("{} /v1/whoami: {}", opened->status, opened->body.substr(0, 300))
                               : fmt::format("GET /v1/whoami: {}", httplib::to_string(opened.error()));
  }
  tally.connect_us.push_back(std::chrono::duration_cast<std::chrono::microseconds>(SteadyClock::now() - opening).count());
  ready.arrive_and_wait();
  for (std::int64_t call = next++; call < calls && SteadyClock::now() < deadline && !kcron::stop_requested(); call = next++) {
    const auto request = make_call(options, call, random);
    const auto started = SteadyClock::now();
    auto result =
        request.post ? client.Post(request.path, headers, request.body, "application/json") : client.Get(request.path, headers);
    tally.latency_us.push_back(std::chrono::duration_cast<std::chrono::microseconds>(SteadyClock::now() - started).count());
    if (!result) {
      ++tally.by_status[0];
      if (tally.first_error.empty())
        tally.first_error =
            fmt::format("{} {}: {}", request.post ? "POST" : "GET", request.path, httplib::to_string(result.error()));
      if (request.post) tally.jobs_refused += request.jobs;
      continue;
    }
    ++tally.by_status[result->status];
    account(options, request, *result, tally);
  }
  return tally;
}

int run_load(const Options& options) {
  const std::int64_t calls = options.mode == "submit" ? (options.count + options.batch - 1) / options.batch : options.count;
  std::atomic<std::int64_t> next{0};
  std::vector<Tally> tallies(static_cast<std::size_t>(options.connections));
  std::vector<std::thread> threads;
  std::latch ready(static_cast<std::ptrdiff_t>(tallies.size()) + 1);
  const auto deadline = SteadyClock::now() + options.timeout;
  for (std::size_t index = 0; index < tallies.size(); ++index) {
    threads.emplace_back([&, index] { tallies[index] = drive(options, ready, next, calls, deadline, 0x6B63726F6EULL + index); });
  }
  ready.arrive_and_wait();  // every connection is open: the measured calls start now
  const std::int64_t first_ms = kcron::bench::wall_ms();
  const auto start = SteadyClock::now();
  for (auto& thread : threads) thread.join();
  const double seconds = std::max(1e-6, std::chrono::duration<double>(SteadyClock::now() - start).count());
  Tally total;
  for (const auto& tally : tallies) total.merge(tally);

  JsonObject by_status;
  std::int64_t ok_calls = 0;
  for (const auto& [status, count] : total.by_status) {
    by_status.add(status == 0 ? std::string("none") : std::to_string(status), count);
    if (status >= 200 && status < 300) ok_calls += count;
  }
  const auto done = static_cast<std::int64_t>(total.latency_us.size());
  const bool complete = done == calls && ok_calls == calls && (options.mode != "submit" || total.jobs_accepted == options.count);
  JsonObject summary;
  summary.add("mode", options.mode)
      .add("connections", options.connections)
      .add("batch", options.batch)
      .add("calls", done)
      .add("calls_planned", calls)
      .add("ok_calls", ok_calls)
      .add("by_status", by_status)
      .add("jobs_accepted", total.jobs_accepted)
      .add("jobs_refused", total.jobs_refused)
      .add("first_error", total.first_error)
      .add("complete", complete)
      .add("start_ms", first_ms)
      .add("end_ms", kcron::bench::wall_ms())
      .add("seconds", seconds)
      .add("calls_per_s", static_cast<double>(done) / seconds)
      .add("jobs_per_s", static_cast<double>(total.jobs_accepted) / seconds)
      .add("latency_us", kcron::bench::summarize(std::move(total.latency_us)))
      .add("connect_us", kcron::bench::summarize(std::move(total.connect_us)));
  if (options.mode == "list") {
    summary.add("jobs_per_page", ok_calls > 0 ? static_cast<double>(total.items) / static_cast<double>(ok_calls) : 0.0)
        .add("pages_with_next", total.pages_with_next);
  }
  std::cout << summary.str() << std::endl;
  return complete ? 0 : 1;
}

Status write_file(const std::string& path, const std::string& text) {
  std::ofstream file(path, std::ios::trunc);
  file << text;
  file.close();
  if (!file) return kcron::make_error("cannot write {}", path);
  return Status::success();
}

// An ES256 key pair: the JWKS for kcron-api's auth.jwks_file and a token signed with its private half.
int run_keygen(const kcron::bench::Flags& flags) {
  auto key = kcron::auth::generate_key(kcron::auth::kEs256, "bench");
  if (!key) {
    std::cerr << "kcron-bench-api: " << key.error().message() << "\n";
    return 1;
  }
  auto signing = kcron::auth::load_signing_key(key->private_pem, kcron::auth::kEs256, key->kid);
  if (!signing) {
    std::cerr << "kcron-bench-api: " << signing.error().message() << "\n";
    return 1;
  }
  kcron::auth::TokenRequest request;
  request.subject = "bench";
  request.tenant = flags.get("tenant");
  request.roles = {flags.get("role")};
  request.issued_at = std::chrono::system_clock::now();
  request.ttl = std::chrono::seconds(flags.get_int("ttl-s"));
  auto token = kcron::auth::sign_token(request, *signing);
  if (!token) {
    std::cerr << "kcron-bench-api: " << token.error().message() << "\n";
    return 1;
  }
  for (const auto& [path, text] : {std::pair{flags.get("jwks"), key->jwks}, std::pair{flags.get("token-out"), *token}}) {
    if (auto written = write_file(path, text); !written) {
      std::cerr << "kcron-bench-api: " << written.error().message() << "\n";
      return 1;
    }
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  kcron::bench::Flags flags("kcron-bench-api", "HTTP load on kcron-api: keygen | submit | get | list");
  flags.text("host", "127.0.0.1", "the API's address")
      .integer("port", 0, "the API's port (required by submit, get, list)")
      .text("token-file", "", "a file holding the bearer token (keygen writes one)")
      .integer("connections", 16, "keep-alive connections, one thread each")
      .integer("count", 1000, "submit: jobs; get, list: requests")
      .integer("batch", 1, "submit: jobs per call (1: POST /v1/jobs, more: POST /v1/jobs:batch, at most 1000)")
      .text("id-prefix", "api", "job ids are <prefix>-<8-digit index>")
      .integer("ids", 0, "get: draw ids from indexes 0 to ids-1")
      .text("path", "", "list: the path and query to GET")
      .integer("payload-bytes", 100, "submit: bytes of job payload")
      .integer("timeout-s", 300, "stop taking new calls after this long")
      .text("jwks", "", "keygen: where the JWKS goes")
      .text("token-out", "", "keygen: where the token goes")
      .text("tenant", "default", "keygen: the token's tenant")
      .text("role", "operator", "keygen: the token's role")
      .integer("ttl-s", 86400, "keygen: the token's lifetime");
  if (auto status = flags.parse(argc, argv, true); !status) {
    std::cerr << "kcron-bench-api: " << status.error().message() << "\n";
    return 2;
  }
  if (flags.help_requested()) {
    std::cout << flags.usage();
    return 0;
  }
  Options options;
  options.mode = flags.command();
  if (options.mode == "keygen") {
    if (flags.get("jwks").empty() || flags.get("token-out").empty()) {
      std::cerr << "kcron-bench-api: keygen needs --jwks and --token-out\n";
      return 2;
    }
    return run_keygen(flags);
  }
  options.host = flags.get("host");
  options.port = static_cast<int>(flags.get_int("port"));
  options.connections = flags.get_int("connections");
  options.count = flags.get_int("count");
  options.batch = flags.get_int("batch");
  options.id_prefix = flags.get("id-prefix");
  options.ids = flags.get_int("ids");
  options.path = flags.get("path");
  options.payload_bytes = static_cast<std::size_t>(std::max<std::int64_t>(0, flags.get_int("payload-bytes")));
  options.timeout = std::chrono::seconds(flags.get_int("timeout-s"));
  std::string problem;
  if (options.mode != "submit" && options.mode != "get" && options.mode != "list")
    problem = "the command is keygen, submit, get or list";
  if (options.port <= 0 || options.port > 65535) problem = "--port is required (1-65535)";
  if (options.connections < 1 || options.connections > 1024) problem = "--connections must be 1-1024";
  if (options.count < 1) problem = "--count must be positive";
  if (options.batch < 1 || options.batch > 1000) problem = "--batch must be 1-1000";
  if (options.mode == "get" && options.ids < 1) problem = "get needs --ids";
  if (options.mode == "list" && !options.path.starts_with("/")) problem = "list needs --path /v1/jobs?...";
  if (flags.get("token-file").empty()) {
    problem = "--token-file is required";
  } else {
    std::ifstream file(flags.get("token-file"));
    std::getline(file, options.token);
    if (options.token.empty()) problem = "no token in " + flags.get("token-file");
  }
  if (!problem.empty()) {
    std::cerr << "kcron-bench-api: " << problem << "\n";
    return 2;
  }
  kcron::install_stop_signals();
  return run_load(options);
}
