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

secret="bench-secret"
# Enough unique bodies that no connection ever repeats one at the rates this machine reaches.
bodies=$((seconds * 120000))
python3 - "$work/bodies.txt" "$bodies" "$secret" <<'PY'
import hashlib, hmac, sys
path, count, secret = sys.argv[1], int(sys.argv[2]), sys.argv[3].encode()
with open(path, "w") as out:
    for i in range(count):
        body = ('{"object":"page","entry":[{"id":"104560000000001","time":1764230400000,"messaging":'
                '[{"sender":{"id":"71%014d"},"recipient":{"id":"104560000000001"},"timestamp":1764230400000,'
                '"message":{"mid":"m_bench_%d","text":"hello"}}]}]}') % (i % 5000, i)
        sig = hmac.new(secret, body.encode(), hashlib.sha256).hexdigest()
        out.write(sig + " " + body + "\n")
PY
# The file is hundreds of MB: let its writeback finish now rather than during the runs.
sync

cat >"$work/webhooks.lua" <<LUA
-- Each wrk thread sends its own slice of the pre-signed bodies, so no body is sent twice.
local threads_seen = 0
function setup(thread)
  thread:set("id", threads_seen)
  threads_seen = threads_seen + 1
end
local sigs, bodies, n, i = {}, {}, 0, 0
function init(args)
  local k = 0
  for line in io.lines("$work/bodies.txt") do
    if k % $wrk_threads == id then
      local sp = line:find(" ")
      n = n + 1
      sigs[n] = line:sub(1, sp - 1)
      bodies[n] = line:sub(sp + 1)
    end
    k = k + 1
  end
end
function request()
  i = i + 1
  if i > n then i = 1 end
  return wrk.format("POST", "/webhook", {["Content-Type"] = "application/json",
    ["X-Hub-Signature-256"] = "sha256=" .. sigs[i]}, bodies[i])
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
  ingress_port=$(free_port)
  admin_port=$(free_port)
  KATY_REDIS_URL="redis://127.0.0.1:$redis_port/0" KATY_APP_SECRET="$secret" KATY_VERIFY_TOKEN=v \
    KATY_HTTP_ADDR="127.0.0.1:$ingress_port" KATY_GRPC_ADDR="127.0.0.1:$(free_port)" \
    KATY_ADMIN_ADDR="127.0.0.1:$admin_port" KATY_HTTP_THREADS="$ingress_threads" KATY_LOG_LEVEL=error \
    "${1:-$root/build/bin/katy-ingress}" >"$dir/ingress.log" 2>&1 &
  stack_pids+=($!)
  pids+=("${stack_pids[@]}")
  wait_for_port "$ingress_port"
}
stop_stack() {
  kill "${stack_pids[@]}" 2>/dev/null || true
  wait "${stack_pids[@]}" 2>/dev/null || true
}

