#!/usr/bin/env bash
# Ingress throughput benchmark (issue 3): unique, correctly signed one-message webhooks from wrk
# (keep-alive, 16 connections) against katy-ingress with a real Redis (AOF, appendfsync
# everysec), and in the same run the same load against nginx answering a static 200 (the HTTP
# ceiling of this machine). Prints both rates, their ratio, p50/p99 latency, non-2xx counts and
# how many events actually reached Redis, and what wrk, the server and Redis each spend in CPU
# per request (on a core, and waiting for one).
#
# nginx's rate moves by +-15% between runs on a shared 2-core VM, so one pair of runs gives a
# noisy ratio: the benchmark is repeated for `rounds` rounds and the ratio to judge is the median
# of theirs. Each round starts from the same state: a new, empty Redis and a new ingress.
#
# Usage: bench/ingress.sh [seconds] [connections] [rounds]      (defaults 10, 16 and 3)
# Env:   KATY_HTTP_THREADS (ingress worker threads, default 2), WRK_THREADS (default 2),
#        COMPARE: other katy-ingress binaries (space-separated, e.g. an older build copied
#        aside) to run after this build in every round, each on its own new Redis, for an A/B
#        on the same nginx figure; the median ratio stays this build's.
#        WRK_PREFORMAT=1: the requests are formatted ahead, so wrk does nothing per request but
#        send one: a lighter load generator (bench/RESULTS.md compares the two).
#        REPLICA=1: Redis gets a replica (replicaof, same machine); with
#        KATY_REDIS_WAIT_REPLICAS=1 ingress answers only once WAIT has seen each batch reach it
#        (issue 16: what WAIT costs).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
seconds="${1:-10}"
connections="${2:-16}"
rounds="${3:-3}"
wrk_threads="${WRK_THREADS:-2}"
ingress_threads="${KATY_HTTP_THREADS:-2}"

KATY_EXTRA_PACKAGES="wrk nginx-light" "$root/scripts/setup.sh"
"$root/scripts/build.sh" --target katy-ingress >/dev/null

work=$(mktemp -d /tmp/katy-bench.XXXXXX)

