#!/usr/bin/env bash
# proxy_vs_nginx.sh: peer benchmark of lbsim's live reverse proxy (`lbsim proxy`) against nginx.
#
# Purpose
#   Puts each proxy, in turn, in front of the same 4 loopback backends and drives it with wrk,
#   under each of the 4 balance strategies of a VPC channel:
#
#     strategy            nginx upstream directive         lbsim
#     round robin         (none)                           --strategy wrr
#     least connections   least_conn;                      --strategy wlc
#     URI hash            hash $request_uri consistent;    --strategy uri
#     source-IP hash      hash $remote_addr consistent;    --strategy sh
#
#   The backends are ONE nginx instance (worker_processes 1, access_log off) listening on 4
#   loopback ports, each answering `200 ok\n` at once, so the proxies, not the backends, are
#   measured. Both proxies get the same number of worker threads ($W), keep upstream
#   connections alive, and see the same wrk load; runs alternate between them.
#   URI hash: a wrk Lua script spreads the requests over $URI_KEYS paths /api/v1/items/<n>.
#   Source-IP hash: every wrk connection comes from 127.0.0.1, so a Lua script sends the client
#   address in an `X-Client-IP` header ($CLIENT_IPS distinct addresses 10.x.y.z); nginx takes
#   it as $remote_addr (realip module: set_real_ip_from 127.0.0.1; real_ip_header X-Client-IP)
#   and lbsim with --client-ip-header X-Client-IP.
#   Both sides: no keep-alive request limit (nginx keepalive_requests raised from its default
#   1000 on the client side, upstream side and backends), so no side pays reconnects.
#
#   Prints, per strategy: nginx req/s and lbsim req/s (medians of the runs), their ratio
#   lbsim/nginx, nginx and lbsim p99 latency in ms (medians of the runs' p99s) and the p99 ratio;
#   writes the same, with every run's req/s, p50, p90, p99, request count and errors, as JSON to
#   target/proxy_vs_nginx.json. Non-2xx answers and socket errors are reported (a proxy that
#   answers 502 fast must not look fast).
#
# Usage (from the repository root)
#   benches/proxy_vs_nginx.sh
#   DURATION=30 RUNS=5 W=4 benches/proxy_vs_nginx.sh
#   PROXIES=nginx DURATION=3 RUNS=1 benches/proxy_vs_nginx.sh     # nginx only (no lbsim build)
#   STRATEGIES="wrr uri" benches/proxy_vs_nginx.sh
#
#   Environment (defaults):
#     PROXIES="nginx lbsim"      proxies to measure (nginx, lbsim; either or both)
#     STRATEGIES="wrr wlc uri sh" strategies, in this order
#     DURATION=10                seconds of each wrk run
#     RUNS=3                     runs per proxy and strategy (median reported)
#     W=2                        worker threads: nginx worker_processes and lbsim --workers
#     WRK_THREADS=2 WRK_CONNECTIONS=64   wrk -t and -c
#     WARMUP=1                   seconds of a discarded wrk run per proxy and strategy (0: none)
#     URI_KEYS=10000             distinct paths for URI hash
#     CLIENT_IPS=10000           distinct client addresses for source-IP hash
#     WAIT_TIMEOUT=30            seconds to wait for a proxy or the backends to answer
#     OUT=target/proxy_vs_nginx.json
#
# What it installs (Debian, with apt-get, only when missing; needs root or sudo)
#   nginx (only the binary is used: the packaged service is not started; when no
#   /usr/sbin/policy-rc.d exists one denying service starts is put there for the install and
#   removed after), wrk, curl. It builds lbsim with `cargo build --release`
#   (target/release/lbsim) unless PROXIES leaves lbsim out.
#
# How long it takes
#   About len(STRATEGIES) x len(PROXIES) x (RUNS x DURATION + WARMUP + ~1) seconds: with the
#   defaults 4 x 2 x 32 s, about 4.5 minutes, plus the release build the first time (a few
#   minutes) and the package install if needed.
#
# Everything listens and connects on 127.0.0.1 only. Temporary files (configs, logs, the
# scenario, Lua scripts) live in a `mktemp -d` directory removed on exit; every process started
# here is stopped on exit. Every wait is bounded, and wrk by -d (and `timeout`).
#
# Caveat: wrk, the proxy under test and the backends share the machine's cores; read the ratios,
# not the absolute numbers, and prefer a machine with more cores than W + WRK_THREADS + 1.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