# sched_sample LABEL:PID[,PID...] ... -> "LABEL ON_CPU_NS WAIT_NS" per label, summed over every
# thread of its processes: time run on a core, and time runnable but waiting for one.
sched_sample() {
  local group pid task on wait cpu_sum wait_sum
  for group in "$@"; do
    cpu_sum=0
    wait_sum=0
    for pid in ${group#*:}; do
      for task in /proc/"$pid"/task/*/schedstat; do
        read -r on wait _ <"$task" 2>/dev/null || continue
        cpu_sum=$((cpu_sum + on))
        wait_sum=$((wait_sum + wait))
      done
    done
    echo "${group%%:*} $cpu_sum $wait_sum"
  done
}

# on_cpu_ns LABEL:PIDS -> how long that label's processes have run on a core, in ns.
on_cpu_ns() { sched_sample "$1" | awk '{print $2}'; }

# run_wrk PORT LABEL:PIDS... -> wrk output. Meanwhile, from 1 s after the load starts (wrk first
# spends seconds loading the bodies) to 2 s before it ends, samples the CPU of wrk and of the
# processes given (PIDS space-separated), and writes to $work/cpu what each spent per request,
# on a core and waiting for one. The rate is bounded by the sum: wrk, the server and Redis share
# the machine's cores.
run_wrk() {
  local port=$1 window=$((seconds - 3)) t0 t1 before
  shift
  wrk -t"$wrk_threads" -c"$connections" -d"${seconds}s" --latency -s "$work/webhooks.lua" \
    "http://127.0.0.1:$port/webhook" >"$work/wrk.out" &
  local wrk_pid=$!
  if ((window > 0)); then
    # The load has started once the server uses more than 10 ms of CPU in 100 ms.
    before=$(on_cpu_ns "$1")
    while sleep 0.1; do
      t0=$(on_cpu_ns "$1")
      ((t0 - before > 10000000)) && break
      before=$t0
    done
    sleep 1
    sched_sample "wrk:$wrk_pid" "$@" >"$work/sched.before"
    t0=$(date +%s%N)
    sleep "$window"
    sched_sample "wrk:$wrk_pid" "$@" >"$work/sched.after"
    t1=$(date +%s%N)
  fi
  wait "$wrk_pid"
  if ((window > 0)); then
    awk -v rate="$(rate "$(cat "$work/wrk.out")")" -v ns=$((t1 - t0)) '
      NR == FNR {cpu[$1] = $2; wait[$1] = $3; next}
      { requests = rate * ns / 1e9
        on = ($2 - cpu[$1]) / 1000 / requests; waited = ($3 - wait[$1]) / 1000 / requests
        total += on; printf "%s %.1f/%.1f   ", $1, on, waited }
      END {printf "all %.1f", total}' "$work/sched.before" "$work/sched.after" >"$work/cpu"
  else
    echo "(a run under 4 s is too short to sample)" >"$work/cpu"
  fi
  cat "$work/wrk.out"
}
field() { awk -v k="$2" '$1 == k {print $2}' <<<"$1"; }
rate() { awk '/Requests\/sec/ {print $2}' <<<"$1"; }
non2xx() { local n; n=$(awk '/Non-2xx/ {print $NF}' <<<"$1"); echo "${n:-0}"; }
errors() { awk '/Socket errors/ {print}' <<<"$1"; }
summary() {  # summary WRK_OUTPUT -> rate, latency and non-2xx on one line
  printf '%9s req/s   p50 %8s   p99 %8s   non-2xx %s' "$(rate "$1")" "$(field "$1" 50%)" \
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
ratios=()
for round in $(seq 1 "$rounds"); do
  start_stack
  nginx_out=$(run_wrk "$nginx_port" "nginx:$nginx_workers")
  nginx_cpu=$(cat "$work/cpu")
  ingress_out=$(run_wrk "$ingress_port" "ingress:${stack_pids[1]}" "redis:${stack_pids[0]}")
  ingress_cpu=$(cat "$work/cpu")
  ratio=$(awk -v a="$(rate "$ingress_out")" -v b="$(rate "$nginx_out")" 'BEGIN {printf "%.2f", a / b}')
  ratios+=("$ratio")
  echo "round $round:"
  echo "  nginx static 200: $(summary "$nginx_out")"
  echo "  katy-ingress:     $(summary "$ingress_out")"
  echo "  ratio ingress/nginx: $ratio"
  echo "  requests answered by ingress: $(awk '/requests in/ {print $1}' <<<"$ingress_out"); events in Redis: $(events_in_redis)"
  echo "  batching: $(batching)"
  echo "  CPU per request, us on a core/waiting for one: against nginx: $nginx_cpu"
  echo "                                                 against ingress: $ingress_cpu"
  errors "$ingress_out" | sed 's/^/  /'
  stop_stack
  for binary in ${COMPARE:-}; do
    start_stack "$binary"
    other_out=$(run_wrk "$ingress_port" "ingress:${stack_pids[1]}" "redis:${stack_pids[0]}")
    echo "  compared, $binary:"
    echo "    $(summary "$other_out")   ratio $(awk -v a="$(rate "$other_out")" -v b="$(rate "$nginx_out")" 'BEGIN {printf "%.2f", a / b}')"
    echo "    events in Redis: $(events_in_redis); batching: $(batching)"
    echo "    CPU per request: $(cat "$work/cpu")"
    stop_stack
  done
done
median=$(printf '%s\n' "${ratios[@]}" | sort -n |
  awk '{r[NR] = $1} END {print (NR % 2) ? r[(NR + 1) / 2] : (r[NR / 2] + r[NR / 2 + 1]) / 2}')
echo "ratio ingress/nginx, median of $rounds rounds: $median"
