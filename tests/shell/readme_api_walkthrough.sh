#!/usr/bin/env bash
# README.md's curl walk-through of kcron-api (the ```sh block after "by hand:" in "The HTTP API"),
# extracted from the README at test time and run as written against the real broker, with a
# dispatcher and a worker of a fresh topic prefix, so that the docs cannot drift from what works.
#   readme_api_walkthrough.sh README.md BIN_DIR      (broker: $KCRON_TEST_BROKERS, default 127.0.0.1:9092)
set -euo pipefail
readme=$(realpath "$1")
bin_dir=$(realpath "$2")
brokers=${KCRON_TEST_BROKERS:-127.0.0.1:9092}
prefix="it-readme-api-$(od -An -N3 -tx1 /dev/urandom | tr -d ' \n')."

work=$(mktemp -d "${TMPDIR:-/tmp}/kcron-readme-api.XXXXXX")
pids=()
stage="setup"
fail() {
  trap - ERR
  echo "readme walk-through: FAIL at '$stage': $*" >&2
  for log in "$work"/*.log; do
    [[ -f $log ]] && { echo "--- last lines of $(basename "$log")" >&2; tail -15 "$log" >&2; }
  done
  exit 1
}
# Every program started here is stopped (TERM, then KILL what still runs after 10 s) and the temp
# dir removed. No ERR trap here: a failing kill must not cut the cleanup short.
cleanup() {
  trap - ERR
  trap '' INT TERM
  set +eE
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null; done
  for _ in $(seq 1 100); do
    running=0
    for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && running=1; done
    ((running)) || break
    sleep 0.1
  done
  for pid in "${pids[@]}"; do
    kill -KILL "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
  done
  cd / && rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
cd "$work"

# The API's port (the README's 8080 may be taken on a shared machine): one no socket uses, below
# the kernel's ephemeral range (where the clients' own ports are). The metrics port is 0 (any).
api_port=""
ephemeral_low=$(cut -f1 /proc/sys/net/ipv4/ip_local_port_range)
for _ in $(seq 1 50); do
  port=$((20000 + RANDOM % (ephemeral_low - 20000)))
  if ! ss -Htan "sport = :$port" | grep -q .; then
    api_port=$port
    break
  fi
done
[[ -n $api_port ]] || fail "no free port found in 50 tries"

# --- the README block ------------------------------------------------------------------------
stage="extracting the README block"
awk '/`scripts\/demo` starts it on .*by hand:$/ { found = 1; next }
     found == 1 && /^```sh$/ { found = 2; next }
     found == 2 && /^```$/ { exit }
     found == 2 { print }' "$readme" >readme-block.sh
[[ -s readme-block.sh ]] || fail "no \`\`\`sh block after '\`scripts/demo\` starts it on ...; by hand:' in $readme"
# The rewrites, each required to apply (the block changed otherwise, and so must this test):
#   bin=build/dev/bin            -> this build tree's bin dir
#   8080 (KCRON_API_PORT, URLs)  -> a free port;  KCRON_HTTP_PORT=9474 -> 0 (any free port)
#   `... kcron-api &`            -> its output to api.log, and the next line waits until it serves
#                                   (the README's reader starts it and waits by eye).
require_line() { grep -qE "$1" readme-block.sh || fail "the README block has no line matching /$1/: update this test"; }
require_line '^bin=build/dev/bin$'
require_line '8080'
require_line 'KCRON_HTTP_PORT=9474'
require_line 'kcron-api &$'
sed -e "s|^bin=build/dev/bin\$|bin='$bin_dir'|" \
    -e "s|8080|$api_port|g" \
    -e "s|KCRON_HTTP_PORT=9474|KCRON_HTTP_PORT=0|" \
    -e 's|kcron-api &$|kcron-api >api.log 2>\&1 \&\nreadme_api_started $!|' readme-block.sh >walkthrough.sh

# Every curl of the block goes through this wrapper: the command runs as written and prints what
# it printed; a copy of that (headers too with -i) is kept in curl.N.out, the status and content
# type in curl.N.code, and a note goes to stderr. N counts the files, as a curl in a pipeline runs
# in a subshell. --max-time bounds it (the events long-poll waits 10 s).
curl() {
  local n
  n=$(($(find . -maxdepth 1 -name 'curl.*.args' | wc -l) + 1))
  printf '%s\n' "$*" >"curl.$n.args"
  command curl --max-time 30 -o "curl.$n.out" -w '%{http_code} %{content_type}' "$@" >"curl.$n.code" ||
    fail "curl #$n exited $?: curl $*"
  cat "curl.$n.out"
  echo >&2
  echo "# curl #$n -> $(cat "curl.$n.code")" >&2
}

# What curl #N answered: its status, content type, and body (after the headers of a curl -i).
status_of() { cut -d' ' -f1 "curl.$1.code"; }
type_of() { cut -d' ' -f2- "curl.$1.code"; }
body_of() {
  if [[ $(head -n1 "curl.$1.out") == HTTP/* ]]; then sed '1,/^\r\{0,1\}$/d' "curl.$1.out"; else cat "curl.$1.out"; fi
}

# Inserted after the README's `kcron-api &`: kcron-api is ready (its view read every partition,
# /readyz on the metrics port it logged answers 200) and writes of a tenant are open (every
# dispatcher and worker of the prefix understands tenant keys; until then a tenant's submit is a 503).
readme_api_started() {
  pids+=("$1")
  local http_port
  for _ in $(seq 1 240); do
    kill -0 "$1" 2>/dev/null || fail "kcron-api exited"
    ! grep -q 'event=fatal' api.log || fail "kcron-api failed: $(grep 'event=fatal' api.log)"
    http_port=$(sed -n 's/.* event=http_listening .*port=\([0-9]*\).*/\1/p' api.log)
    if [[ -n $http_port ]] &&
      [[ $(command curl -s --max-time 2 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$http_port/readyz") == 200 ]] &&
      grep -q 'feature=tenant-keys open=true' api.log; then
      return 0
    fi
    sleep 0.25
  done
  fail "kcron-api not ready with tenant writes open within 60 s"
}

# --- the rest of the deployment: topics, a dispatcher and a worker of a fresh prefix -----------
export KCRON_BROKERS=$brokers KCRON_TOPIC_PREFIX=$prefix KCRON_JOBS_PARTITIONS=2 KCRON_EXEC_PARTITIONS=1
stage="kcron topics create"
"$bin_dir/kcron" topics create --jobs-partitions 2 --exec-partitions 1 --output-partitions 2 --schedules-partitions 1 \
  >topics.log 2>&1 || fail "kcron topics create failed"
stage="starting kcron-dispatcher and kcron-worker"
KCRON_STATE_DIR=$work/dispatcher-state KCRON_HTTP_PORT=0 KCRON_INSTANCE_ID=dispatcher-1 \
  "$bin_dir/kcron-dispatcher" >dispatcher.log 2>&1 &
pids+=($!)
KCRON_HTTP_PORT=0 KCRON_INSTANCE_ID=worker-1 "$bin_dir/kcron-worker" >worker.log 2>&1 &
pids+=($!)
for _ in $(seq 1 240); do
  grep -q event=assigned dispatcher.log && grep -q event=assigned worker.log && break
  for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null || fail "a program exited"; done
  sleep 0.25
done
grep -q event=assigned dispatcher.log && grep -q event=assigned worker.log ||
  fail "the dispatcher and the worker were not assigned partitions within 60 s"

stage="running the README block"
echo "readme walk-through: prefix $prefix, API on 127.0.0.1:$api_port; the block as run:"
sed 's/^/  | /' walkthrough.sh
# As a reader pastes it: each line in this shell; a failing command ends the test, named with the
# answer of the request before it (a line that reads an answer fails when the request did).
last_request() {
  local n
  n=$(find . -maxdepth 1 -name 'curl.*.code' | wc -l)
  ((n > 0)) || return 0
  printf '; the request before it, curl #%s %s, answered HTTP %s: %s' "$n" "$(sed 's/Bearer [^ ]*/Bearer …/' "curl.$n.args")" \
    "$(status_of "$n")" "$(body_of "$n" | head -c 400)"
}
trap 'fail "README line failed: $BASH_COMMAND$(last_request)"' ERR
# shellcheck disable=SC1091
. ./walkthrough.sh
trap - ERR

# --- what each request answered ---------------------------------------------------------------
# step_of ERE: the number of the one curl whose arguments match.
step_of() {
  local found
  found=$(grep -lE -- "$1" curl.*.args || true)
  [[ $(wc -w <<<"$found") -eq 1 ]] || fail "expected one curl of the README block matching /$1/, found: ${found:-none}"
  found=${found#curl.}
  echo "${found%.args}"
}
expect_status() {                                    # STEP PATTERN
  [[ $(status_of "$1") =~ ^$2$ ]] || fail "HTTP $(status_of "$1"), expected $2: $(head -c 600 "curl.$1.out")"
}
# expect_json FILE PYTHON-EXPRESSION: the file is JSON, and the expression over it (as j) is true.
# (python3, which scripts/setup installs; jq is not among its packages.)
expect_json() {
  python3 -c 'import json, re, sys
j = json.load(open(sys.argv[1]))
sys.exit(0 if eval(sys.argv[2]) else 1)' "$1" "$2" 2>/dev/null || fail "the answer does not satisfy $2: $(head -c 600 "$1")"
}

stage="submit report-1 (POST /v1/jobs)"
n=$(step_of '"id":"report-1".*/v1/jobs$')
expect_status "$n" 202
grep -qi '^Kcron-Consistency: ..*' "curl.$n.out" || fail "no Kcron-Consistency header: $(cat "curl.$n.out")"
body_of "$n" >submit.json
expect_json submit.json 'j["id"] == "report-1" and j["tenant"] == "acme"'

stage="GET /v1/jobs/report-1 as acme"
n=$(step_of "Bearer $A .*/v1/jobs/report-1\$")
expect_status "$n" 200
expect_json "curl.$n.out" 'j["id"] == "report-1" and j["tenant"] == "acme"'

stage="GET /v1/events (long-poll)"
n=$(step_of '/v1/events\?')
expect_status "$n" 200
expect_json "curl.$n.out" 'isinstance(j["cursor"], str) and j["cursor"] and isinstance(j["events"], list)'

stage="GET /v1/jobs (list)"
n=$(step_of '/v1/jobs\?')
expect_status "$n" 200
expect_json "curl.$n.out" 'isinstance(j["jobs"], list)'

stage="GET /v1/jobs/report-1 as beta"
n=$(step_of "Bearer $B .*/v1/jobs/report-1\$")
expect_status "$n" 404
[[ $(type_of "$n") == application/problem+json* ]] || fail "content type '$(type_of "$n")', expected application/problem+json"
expect_json "curl.$n.out" 'j["status"] == 404'

stage="PUT /v1/schedules/standup"
n=$(step_of '-X PUT .*/v1/schedules/standup$')
expect_status "$n" '2[0-9][0-9]'
body_of "$n" >standup.json
expect_json standup.json 'j["id"] == "standup"'

stage="GET /v1/schedules/standup/next?count=3"
n=$(step_of '/v1/schedules/standup/next\?count=3')
expect_status "$n" 200
expect_json "curl.$n.out" 'len(j["next"]) == 3 and all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", t) for t in j["next"])'

stage="POST /v1/schedules/standup:trigger"
n=$(step_of '/v1/schedules/standup:trigger$')
expect_status "$n" '2[0-9][0-9]'
expect_json "curl.$n.out" 'j["schedule"] == "standup"'

stage="report-1 (delay 5s) SUCCEEDED"
state=""
for _ in $(seq 1 120); do
  state=$(command curl -s --max-time 5 -H "Authorization: Bearer $A" "127.0.0.1:$api_port/v1/jobs/report-1" |
    python3 -c 'import json, sys; print(json.load(sys.stdin).get("state", ""))' 2>/dev/null || true)
  [[ $state == SUCCEEDED ]] && break
  sleep 0.5
done
[[ $state == SUCCEEDED ]] || fail "report-1 is '${state:-absent}' after 60 s, not SUCCEEDED"

# The README's list (state=SUCCEEDED, label team=data) ran before report-1 finished: its URL again
# must now list report-1, so the filters mean what the README says.
stage="the README's list URL once report-1 SUCCEEDED"
n=$(step_of '/v1/jobs\?')
url=$(awk '{ print $NF }' "curl.$n.args")
command curl -s --max-time 10 -H "Authorization: Bearer $A" "$url" >list-after.json || fail "curl $url failed"
expect_json list-after.json '[job["id"] for job in j["jobs"]] == ["report-1"]'

echo "readme walk-through: OK ($(find . -maxdepth 1 -name 'curl.*.args' | wc -l) requests of the README block checked, report-1 SUCCEEDED)"