PROXIES=${PROXIES:-"nginx lbsim"}
STRATEGIES=${STRATEGIES:-"wrr wlc uri sh"}
DURATION=${DURATION:-10}
RUNS=${RUNS:-3}
W=${W:-2}
WRK_THREADS=${WRK_THREADS:-2}
WRK_CONNECTIONS=${WRK_CONNECTIONS:-64}
WARMUP=${WARMUP:-1}
URI_KEYS=${URI_KEYS:-10000}
CLIENT_IPS=${CLIENT_IPS:-10000}
WAIT_TIMEOUT=${WAIT_TIMEOUT:-30}
OUT=${OUT:-target/proxy_vs_nginx.json}
LBSIM=target/release/lbsim
CLIENT_IP_HEADER=X-Client-IP
MEMBERS=(192.168.0.1:8080 192.168.0.2:8080 192.168.0.3:8080 192.168.0.4:8080)

log() { printf '[proxy_vs_nginx] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# ---- arguments ----------------------------------------------------------------------------------
for v in DURATION RUNS W WRK_THREADS WRK_CONNECTIONS URI_KEYS CLIENT_IPS WAIT_TIMEOUT; do
  [[ ${!v} =~ ^[1-9][0-9]*$ ]] || die "$v must be a positive integer (is '${!v}')"
done
[[ $WARMUP =~ ^[0-9]+$ ]] || die "WARMUP must be an integer >= 0 (is '$WARMUP')"
read -r -a PROXY_LIST <<<"$PROXIES"
read -r -a STRATEGY_LIST <<<"$STRATEGIES"
((${#PROXY_LIST[@]})) || die "PROXIES is empty"
((${#STRATEGY_LIST[@]})) || die "STRATEGIES is empty"
for p in "${PROXY_LIST[@]}"; do
  [[ $p == nginx || $p == lbsim ]] || die "unknown proxy '$p' in PROXIES (nginx, lbsim)"
done
for s in "${STRATEGY_LIST[@]}"; do
  [[ $s =~ ^(wrr|wlc|uri|sh)$ ]] || die "unknown strategy '$s' in STRATEGIES (wrr wlc uri sh)"
done
want() { [[ " $PROXIES " == *" $1 "* ]]; }

strategy_label() {
  case $1 in
    wrr) echo "round robin" ;;
    wlc) echo "least connections" ;;
    uri) echo "URI hash" ;;
    sh) echo "source-IP hash" ;;
  esac
}
strategy_code() { # the create-VPC-channel API's balance_strategy number
  case $1 in wrr) echo 1 ;; wlc) echo 2 ;; sh) echo 3 ;; uri) echo 4 ;; esac
}
# shellcheck disable=SC2016 # nginx variables, not shell ones
nginx_directive() {
  case $1 in
    wrr) echo "" ;;
    wlc) echo "least_conn;" ;;
    uri) echo 'hash $request_uri consistent;' ;;
    sh) echo 'hash $remote_addr consistent;' ;;
  esac
}

# ---- cleanup ------------------------------------------------------------------------------------
TMP=""
PIDS=()
POLICY_RC_CREATED=""
SUDO=""

