#!/usr/bin/env bash
# The latency Gaia adds and its throughput, against a floor and a peer, measured in one run on
# loopback by an independent load generator (wrk, not the Rust harness):
#   - floor: nginx answering a fixed OpenAI `chat.completion` (and a fixed SSE stream: role chunk,
#     8 content chunks, finish chunk, usage chunk, `data: [DONE]` — the mock's shape in gateway_load)
#     from memory, so what is measured is HTTP on loopback and nothing else;
#   - Gaia: the `gateway` role of the `gateway_load` benchmark (SQLite, in-process cache, API-key auth,
#     usage metering on) in front of that nginx;
#   - peer: LiteLLM's proxy (one worker, no database, a fixed master key) in front of the same nginx.
# Each case (non-streaming, streaming) is run against each target at 1 connection (latency percentiles)
# and at 32 connections (req/s), one target after another; the report is a markdown table.
#
#   cargo bench -p gaia-benches --bench gateway_load --no-run   # prints the benchmark executable
#   benches/scripts/gateway_peers.sh [target/release/deps/gateway_load-<hash>]
#
# Settings: GAIA_BENCH_SECS (seconds per measurement, default 10), GAIA_BENCH_WARMUP (seconds of
# warm-up at 32 connections before each target's measurements, default 2), GAIA_BENCH_PEER=0 (skip
# LiteLLM), GAIA_BENCH_CACHE (where LiteLLM's venv is kept, default ~/.cache/gaia-bench),
# GAIA_BENCH_LOG (a file to append the raw wrk output and the servers' logs to), GAIA_BENCH_EXTRA=1 (also
# Gaia with each request naming a player in its body and two tags in a header, and Gaia with typical
# guardrails on: personal data and injection markers on the input, a word list on the output).
# Installs what is missing: Debian's nginx-light (or nginx) and wrk with apt-get (run as root, or
# install them first), and `litellm[proxy]` from PyPI into a venv under the cache dir (needs python3).
# On a 2-core machine wrk, the proxy and nginx share the cores: compare the rows, not the absolutes;
# the floor's req/s is mostly wrk's own ceiling (its Lua `response()` hook runs on every answer).
set -euo pipefail