secret="bench-secret-0123456789"
# Enough unique bodies per wrk thread that no connection ever repeats one at the rates this
# machine reaches.
per_thread=$((seconds * 60000))
# Each wrk thread gets its own file of fixed-size records, loaded with one read: wrk sets up its
# threads one after another and starts each as soon as it is set up, so while one loads, the
# threads before it already send (it used to parse one shared file line by line, 3-5 s per
# thread, and that spilled into the measured window: bench/RESULTS.md). A record is the
# signature and the body, formatted into a request by wrk as it sends it, or with
# WRK_PREFORMAT=1 the whole request, so that wrk does nothing per request but send it.
record_bytes=$(python3 - "$work" "$wrk_threads" "$per_thread" "$secret" "${WRK_PREFORMAT:-0}" <<'PY'
import hashlib, hmac, sys
work, threads, per_thread = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
secret, preformat = sys.argv[4].encode(), sys.argv[5] == "1"
files = [open(f"{work}/requests.{t}", "wb") for t in range(threads)]
for i in range(threads * per_thread):
    # Fixed-width numbers keep every record the same size.
    body = ('{"object":"page","entry":[{"id":"104560000000001","time":1764230400000,"messaging":'
            '[{"sender":{"id":"71%014d"},"recipient":{"id":"104560000000001"},"timestamp":1764230400000,'
            '"message":{"mid":"m_bench_%010d","text":"hello"}}]}]}') % (i % 5000, i)
    sig = hmac.new(secret, body.encode(), hashlib.sha256).hexdigest()
    if preformat:
        record = ("POST /webhook HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                  "X-Hub-Signature-256: sha256=%s\r\nContent-Length: %d\r\n\r\n%s") % (sig, len(body), body)
    else:
        record = sig + body
    files[i % threads].write(record.encode())
print(len(record))
PY
)
# The files are hundreds of MB: let their writeback finish now rather than during the runs.
sync

cat >"$work/webhooks.lua" <<LUA
-- Each wrk thread sends the records of its own file, so no body is sent twice.
local threads_seen = 0
function setup(thread)
  thread:set("id", threads_seen)
  threads_seen = threads_seen + 1
end
local size, preformat = $record_bytes, ${WRK_PREFORMAT:-0} == 1
local records, requests, count, next_record = nil, {}, 0, 0
function init(args)
  -- Collect once the heap grows by 10%, not (LuaJIT's default) once it doubles: with hundreds of
  -- MB of records live, waiting for it to double let wrk churn hundreds of MB of garbage and
  -- stall on it, which showed as tens of ms of p99 against nginx (bench/RESULTS.md).
  collectgarbage("setpause", 110)
  local file = assert(io.open("$work/requests." .. id, "rb"))
  records = file:read("*a")
  file:close()
  count = #records / size
  if preformat then
    -- Each request its own string, made once: request() then allocates nothing to collect.
    for k = 1, count do requests[k] = records:sub((k - 1) * size + 1, k * size) end
    records = nil
  end
end
function request()
  next_record = next_record % count + 1
  if preformat then return requests[next_record] end
  local at = (next_record - 1) * size + 1
  return wrk.format("POST", "/webhook", {["Content-Type"] = "application/json",
    ["X-Hub-Signature-256"] = "sha256=" .. records:sub(at, at + 63)}, records:sub(at + 64, at + size - 1))
end
LUA

nginx_port=$(free_port)
start_nginx "$nginx_port"
wait_for_port "$nginx_port"
nginx_workers=$(pgrep -P "${pids[-1]}" | tr '\n' ' ')

# start_stack [BINARY]: a new Redis as production runs it (in its own directory) and a new
# katy-ingress (this build's, or BINARY) on it; sets redis_port, ingress_port, admin_port and
# stack_pids.
start_stack() {
  local dir
  dir=$(mktemp -d "$work/round.XXXXXX")
  redis_port=$(free_port)
  redis-server --port "$redis_port" --bind 127.0.0.1 --dir "$dir" --appendonly yes \
    --appendfsync everysec --save "" >"$dir/redis.log" 2>&1 &
  stack_pids=($!)
  for _ in $(seq 1 50); do redis-cli -p "$redis_port" ping >/dev/null 2>&1 && break; sleep 0.1; done
  if [[ "${REPLICA:-0}" == 1 ]]; then
    local replica_port
    replica_port=$(free_port)
    mkdir -p "$dir/replica"
    redis-server --port "$replica_port" --bind 127.0.0.1 --dir "$dir/replica" --appendonly yes \
      --appendfsync everysec --save "" --replicaof 127.0.0.1 "$redis_port" >"$dir/replica.log" 2>&1 &
    stack_pids+=($!)
    for _ in $(seq 1 100); do
      redis-cli -p "$replica_port" info replication 2>/dev/null | grep -q "master_link_status:up" && break
      sleep 0.1
    done
  fi
  ingress_port=$(free_port)
  admin_port=$(free_port)
  KATY_REDIS_URL="redis://127.0.0.1:$redis_port/0" KATY_APP_SECRET="$secret" KATY_VERIFY_TOKEN=bench-verify \
    KATY_HTTP_ADDR="127.0.0.1:$ingress_port" KATY_GRPC_ADDR="127.0.0.1:$(free_port)" \
    KATY_ADMIN_ADDR="127.0.0.1:$admin_port" KATY_HTTP_THREADS="$ingress_threads" KATY_LOG_LEVEL=error \
    KATY_REDIS_WAIT_REPLICAS="${KATY_REDIS_WAIT_REPLICAS:-0}" \
    "${1:-$root/build/bin/katy-ingress}" >"$dir/ingress.log" 2>&1 &
  stack_pids+=($!)
  pids+=("${stack_pids[@]}")
  wait_for_port "$ingress_port"
}
stop_stack() {
  kill "${stack_pids[@]}" 2>/dev/null || true
  wait "${stack_pids[@]}" 2>/dev/null || true
}

# The requests a server has answered so far (both count every request, the benchmark's own
# few included).
nginx_answered() { curl -s "http://127.0.0.1:$nginx_port/katy-bench-status" | awk 'NR == 3 {print $3}'; }
ingress_answered() { metric_sum "127.0.0.1:$admin_port" '^katy_ingress_requests_total'; }

# run_wrk PORT ANSWERED LABEL:PIDS... -> wrk output. Writes to $work/rate the server's rate in
# a steady window: from 1 s after every wrk thread runs to 2 s before the load ends, counted by
# the server (ANSWERED: a function printing how many requests it has answered). wrk's own
# figure averages from when its last thread starts, but counts the requests its first threads
# sent while the later ones were still loading their bodies. Over the same window, samples the
# CPU of wrk and of the processes given (PIDS space-separated) and writes to $work/cpu what each
# spent per request, on a core and waiting for one, and the share of the machine's time no
# process used. The rate is bounded by the sum: wrk, the server and Redis share the cores.
run_wrk() {
  local port=$1 answered=$2 window=$((seconds - 3)) t0 t1 n0 n1
  shift 2
  wrk -t"$wrk_threads" -c"$connections" -d"${seconds}s" --latency -s "$work/webhooks.lua" \
    "http://127.0.0.1:$port/webhook" >"$work/wrk.out" &
  local wrk_pid=$!
  if ((window > 0)); then
    # wrk sets its threads up one after another and starts each once it is set up: the whole
    # load runs once the process has all of them (plus its main thread).
    while kill -0 "$wrk_pid" 2>/dev/null &&
      (($(ls "/proc/$wrk_pid/task" 2>/dev/null | wc -l) < wrk_threads + 1)); do sleep 0.05; done
    sleep 1
    n0=$($answered)
    sched_sample "wrk:$wrk_pid" "$@" >"$work/sched.before"
    head -1 /proc/stat >"$work/stat.before"
    t0=$(date +%s%N)
    sleep "$window"
    n1=$($answered)
    sched_sample "wrk:$wrk_pid" "$@" >"$work/sched.after"
    head -1 /proc/stat >"$work/stat.after"
    t1=$(date +%s%N)
  fi
  wait "$wrk_pid"
  if ((window > 0)); then
    awk -v n=$((n1 - n0)) -v ns=$((t1 - t0)) 'BEGIN {printf "%.0f", n / ns * 1e9}' >"$work/rate"
    awk -v requests=$((n1 - n0)) '
      NR == FNR {cpu[$1] = $2; wait[$1] = $3; next}
      { on = ($2 - cpu[$1]) / 1000 / requests; waited = ($3 - wait[$1]) / 1000 / requests
        total += on; printf "%s %.1f/%.1f   ", $1, on, waited }
      END {printf "all %.1f", total}' "$work/sched.before" "$work/sched.after" >"$work/cpu"
    echo -n "   $(machine_idle "$work/stat.before" "$work/stat.after")" >>"$work/cpu"
  else
    rate "$(cat "$work/wrk.out")" >"$work/rate"
    echo "(a run under 4 s is too short to sample)" >"$work/cpu"
  fi
  cat "$work/wrk.out"
}
field() { awk -v k="$2" '$1 == k {print $2}' <<<"$1"; }
rate() { awk '/Requests\/sec/ {print $2}' <<<"$1"; }
non2xx() { local n; n=$(awk '/Non-2xx/ {print $NF}' <<<"$1"); echo "${n:-0}"; }
errors() { awk '/Socket errors/ {print}' <<<"$1"; }
summary() {  # summary WRK_OUTPUT RATE -> rate, latency and non-2xx on one line
  printf '%9s req/s   p50 %8s   p99 %8s   non-2xx %s' "$2" "$(field "$1" 50%)" \
    "$(field "$1" 99%)" "$(non2xx "$1")"
}
events_in_redis() {
  local total=0 n shard
  for shard in $(seq 0 15); do
    n=$(redis-cli -p "$redis_port" xlen "katy:{s$(printf %02d "$shard")}:in")
    total=$((total + n))
  done
  echo "$total"
}
batching() {
  curl -s "http://127.0.0.1:$admin_port/metrics" | awk '
    /^katy_ingress_batch_requests_sum/ {s=$2} /^katy_ingress_batch_requests_count/ {c=$2}
    /^katy_ingress_store_seconds_sum/ {t=$2}
    END {if (c > 0) printf "%.1f requests per Redis round trip, %.0f us each", s / c, t / c * 1e6}'
}

echo "machine: $(nproc) cores, $(awk '/model name/ {sub(/.*: /, ""); print; exit}' /proc/cpuinfo)"
echo "load: wrk -t$wrk_threads -c$connections -d${seconds}s, unique signed one-message webhooks; ingress threads: $ingress_threads"
echo "requests: $([[ "${WRK_PREFORMAT:-0}" == 1 ]] && echo "formatted ahead" || echo "formatted by wrk as it sends them");" \
  "rates: requests the server answered in the steady window ($((seconds - 3)) s)"
ratios=()
for round in $(seq 1 "$rounds"); do
  start_stack
  nginx_out=$(run_wrk "$nginx_port" nginx_answered "nginx:$nginx_workers")
  nginx_rate=$(cat "$work/rate")
  nginx_cpu=$(cat "$work/cpu")
  ingress_out=$(run_wrk "$ingress_port" ingress_answered "ingress:${stack_pids[-1]}" "redis:${stack_pids[*]:0:${#stack_pids[@]}-1}")
  ingress_rate=$(cat "$work/rate")
  ingress_cpu=$(cat "$work/cpu")
  ratio=$(awk -v a="$ingress_rate" -v b="$nginx_rate" 'BEGIN {printf "%.2f", a / b}')
  ratios+=("$ratio")
  echo "round $round:"
  echo "  nginx static 200: $(summary "$nginx_out" "$nginx_rate")"
  echo "  katy-ingress:     $(summary "$ingress_out" "$ingress_rate")"
  echo "  ratio ingress/nginx: $ratio"
  echo "  requests answered by ingress: $(awk '/requests in/ {print $1}' <<<"$ingress_out"); events in Redis: $(events_in_redis)"
  echo "  batching: $(batching)"
  echo "  CPU per request, us on a core/waiting for one: against nginx: $nginx_cpu"
  echo "                                                 against ingress: $ingress_cpu"
  errors "$ingress_out" | sed 's/^/  /'
  stop_stack
  for binary in ${COMPARE:-}; do
    start_stack "$binary"
    other_out=$(run_wrk "$ingress_port" ingress_answered "ingress:${stack_pids[-1]}" "redis:${stack_pids[*]:0:${#stack_pids[@]}-1}")
    other_rate=$(cat "$work/rate")
    echo "  compared, $binary:"
    echo "    $(summary "$other_out" "$other_rate")   ratio $(awk -v a="$other_rate" -v b="$nginx_rate" 'BEGIN {printf "%.2f", a / b}')"
    echo "    events in Redis: $(events_in_redis); batching: $(batching)"
    echo "    CPU per request: $(cat "$work/cpu")"
    stop_stack
  done
done
median=$(printf '%s\n' "${ratios[@]}" | sort -n |
  awk '{r[NR] = $1} END {print (NR % 2) ? r[(NR + 1) / 2] : (r[NR / 2] + r[NR / 2 + 1]) / 2}')
echo "ratio ingress/nginx, median of $rounds rounds: $median"