stop_pid() { # TERM, wait up to 10 s, then KILL (with its children)
  local pid=$1 i children
  kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }
  children=$(pgrep -P "$pid" 2>/dev/null || true)
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < 100; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    log "pid $pid did not stop on SIGTERM within 10 s: SIGKILL"
    # shellcheck disable=SC2086 # one pid per word
    kill -KILL "$pid" $children 2>/dev/null || true
  fi
  wait "$pid" 2>/dev/null || true
}

forget_pid() {
  local keep=() p
  for p in ${PIDS[@]+"${PIDS[@]}"}; do [[ $p == "$1" ]] || keep+=("$p"); done
  PIDS=(${keep[@]+"${keep[@]}"})
}

cleanup() {
  local rc=$? p
  trap - EXIT INT TERM
  for p in ${PIDS[@]+"${PIDS[@]}"}; do stop_pid "$p"; done
  if [[ -n $POLICY_RC_CREATED ]]; then $SUDO rm -f /usr/sbin/policy-rc.d || true; fi
  if [[ -n $TMP && -d $TMP ]]; then rm -rf "$TMP"; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---- install ------------------------------------------------------------------------------------
find_nginx() { command -v nginx 2>/dev/null || { [[ -x /usr/sbin/nginx ]] && echo /usr/sbin/nginx; } || true; }

missing=()
[[ -n $(find_nginx) ]] || missing+=(nginx)
command -v wrk >/dev/null 2>&1 || missing+=(wrk)
command -v curl >/dev/null 2>&1 || missing+=(curl)
if ((${#missing[@]})); then
  if ((EUID != 0)); then
    command -v sudo >/dev/null 2>&1 || die "missing ${missing[*]} and not root (no sudo): install them first"
    SUDO=sudo
  fi
  command -v apt-get >/dev/null 2>&1 || die "missing ${missing[*]} and no apt-get: install them first"
  if [[ " ${missing[*]} " == *" nginx "* && ! -e /usr/sbin/policy-rc.d ]]; then
    # Keep the package from starting its system service: only the binary is used.
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
    $SUDO chmod 755 /usr/sbin/policy-rc.d
    POLICY_RC_CREATED=1
  fi
  log "installing ${missing[*]} (apt-get)"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
  if [[ -n $POLICY_RC_CREATED ]]; then
    $SUDO rm -f /usr/sbin/policy-rc.d
    POLICY_RC_CREATED=""
  fi
fi
NGINX=$(find_nginx)
[[ -n $NGINX ]] || die "nginx not found after install"
NGINX_VERSION=$("$NGINX" -v 2>&1 | sed -n 's|.*nginx/\([^ ]*\).*|\1|p')
WRK_VERSION=$(wrk -v 2>&1 | sed -n '1s/^wrk \([^ ]*\).*/\1/p' || true)
if [[ -n $NGINX_VERSION ]] && ! "$NGINX" -V 2>&1 | grep -q -- --with-http_realip_module; then
  [[ " $STRATEGIES " != *" sh "* ]] || ! want nginx ||
    die "this nginx lacks the realip module, needed for source-IP hash: leave sh out of STRATEGIES"
fi

if want lbsim; then
  log "building lbsim (cargo build --release)"
  cargo build --release >&2
  [[ -x $LBSIM ]] || die "$LBSIM not found after the build"
  "$LBSIM" proxy --help >/dev/null 2>&1 ||
    die "$LBSIM has no 'proxy' subcommand yet: run with PROXIES=nginx"
fi

# ---- temp dir, ports ----------------------------------------------------------------------------
TMP=$(mktemp -d "${TMPDIR:-/tmp}/proxy_vs_nginx.XXXXXX")
# nginx's workers run as an unprivileged user when started as root: they must reach the temp paths.
chmod 755 "$TMP"
mkdir -p "$TMP/results"

USED_PORTS=" "
PORT=""
port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
pick_port() { # sets PORT to a free loopback port below the ephemeral range
  local i p
  for ((i = 0; i < 500; i++)); do
    p=$((20000 + RANDOM % 12000))
    [[ $USED_PORTS == *" $p "* ]] && continue
    if port_free "$p"; then
      USED_PORTS+="$p "
      PORT=$p
      return 0
    fi
  done
  die "no free loopback port found"
}

# wait_http URL PID NAME LOG: until URL answers 200 "ok" (bounded by WAIT_TIMEOUT)
wait_http() {
  local url=$1 pid=$2 name=$3 logf=$4 deadline=$((SECONDS + WAIT_TIMEOUT)) body
  while ((SECONDS < deadline)); do
    if ! kill -0 "$pid" 2>/dev/null; then
      log "$name exited while starting; its log:"
      tail -n 30 "$logf" >&2 || true
      die "$name did not start"
    fi
    body=$(curl -sS --noproxy '*' --max-time 1 -H "$CLIENT_IP_HEADER: 10.0.0.1" "$url" 2>/dev/null || true)
    [[ $body == ok ]] && return 0
    sleep 0.1
  done
  log "$name did not answer $url within $WAIT_TIMEOUT s; its log:"
  tail -n 30 "$logf" >&2 || true
  die "$name did not start"
}

nginx_common() { # PREFIX NAME: main-context lines and the start of http {}
  local name=$1
  mkdir -p "$TMP/$name"
  cat <<EOF
daemon off;
pid $TMP/$name/nginx.pid;
error_log $TMP/$name/error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path $TMP/$name/client_body;
  proxy_temp_path $TMP/$name/proxy;
  fastcgi_temp_path $TMP/$name/fastcgi;
  uwsgi_temp_path $TMP/$name/uwsgi;
  scgi_temp_path $TMP/$name/scgi;
  keepalive_requests 1000000;
  keepalive_timeout 65s;
EOF
}

start_nginx() { # NAME CONF: sets STARTED_PID
  local name=$1 conf=$2
  "$NGINX" -c "$conf" -p "$TMP/$name/" -e "$TMP/$name/error.log" >>"$TMP/$name/stdout.log" 2>&1 &
  STARTED_PID=$!
  PIDS+=("$STARTED_PID")
}

# ---- backends -----------------------------------------------------------------------------------
BACKEND_PORTS=()
for _ in "${MEMBERS[@]}"; do
  pick_port
  BACKEND_PORTS+=("$PORT")
done
{
  echo "worker_processes 1;"
  nginx_common backends
  for p in "${BACKEND_PORTS[@]}"; do
    printf '  server { listen 127.0.0.1:%s; location / { return 200 "ok\\n"; } }\n' "$p"
  done
  echo "}"
} >"$TMP/backends.conf"
start_nginx backends "$TMP/backends.conf"
BACKENDS_PID=$STARTED_PID
for p in "${BACKEND_PORTS[@]}"; do
  wait_http "http://127.0.0.1:$p/" "$BACKENDS_PID" "backend nginx" "$TMP/backends/error.log"
done
log "backends: nginx $NGINX_VERSION (1 worker) on 127.0.0.1:${BACKEND_PORTS[*]}"

BACKENDS_ARG=""
for i in "${!MEMBERS[@]}"; do
  BACKENDS_ARG+="${BACKENDS_ARG:+,}${MEMBERS[$i]}=127.0.0.1:${BACKEND_PORTS[$i]}"
done

# ---- wrk Lua scripts ----------------------------------------------------------------------------
cat >"$TMP/uri.lua" <<EOF
-- URI hash load: cycles over $URI_KEYS paths /api/v1/items/<n>; each thread starts elsewhere.
local keys = $URI_KEYS
local threads = 0
function setup(thread)
  thread:set("offset", threads * 7919)
  threads = threads + 1
end
function init(args)
  reqs = {}
  for i = 0, keys - 1 do
    reqs[i] = wrk.format("GET", "/api/v1/items/" .. i)
  end
  counter = offset or 0
end
function request()
  counter = counter + 1
  return reqs[counter % keys]
end
EOF
cat >"$TMP/sh.lua" <<EOF
-- Source-IP hash load: cycles over $CLIENT_IPS client addresses 10.x.y.z sent in
-- $CLIENT_IP_HEADER (the proxies take the client address from it); each thread starts elsewhere.
local keys = $CLIENT_IPS
local threads = 0
function setup(thread)
  thread:set("offset", threads * 7919)
  threads = threads + 1
end
function init(args)
  reqs = {}
  for i = 0, keys - 1 do
    local n = i + 1
    local ip = "10." .. (math.floor(n / 65536) % 256) .. "." .. (math.floor(n / 256) % 256) .. "." .. (n % 256)
    reqs[i] = wrk.format("GET", "/api/v1/items/1", { ["$CLIENT_IP_HEADER"] = ip })
  end
  counter = offset or 0
end
function request()
  counter = counter + 1
  return reqs[counter % keys]
end
EOF

# ---- proxies ------------------------------------------------------------------------------------
# start_proxy PROXY STRATEGY: sets PROXY_PORT and PROXY_PID once it answers
start_proxy() {
  local proxy=$1 s=$2 name="${1}_$2" conf scenario logf
  pick_port
  PROXY_PORT=$PORT
  case $proxy in
    nginx)
      conf="$TMP/$name.conf"
      {
        echo "worker_processes $W;"
        nginx_common "$name"
        echo "  upstream backends {"
        [[ -z $(nginx_directive "$s") ]] || echo "    $(nginx_directive "$s")"
        for p in "${BACKEND_PORTS[@]}"; do echo "    server 127.0.0.1:$p;"; done
        echo "    keepalive 64;"
        echo "    keepalive_requests 1000000;"
        echo "  }"
        echo "  server {"
        echo "    listen 127.0.0.1:$PROXY_PORT;"
        if [[ $s == sh ]]; then
          echo "    set_real_ip_from 127.0.0.1;"
          echo "    real_ip_header $CLIENT_IP_HEADER;"
        fi
        echo "    location / {"
        echo "      proxy_pass http://backends;"
        echo "      proxy_http_version 1.1;"
        echo "      proxy_set_header Connection \"\";"
        echo "    }"
        echo "  }"
        echo "}"
      } >"$conf"
      start_nginx "$name" "$conf"
      logf="$TMP/$name/error.log"
      ;;
    lbsim)
      scenario="$TMP/scenario_$s.toml"
      logf="$TMP/$name.log"
      local extra=()
      [[ $s != sh ]] || extra=(--client-ip-header "$CLIENT_IP_HEADER")
      "$LBSIM" proxy "$scenario" --listen "127.0.0.1:$PROXY_PORT" --backends "$BACKENDS_ARG" \
        --strategy "$s" --workers "$W" --log-level warn ${extra[@]+"${extra[@]}"} >"$logf" 2>&1 &
      STARTED_PID=$!
      PIDS+=("$STARTED_PID")
      ;;
  esac
  PROXY_PID=$STARTED_PID
  wait_http "http://127.0.0.1:$PROXY_PORT/api/v1/items/1" "$PROXY_PID" "$proxy proxy ($s)" "$logf"
}

write_scenario() { # STRATEGY
  local s=$1 i
  {
    echo "# proxy_vs_nginx: one VPC channel, 4 equal members, no health check."
    echo "name = \"proxy_vs_nginx_$s\""
    echo "seed = 1"
    echo "duration_s = 60"
    echo "strategies = [$(strategy_code "$s")]"
    echo
    echo "[balancer]"
    echo "uri_hash_key = \"path\""
    echo
    echo "[channel]"
    echo "name = \"VPC_proxy_vs_nginx\""
    echo "port = 8080"
    echo "balance_strategy = $(strategy_code "$s")"
    echo "member_type = \"ip\""
    echo "instance_ids = [\"eea73cde015940908ae0117d67bf7330\"]"
    echo "members = ["
    for i in "${!MEMBERS[@]}"; do
      echo "  { host = \"${MEMBERS[$i]%:*}\", weight = 1 },"
    done
    echo "]"
  } >"$TMP/scenario_$s.toml"
}

# ---- load ---------------------------------------------------------------------------------------
# run_wrk PORT STRATEGY SECONDS OUTFILE
run_wrk() {
  local port=$1 s=$2 secs=$3 out=$4 script=()
  case $s in
    uri) script=(-s "$TMP/uri.lua") ;;
    sh) script=(-s "$TMP/sh.lua") ;;
  esac
  if ! timeout $((secs + 30)) wrk -t"$WRK_THREADS" -c"$WRK_CONNECTIONS" -d"${secs}s" --latency \
    ${script[@]+"${script[@]}"} "http://127.0.0.1:$port/api/v1/items/1" >"$out" 2>&1; then
    cat "$out" >&2
    die "wrk failed against 127.0.0.1:$port"
  fi
}