SECS=${GAIA_BENCH_SECS:-10}
EXTRA=${GAIA_BENCH_EXTRA:-0}
WARMUP=${GAIA_BENCH_WARMUP:-2}
PEER=${GAIA_BENCH_PEER:-1}
CACHE=${GAIA_BENCH_CACHE:-$HOME/.cache/gaia-bench}
HERE=$(cd "$(dirname "$0")" && pwd)
if [[ $# -ge 1 ]]; then
  BIN=$(realpath "$1")
else
  # The newest benchmark executable the last `cargo bench --no-run` left.
  BIN=$(find "$HERE/../../target/release/deps" -maxdepth 1 -type f -name 'gateway_load-*' -perm -u+x \
    ! -name '*.*' -printf '%T@ %p\n' 2>/dev/null | sort -rn | head -1 | cut -d' ' -f2-)
  [[ -n $BIN ]] || { echo "no target/release/deps/gateway_load-*: run cargo bench --no-run or pass its path" >&2; exit 1; }
  BIN=$(realpath "$BIN")
fi
log() { echo "gateway_peers: $*" >&2; }

# --- What is needed -------------------------------------------------------------------------------
need_apt=()
command -v nginx > /dev/null || [[ -x /usr/sbin/nginx ]] || need_apt+=(nginx)
command -v wrk > /dev/null || need_apt+=(wrk)
if [[ ${#need_apt[@]} -gt 0 ]]; then
  SUDO=(); [[ $(id -u) -eq 0 ]] || SUDO=(sudo)
  log "installing ${need_apt[*]} with apt-get"
  "${SUDO[@]}" apt-get update -qq
  pkgs=(wrk)
  [[ " ${need_apt[*]} " == *" nginx "* ]] && pkgs+=(nginx-light)
  # nginx-light is gone from some releases: fall back to nginx. (A Debian package starts the system's
  # nginx only where policy-rc.d allows; this script never uses that one.)
  "${SUDO[@]}" apt-get install -y --no-install-recommends "${pkgs[@]}" > /dev/null ||
    "${SUDO[@]}" apt-get install -y --no-install-recommends "${pkgs[@]/nginx-light/nginx}" > /dev/null
fi
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
LITELLM=$CACHE/litellm-venv/bin/litellm
if [[ $PEER != 0 && ! -x $LITELLM ]]; then
  log "installing litellm[proxy] into $CACHE/litellm-venv"
  mkdir -p "$CACHE"
  python3 -m venv "$CACHE/litellm-venv"
  "$CACHE/litellm-venv/bin/pip" install -q --disable-pip-version-check 'litellm[proxy]'
fi

WORK=$(mktemp -d)
PIDS=()   # nginx's master and LiteLLM's session leader, ended by id in cleanup
GW_PIDS=()
cleanup() {
  set +e
  # The gateways read stdin until it closes: closing the fifo's only writer lets them finish cleanly.
  exec 9>&- 2> /dev/null
  for p in "${GW_PIDS[@]}"; do
    for _ in $(seq 20); do kill -0 "$p" 2> /dev/null || break; sleep 0.1; done
    kill "$p" 2> /dev/null
  done
  for p in "${PIDS[@]}"; do kill -- "-$p" 2> /dev/null || kill "$p" 2> /dev/null; done
  for p in "${PIDS[@]}"; do
    for _ in $(seq 30); do kill -0 "$p" 2> /dev/null || break; sleep 0.1; done
    kill -9 -- "-$p" 2> /dev/null || kill -9 "$p" 2> /dev/null
  done
  if [[ -n ${GAIA_BENCH_LOG:-} ]]; then
    for f in "$WORK"/*.out "$WORK"/*.err "$WORK"/*.log; do
      [[ -f $f ]] && { echo "=== $(basename "$f")"; cat "$f"; } >> "$GAIA_BENCH_LOG"
    done
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
cd "$WORK"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# Waits until `curl` of the given arguments answers 200 (up to $1 seconds).
wait_200() {
  local limit=$1; shift
  local t0=$SECONDS
  until [[ $(curl -s -o /dev/null -w '%{http_code}' "$@" 2> /dev/null) == 200 ]]; do
    (( SECONDS - t0 < limit )) || return 1
    sleep 0.5
  done
}

# --- The floor: nginx answering from memory --------------------------------------------------------
ID=chatcmpl-gaia-bench-0001
CREATED=1700000000
HEAD="\"id\":\"$ID\",\"created\":$CREATED,\"model\":\"mock-gpt\",\"system_fingerprint\":\"fp_gaia_bench\""
USAGE='{"prompt_tokens":5,"completion_tokens":13,"total_tokens":18}'
TEXT="The safe house is the blue door at 14 Rue des Lilas, third floor."
FULL="{$HEAD,\"object\":\"chat.completion\",\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":\"$TEXT\",\"refusal\":null},\"logprobs\":null,\"finish_reason\":\"stop\"}],\"usage\":$USAGE}"
chunk() { printf 'data: {%s,"object":"chat.completion.chunk","choices":[{"index":0,"delta":%s,"logprobs":null,"finish_reason":%s}],"usage":null}\\n\\n' "$HEAD" "$1" "$2"; }
SSE=$(chunk '{"role":"assistant","content":"","refusal":null}' null)
n=${#TEXT}; size=$(( (n + 7) / 8 ))
for (( i = 0; i < n; i += size )); do SSE+=$(chunk "{\"content\":\"${TEXT:i:size}\"}" null); done
SSE+=$(chunk '{}' '"stop"')
SSE+=$(printf 'data: {%s,"object":"chat.completion.chunk","choices":[],"usage":%s}\\n\\n' "$HEAD" "$USAGE")
SSE+='data: [DONE]\n\n'

MODELS='{"object":"list","data":[{"id":"mock-gpt","object":"model","created":1700000000,"owned_by":"gaia-bench"}]}'

NGINX_PORT=$(free_port)
mkdir -p nginx/tmp
USER_LINE=""
[[ $(id -u) -eq 0 ]] && USER_LINE="user $(id -un) $(id -gn);"
cat > nginx/nginx.conf << EOF
$USER_LINE
worker_processes 1;
daemon off;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx.err warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $WORK/nginx/tmp/body;
  proxy_temp_path $WORK/nginx/tmp/proxy;
  fastcgi_temp_path $WORK/nginx/tmp/fastcgi;
  uwsgi_temp_path $WORK/nginx/tmp/uwsgi;
  scgi_temp_path $WORK/nginx/tmp/scgi;
  keepalive_requests 100000000;
  keepalive_timeout 600s;
  server {
    listen 127.0.0.1:$NGINX_PORT;
    location = /v1/chat/completions {
      default_type application/json;
      return 200 '$FULL';
    }
    # Gaia lists the upstream's models when it starts.
    location ~ ^(/stream)?/v1/models\$ {
      default_type application/json;
      return 200 '$MODELS';
    }
    location = /stream/v1/chat/completions {
      default_type text/event-stream;
      add_header Cache-Control no-cache;
      return 200 '$SSE';
    }
  }
}
EOF
# Every background child closes fd 9 (the gateways' stdin), so only this script holds it open.
"$NGINX" -p "$WORK/nginx" -e "$WORK/nginx.err" -c "$WORK/nginx/nginx.conf" 9>&- &
PIDS+=($!)
NGINX_URL=http://127.0.0.1:$NGINX_PORT
REQ='{"model":"mock-gpt","messages":[{"role":"user","content":"Where is the safe house?"}]}'
REQ_STREAM='{"model":"mock-gpt","messages":[{"role":"user","content":"Where is the safe house?"}],"stream":true,"stream_options":{"include_usage":true}}'
wait_200 10 -X POST -H 'Content-Type: application/json' -d "$REQ" "$NGINX_URL/v1/chat/completions" ||
  { cat nginx.err >&2; log "nginx did not start"; exit 1; }

# --- Gaia: two gateways, one in front of each nginx location ---------------------------------------
mkfifo gw.stdin
exec 9<> gw.stdin
start_gateway() { # name upstream [guardrails: 1]
  GAIA_BENCH_ROLE=gateway GAIA_BENCH_UPSTREAM="$2" GAIA_BENCH_GUARDRAILS="${3:-0}" "$BIN" < gw.stdin \
    > "$1.out" 2> "$1.err" 9>&- &
  GW_PIDS+=($!)
}
start_gateway gaia "$NGINX_URL/v1"
start_gateway gaia-stream "$NGINX_URL/stream/v1"
GATEWAYS=(gaia gaia-stream)
if [[ $EXTRA != 0 ]]; then
  start_gateway guarded "$NGINX_URL/v1" 1
  start_gateway guarded-stream "$NGINX_URL/stream/v1" 1
  GATEWAYS+=(guarded guarded-stream)
fi
for g in "${GATEWAYS[@]}"; do
  t0=$SECONDS
  until grep -q '^URL' "$g.out" 2> /dev/null; do
    (( SECONDS - t0 < 60 )) || { cat "$g.err" >&2; log "gateway $g did not start"; exit 1; }
    sleep 0.2
  done
done
read -r _ GAIA_URL GAIA_KEY < <(grep '^URL' gaia.out)
read -r _ GAIA_STREAM_URL GAIA_STREAM_KEY < <(grep '^URL' gaia-stream.out)
if [[ $EXTRA != 0 ]]; then
  read -r _ GUARDED_URL GUARDED_KEY < <(grep '^URL' guarded.out)
  read -r _ GUARDED_STREAM_URL GUARDED_STREAM_KEY < <(grep '^URL' guarded-stream.out)
fi
# The same requests naming the player they are for (OpenAI's `user`), sent with tags.
REQ_PLAYER=${REQ/\"model\"/\"user\":\"player-7\",\"model\"}
REQ_PLAYER_STREAM=${REQ_STREAM/\"model\"/\"user\":\"player-7\",\"model\"}
TAGS="x-gaia-tags: npc=louisa,quest=first-light"

# --- The peer: LiteLLM's proxy ---------------------------------------------------------------------
if [[ $PEER != 0 ]]; then
  LITELLM_PORT=$(free_port)
  LITELLM_KEY=sk-gaia-bench-master
  # Two names for one model: the same upstream model at nginx's two locations (no way to tell them
  # apart by path otherwise); the streaming requests to LiteLLM ask for `mock-gpt-stream`.
  cat > litellm.yaml << EOF
model_list:
  - model_name: mock-gpt
    litellm_params:
      model: openai/mock-gpt
      api_base: $NGINX_URL/v1
      api_key: sk-dummy
  - model_name: mock-gpt-stream
    litellm_params:
      model: openai/mock-gpt
      api_base: $NGINX_URL/stream/v1
      api_key: sk-dummy
litellm_settings:
  telemetry: false
  set_verbose: false
  suppress_debug_info: true
general_settings:
  master_key: $LITELLM_KEY
EOF
  log "starting LiteLLM $("$CACHE/litellm-venv/bin/pip" show litellm 2> /dev/null | awk '/^Version/{print $2}')"
  t0=$SECONDS
  LITELLM_TELEMETRY=False LITELLM_LOG=ERROR LITELLM_LOCAL_MODEL_COST_MAP=True DISABLE_ADMIN_UI=True \
    NO_DOCS=True PYTHONWARNINGS=ignore env -u DATABASE_URL \
    setsid "$LITELLM" --config litellm.yaml --host 127.0.0.1 --port "$LITELLM_PORT" --num_workers 1 \
    < /dev/null > litellm.log 2>&1 9>&- &
  PIDS+=($!)
  LITELLM_URL=http://127.0.0.1:$LITELLM_PORT/v1/chat/completions
  wait_200 300 -X POST -H 'Content-Type: application/json' -H "Authorization: Bearer $LITELLM_KEY" \
    -d "$REQ" "$LITELLM_URL" || { tail -30 litellm.log >&2; log "LiteLLM did not answer"; exit 1; }
  log "LiteLLM answered after $((SECONDS - t0)) s"
fi

# --- Each target once by hand: the right answer, not just a 200 -----------------------------------
check() { # label url key body expected-substring...
  local out auth=()
  [[ -n $3 ]] && auth=(-H "Authorization: Bearer $3")
  [[ $1 == *player* ]] && auth+=(-H "$TAGS")
  out=$(curl -sS -N --max-time 30 -X POST -H 'Content-Type: application/json' "${auth[@]}" -d "$4" "$2") ||
    { log "$1: request failed"; exit 1; }
  printf '=== %s\n%s\n' "$1" "$out" >> answers.log
  local want
  for want in "${@:5}"; do
    [[ $out == *"$want"* ]] || { log "$1: no $want in the answer: ${out:0:600}"; exit 1; }
  done
}
# The whole text and the usage; for a stream, its first and last pieces, the usage and the end.
PLAIN_OK=("$TEXT" '"total_tokens":18')
STREAM_OK=("\"${TEXT:0:size}\"" "\"${TEXT:(n - 1) / size * size}\"" '"total_tokens":18' 'data: [DONE]')
check "nginx" "$NGINX_URL/v1/chat/completions" "" "$REQ" "${PLAIN_OK[@]}"
check "nginx stream" "$NGINX_URL/stream/v1/chat/completions" "" "$REQ_STREAM" "${STREAM_OK[@]}"
check "Gaia" "$GAIA_URL" "$GAIA_KEY" "$REQ" "${PLAIN_OK[@]}"
check "Gaia stream" "$GAIA_STREAM_URL" "$GAIA_STREAM_KEY" "$REQ_STREAM" "${STREAM_OK[@]}"
if [[ $EXTRA != 0 ]]; then
  check "Gaia player" "$GAIA_URL" "$GAIA_KEY" "$REQ_PLAYER" "${PLAIN_OK[@]}"
  check "Gaia player stream" "$GAIA_STREAM_URL" "$GAIA_STREAM_KEY" "$REQ_PLAYER_STREAM" "${STREAM_OK[@]}"
  check "Gaia guarded" "$GUARDED_URL" "$GUARDED_KEY" "$REQ" "${PLAIN_OK[@]}"
  # Guarded, a short answer is let out in one piece once checked (it is shorter than a window).
  check "Gaia guarded stream" "$GUARDED_STREAM_URL" "$GUARDED_STREAM_KEY" "$REQ_STREAM" "\"$TEXT\"" '"total_tokens":18' 'data: [DONE]'
fi
if [[ $PEER != 0 ]]; then
  check "LiteLLM" "$LITELLM_URL" "$LITELLM_KEY" "$REQ" "${PLAIN_OK[@]}"
  check "LiteLLM stream" "$LITELLM_URL" "$LITELLM_KEY" "${REQ_STREAM/mock-gpt/mock-gpt-stream}" "${STREAM_OK[@]}"
fi

# --- wrk ------------------------------------------------------------------------------------------
cat > bench.lua << 'EOF'
-- POSTs WRK_BODY with WRK_KEY as a bearer token; counts answers other than 200 and prints one
-- summary line: latency percentiles in microseconds, req/s, and the failures.
wrk.method = "POST"
wrk.body = os.getenv("WRK_BODY")
wrk.headers["Content-Type"] = "application/json"
local key = os.getenv("WRK_KEY")
if key and key ~= "" then wrk.headers["Authorization"] = "Bearer " .. key end
local tags = os.getenv("WRK_TAGS")
if tags and tags ~= "" then wrk.headers["x-gaia-tags"] = tags end

local threads = {}
function setup(thread) table.insert(threads, thread) end

not200 = 0
function response(status, headers, body)
  if status ~= 200 then not200 = not200 + 1 end
end

function done(summary, latency, requests)
  local bad = 0
  for _, t in ipairs(threads) do bad = bad + t:get("not200") end
  local e = summary.errors
  io.write(string.format("GAIA_WRK p50=%d p99=%d p999=%d requests=%d rps=%.1f not200=%d non2xx=%d sockerr=%d\n",
    latency:percentile(50), latency:percentile(99), latency:percentile(99.9), summary.requests,
    summary.requests / (summary.duration / 1e6), bad, e.status, e.connect + e.read + e.write + e.timeout))
end
EOF
# wrk_run name conns secs url key body: leaves the GAIA_WRK line's fields in R_<field>.
wrk_run() {
  local out
  local tags=""
  [[ $1 == *player* ]] && tags=${TAGS#x-gaia-tags: }
  out=$(WRK_KEY=$5 WRK_BODY=$6 WRK_TAGS=$tags wrk -t1 -c"$2" -d"${3}s" --timeout 10s --latency -s bench.lua "$4" 9>&-)
  printf '=== %s, %s connection(s), %s s\n%s\n' "$1" "$2" "$3" "$out" >> wrk.log
  local line
  line=$(grep '^GAIA_WRK' <<< "$out") || { echo "$out" >&2; log "$1: wrk printed no summary"; exit 1; }
  for kv in ${line#GAIA_WRK }; do printf -v "R_${kv%%=*}" '%s' "${kv#*=}"; done
}

TARGETS=(nginx gaia)
[[ $EXTRA != 0 ]] && TARGETS+=(player guarded)
[[ $PEER != 0 ]] && TARGETS+=(litellm)
declare -A LABEL=([nginx]="nginx (floor)" [gaia]="Gaia" [litellm]="LiteLLM" [player]="Gaia, a player and tags"
  [guarded]="Gaia, guardrails on")
declare -A P50 P99 P999 RPS ERR
us() { awk -v u="$1" 'BEGIN { printf "%.3f ms", u / 1000 }'; }
for c in plain stream; do
  for t in "${TARGETS[@]}"; do
    body=$REQ; [[ $c == stream ]] && body=$REQ_STREAM
    case $t/$c in
      nginx/plain) url=$NGINX_URL/v1/chat/completions key="" ;;
      nginx/stream) url=$NGINX_URL/stream/v1/chat/completions key="" ;;
      gaia/plain) url=$GAIA_URL key=$GAIA_KEY ;;
      gaia/stream) url=$GAIA_STREAM_URL key=$GAIA_STREAM_KEY ;;
      player/plain) url=$GAIA_URL key=$GAIA_KEY body=$REQ_PLAYER ;;
      player/stream) url=$GAIA_STREAM_URL key=$GAIA_STREAM_KEY body=$REQ_PLAYER_STREAM ;;
      guarded/plain) url=$GUARDED_URL key=$GUARDED_KEY ;;
      guarded/stream) url=$GUARDED_STREAM_URL key=$GUARDED_STREAM_KEY ;;
      litellm/plain) url=$LITELLM_URL key=$LITELLM_KEY ;;
      litellm/stream) url=$LITELLM_URL key=$LITELLM_KEY body=${REQ_STREAM/mock-gpt/mock-gpt-stream} ;;
    esac
    log "$c / $t: warm-up ${WARMUP} s, then 1 connection ${SECS} s, then 32 connections ${SECS} s"
    [[ $WARMUP -gt 0 ]] && wrk_run "$c/$t warm-up" 32 "$WARMUP" "$url" "$key" "$body"
    wrk_run "$c/$t" 1 "$SECS" "$url" "$key" "$body"
    P50[$t/$c]=$R_p50 P99[$t/$c]=$R_p99 P999[$t/$c]=$R_p999
    e=($R_not200 $R_non2xx $R_sockerr $R_requests)
    wrk_run "$c/$t" 32 "$SECS" "$url" "$key" "$body"
    RPS[$t/$c]=$R_rps
    ERR[$t/$c]="$((e[0] + R_not200))/$((e[1] + R_non2xx))/$((e[2] + R_sockerr)) of $((e[3] + R_requests))"
  done
done

# --- Report ---------------------------------------------------------------------------------------
echo "gateway_peers: wrk -t1, ${SECS} s per measurement after a ${WARMUP} s warm-up; nginx $("$NGINX" -v 2>&1 | sed 's/.*nginx\///'), $(wrk -v 2>&1 | head -1 | awk '{print $2}')$([[ $PEER != 0 ]] && echo ", LiteLLM $("$CACHE/litellm-venv/bin/pip" show litellm 2> /dev/null | awk '/^Version/{print $2}')"); $(nproc) cores"
echo "latency at 1 connection (closed loop), throughput at 32 connections; errors: answers not 200 / non-2xx counted by wrk / socket errors, of all requests at 1 and 32 connections"
echo
echo "| case | target | p50 | p99 | p99.9 | added p50 | added p99 | req/s (32 conns) | ratio to nginx | errors |"
echo "|---|---|---|---|---|---|---|---|---|---|"
for c in plain stream; do
  name="non-streaming"; [[ $c == stream ]] && name="streaming (8 chunks, include_usage)"
  for t in "${TARGETS[@]}"; do
    k=$t/$c
    if [[ $t == nginx ]]; then add50="" add99="" ratio="1.00"; else
      add50=$(awk -v a="${P50[$k]}" -v b="${P50[nginx/$c]}" 'BEGIN { printf "%+.3f ms", (a - b) / 1000 }')
      add99=$(awk -v a="${P99[$k]}" -v b="${P99[nginx/$c]}" 'BEGIN { printf "%+.3f ms", (a - b) / 1000 }')
      ratio=$(awk -v a="${RPS[$k]}" -v b="${RPS[nginx/$c]}" 'BEGIN { r = a / b; if (r >= 0.1) printf "%.2f", r; else printf "1/%.0f", 1 / r }')
    fi
    printf '| %s | %s | %s | %s | %s | %s | %s | %.0f | %s | %s |\n' "$name" "${LABEL[$t]}" "$(us "${P50[$k]}")" \
      "$(us "${P99[$k]}")" "$(us "${P999[$k]}")" "$add50" "$add99" "${RPS[$k]}" "$ratio" "${ERR[$k]}"
  done
done
