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
  python3 - "$URL" "$KEY" "$1" <<'PY'
import http.client, json, sys, urllib.parse
url, key, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
u = urllib.parse.urlparse(url)
c = http.client.HTTPConnection(u.hostname, u.port)
body = json.dumps({"model": "mock-gpt", "messages": [{"role": "user", "content": "Where is the safe house?"}]})
for _ in range(n):
    c.request("POST", u.path, body, {"Authorization": "Bearer " + key, "Content-Type": "application/json"})
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