# parse_wrk FILE: prints "rps p50_ms p90_ms p99_ms requests non_2xx socket_errors"
parse_wrk() {
  awk '
    function ms(v) {
      if (v ~ /us$/) return substr(v, 1, length(v) - 2) / 1000
      if (v ~ /ms$/) return substr(v, 1, length(v) - 2) + 0
      if (v ~ /m$/) return substr(v, 1, length(v) - 1) * 60000
      if (v ~ /h$/) return substr(v, 1, length(v) - 1) * 3600000
      if (v ~ /s$/) return substr(v, 1, length(v) - 1) * 1000
      return v + 0
    }
    /^Requests\/sec:/ { rps = $2 }
    $1 == "50%" { p50 = ms($2) }
    $1 == "90%" { p90 = ms($2) }
    $1 == "99%" { p99 = ms($2) }
    / requests in / { total = $1 }
    /Non-2xx or 3xx responses:/ { non2xx = $NF }
    /Socket errors:/ {
      for (i = 3; i <= NF; i++) if ($i ~ /^[0-9]+,?$/) { sub(",", "", $i); sock += $i }
    }
    END {
      if (rps == "" || p99 == "") exit 1
      printf "%.2f %.3f %.3f %.3f %d %d %d\n", rps, p50, p90, p99, total, non2xx, sock
    }' "$1"
}

