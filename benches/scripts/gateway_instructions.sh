#!/usr/bin/env bash
# Instructions the gateway spends per request, counted by callgrind (deterministic, unlike req/s on a
# shared 2-core machine): the gateway role of the `gateway_load` benchmark runs under
# `valgrind --tool=callgrind` in front of the mock upstream; after 300 warm-up requests the counters
# are zeroed, N non-streaming requests are sent one after another on one keep-alive connection, and
# the counters are dumped. Prints instructions per request.
#
#   cargo bench -p gaia-benches --bench gateway_load --no-run   # prints the benchmark executable
#   benches/scripts/gateway_instructions.sh target/release/deps/gateway_load-<hash> [N=2000]
#
# GAIA_BENCH_PLAYER=1: each request names a player (OpenAI's `user`) and carries two tags, as
# `gateway_peers.sh GAIA_BENCH_EXTRA=1` sends them. GAIA_BENCH_KEEP=<file>: keep the callgrind profile
# there (read it with `callgrind_annotate --inclusive=yes <file>`).
#
# Needs valgrind and python3 (Debian: `apt-get install valgrind python3`).
set -euo pipefail
BIN=$(realpath "$1"); N=${2:-2000}
WORK=$(mktemp -d)
cleanup() { pkill -f "$WORK/cg.out" 2>/dev/null || true; kill $(jobs -p) 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT
cd "$WORK"
# The children read stdin until it closes (`sleep` keeps it open) and print their URL first.
(sleep 100000 | GAIA_BENCH_ROLE=mock "$BIN" > mock.out 2>&1) > /dev/null 2>&1 &
until grep -q URL mock.out 2>/dev/null; do sleep 0.2; done
UPSTREAM=$(awk '/URL/{print $2}' mock.out)
(sleep 100000 | GAIA_BENCH_ROLE=gateway GAIA_BENCH_UPSTREAM="$UPSTREAM" \
  valgrind --tool=callgrind --callgrind-out-file="$WORK/cg.out" "$BIN" > gw.out 2> gw.err) > /dev/null 2>&1 &
until grep -q URL gw.out 2>/dev/null; do sleep 0.5; done
read -r _ URL KEY < <(grep URL gw.out)
drive() {
  python3 - "$URL" "$KEY" "$1" "${GAIA_BENCH_PLAYER:-0}" <<'PY'
import http.client, json, sys, urllib.parse
url, key, n, player = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4] != "0"
u = urllib.parse.urlparse(url)
c = http.client.HTTPConnection(u.hostname, u.port)
req = {"model": "mock-gpt", "messages": [{"role": "user", "content": "Where is the safe house?"}]}
headers = {"Authorization": "Bearer " + key, "Content-Type": "application/json"}
if player:
    req["user"] = "player-7"
    headers["x-gaia-tags"] = "npc=louisa,quest=first-light"
body = json.dumps(req)
for _ in range(n):
    c.request("POST", u.path, body, headers)
    r = c.getresponse(); r.read()
    if r.status != 200: sys.exit(f"status {r.status}")
PY
}
drive 300
callgrind_control -z >/dev/null
drive "$N"
callgrind_control -d >/dev/null
sleep 2
TOTAL=$(grep -h '^summary:' "$WORK"/cg.out.* | awk '{print $2}' | tail -1)
echo "instructions per request: $((TOTAL / N)) (N=$N, total $TOTAL)"
if [[ -n ${GAIA_BENCH_KEEP:-} ]]; then cp "$(grep -l '^summary:' "$WORK"/cg.out.* | tail -1)" "$GAIA_BENCH_KEEP"; fi