median() { # numbers as arguments
  printf '%s\n' "$@" | sort -g | awk '
    { a[NR] = $1 }
    END { if (NR % 2) printf "%.3f\n", a[(NR + 1) / 2]; else printf "%.3f\n", (a[NR / 2] + a[NR / 2 + 1]) / 2 }'
}

ratio() { # A B: A/B, or "null"
  if [[ $1 == null || $2 == null ]]; then echo null; return; fi
  awk -v a="$1" -v b="$2" 'BEGIN { if (b + 0 == 0) print "null"; else printf "%.3f\n", a / b }'
}

# ---- the runs -----------------------------------------------------------------------------------
log "proxies: $PROXIES; strategies: $STRATEGIES; $RUNS run(s) of ${DURATION}s each;" \
  "wrk -t$WRK_THREADS -c$WRK_CONNECTIONS; $W worker thread(s) per proxy"
declare -A PORT_OF PID_OF
for s in "${STRATEGY_LIST[@]}"; do
  write_scenario "$s"
  for proxy in "${PROXY_LIST[@]}"; do
    start_proxy "$proxy" "$s"
    PORT_OF[$proxy]=$PROXY_PORT
    PID_OF[$proxy]=$PROXY_PID
    if ((WARMUP > 0)); then run_wrk "$PROXY_PORT" "$s" "$WARMUP" "$TMP/results/warmup_${s}_$proxy.txt"; fi
  done
  for ((run = 1; run <= RUNS; run++)); do
    for proxy in "${PROXY_LIST[@]}"; do
      raw="$TMP/results/${s}_${proxy}_$run.wrk"
      run_wrk "${PORT_OF[$proxy]}" "$s" "$DURATION" "$raw"
      kill -0 "${PID_OF[$proxy]}" 2>/dev/null || die "$proxy proxy ($s) died during run $run"
      parse_wrk "$raw" >"$TMP/results/${s}_${proxy}_$run.txt" || { cat "$raw" >&2; die "cannot parse wrk output"; }
      read -r rps p50 p90 p99 total non2xx sock <"$TMP/results/${s}_${proxy}_$run.txt"
      log "$(printf '%-18s %-5s run %d/%d: %10s req/s  p50 %7s ms  p90 %7s ms  p99 %7s ms  non-2xx %s  socket errors %s' \
        "$(strategy_label "$s")" "$proxy" "$run" "$RUNS" "$rps" "$p50" "$p90" "$p99" "$non2xx" "$sock")"
    done
  done
  for proxy in "${PROXY_LIST[@]}"; do
    stop_pid "${PID_OF[$proxy]}"
    forget_pid "${PID_OF[$proxy]}"
  done
done

# ---- report -------------------------------------------------------------------------------------
# stat PROXY STRATEGY COLUMN(1-7): median over the runs, or "null" when the proxy was not run
stat_of() {
  local proxy=$1 s=$2 col=$3 vals=() f
  want "$proxy" || { echo null; return; }
  for ((run = 1; run <= RUNS; run++)); do
    f="$TMP/results/${s}_${proxy}_$run.txt"
    vals+=("$(awk -v c="$col" '{ print $c }' "$f")")
  done
  median "${vals[@]}"
}
sum_of() { # PROXY STRATEGY COLUMN: sum over the runs
  local proxy=$1 s=$2 col=$3
  want "$proxy" || { echo null; return; }
  cat "$TMP/results/${s}_${proxy}"_*.txt | awk -v c="$col" '{ t += $c } END { print t + 0 }'
}
show() { # FORMAT VALUE: "-" for null
  if [[ $2 == null ]]; then echo "-"; else awk -v f="$1" -v v="$2" 'BEGIN { printf f "\n", v }'; fi
}

mkdir -p "$(dirname "$OUT")"
{
  printf '{\n'
  printf '  "benchmark": "proxy_vs_nginx",\n'
  printf '  "date": "%s",\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)"
  printf '  "host": { "cpus": %s, "kernel": "%s" },\n' "$(nproc)" "$(uname -r)"
  printf '  "config": { "proxies": [%s], "duration_s": %s, "runs": %s, "workers": %s, "wrk_threads": %s, "wrk_connections": %s, "warmup_s": %s, "uri_keys": %s, "client_ips": %s, "client_ip_header": "%s", "backends": "nginx %s, worker_processes 1, return 200 ok", "nginx_version": "%s", "wrk_version": "%s", "lbsim_commit": "%s" },\n' \
    "$(for p in "${PROXY_LIST[@]}"; do printf '"%s"' "$p"; done | sed 's/""/", "/g')" \
    "$DURATION" "$RUNS" "$W" "$WRK_THREADS" "$WRK_CONNECTIONS" "$WARMUP" "$URI_KEYS" "$CLIENT_IPS" \
    "$CLIENT_IP_HEADER" "$NGINX_VERSION" "$NGINX_VERSION" "$WRK_VERSION" \
    "$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
  printf '  "strategies": [\n'
  first_s=1
  for s in "${STRATEGY_LIST[@]}"; do
    ((first_s)) || printf ',\n'
    first_s=0
    printf '    {\n      "strategy": "%s",\n      "label": "%s",\n      "nginx_directive": "%s",\n' \
      "$s" "$(strategy_label "$s")" "$(nginx_directive "$s")"
    for proxy in nginx lbsim; do
      if ! want "$proxy"; then
        printf '      "%s": null,\n' "$proxy"
        continue
      fi
      printf '      "%s": {\n        "runs": [' "$proxy"
      for ((run = 1; run <= RUNS; run++)); do
        read -r rps p50 p90 p99 total non2xx sock <"$TMP/results/${s}_${proxy}_$run.txt"
        ((run == 1)) || printf ', '
        printf '{ "rps": %s, "p50_ms": %s, "p90_ms": %s, "p99_ms": %s, "requests": %s, "non_2xx": %s, "socket_errors": %s }' \
          "$rps" "$p50" "$p90" "$p99" "$total" "$non2xx" "$sock"
      done
      printf '],\n'
      printf '        "rps_median": %s, "p50_ms_median": %s, "p90_ms_median": %s, "p99_ms_median": %s, "non_2xx_total": %s, "socket_errors_total": %s\n      },\n' \
        "$(stat_of "$proxy" "$s" 1)" "$(stat_of "$proxy" "$s" 2)" "$(stat_of "$proxy" "$s" 3)" \
        "$(stat_of "$proxy" "$s" 4)" "$(sum_of "$proxy" "$s" 6)" "$(sum_of "$proxy" "$s" 7)"
    done
    printf '      "rps_ratio_lbsim_over_nginx": %s,\n      "p99_ratio_lbsim_over_nginx": %s\n    }' \
      "$(ratio "$(stat_of lbsim "$s" 1)" "$(stat_of nginx "$s" 1)")" \
      "$(ratio "$(stat_of lbsim "$s" 4)" "$(stat_of nginx "$s" 4)")"
  done
  printf '\n  ]\n}\n'
} >"$OUT.tmp"
mv "$OUT.tmp" "$OUT"

echo
echo "proxy_vs_nginx: ${DURATION}s x $RUNS run(s) per proxy, wrk -t$WRK_THREADS -c$WRK_CONNECTIONS," \
  "$W worker thread(s) per proxy, nginx $NGINX_VERSION, $(nproc) CPU(s); medians of the runs"
fmt='%-18s | %12s | %12s | %11s | %12s | %12s | %9s\n'
# shellcheck disable=SC2059 # the format is ours
printf "$fmt" strategy "nginx req/s" "lbsim req/s" "lbsim/nginx" "nginx p99 ms" "lbsim p99 ms" "p99 ratio"
# shellcheck disable=SC2059
printf "$fmt" "------------------" "------------" "------------" "-----------" "------------" "------------" "---------"
errors=0
for s in "${STRATEGY_LIST[@]}"; do
  n_rps=$(stat_of nginx "$s" 1)
  l_rps=$(stat_of lbsim "$s" 1)
  n_p99=$(stat_of nginx "$s" 4)
  l_p99=$(stat_of lbsim "$s" 4)
  # shellcheck disable=SC2059
  printf "$fmt" "$(strategy_label "$s")" "$(show %.0f "$n_rps")" "$(show %.0f "$l_rps")" \
    "$(show %.2f "$(ratio "$l_rps" "$n_rps")")" "$(show %.2f "$n_p99")" "$(show %.2f "$l_p99")" \
    "$(show %.2f "$(ratio "$l_p99" "$n_p99")")"
  for proxy in "${PROXY_LIST[@]}"; do
    bad=$(($(sum_of "$proxy" "$s" 6) + $(sum_of "$proxy" "$s" 7)))
    if ((bad > 0)); then
      errors=1
      echo "  warning: $proxy ($(strategy_label "$s")): $(sum_of "$proxy" "$s" 6) non-2xx answers," \
        "$(sum_of "$proxy" "$s" 7) socket errors over the runs"
    fi
  done
done
echo
echo "JSON: $OUT"
((errors == 0)) || log "some runs had errors (see the warnings): their req/s are not comparable"
