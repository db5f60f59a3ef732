# shellcheck shell=bash
# Sourced by the benchmark scripts: free ports, and background processes stopped on exit.
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  [[ -n "${work:-}" ]] && rm -rf "$work"
}
trap cleanup EXIT
free_port() { python3 "$root/scripts/free_port.py"; }
# wait_for_port PORT: until something accepts connections on 127.0.0.1:PORT (at most 10 s).
wait_for_port() {
  for _ in $(seq 1 100); do (echo >"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return; sleep 0.1; done
}

# start_up_for_load: scripts/up.sh (tests/e2e/lib_up.sh's start_up) with the sender's Send API at
# a `katy-emulator load` run to come on 127.0.0.1:$load_port, its app secret and token, quiet
# logs and the page limit out of the way unless KATY_PAGE_RATE says otherwise; up.sh is
# stopped (like Ctrl-C) on any exit.
start_up_for_load() {
  load_port=$(free_port)
  export KATY_KEEP_META_ENV=1 KATY_GRAPH_URL="http://127.0.0.1:$load_port/v25.0"
  export KATY_APP_SECRET=bench-secret-0123456789 KATY_PAGE_TOKEN=bench-token KATY_LOG_LEVEL=warn
  export KATY_PAGE_RATE="${KATY_PAGE_RATE:-100000}"
  start_up
  pids+=("$up_pid")
}

# metric_sum ADMIN_ADDR PATTERN: the sum of the samples on http://ADMIN_ADDR/metrics whose line
# matches the awk regular expression PATTERN (name and labels).
metric_sum() {
  curl -s "http://$1/metrics" | awk -v pattern="$2" '$0 ~ pattern {n += $2} END {print n + 0}'
}

# start_load USERS RATE SECONDS [ARG...]: a `katy-emulator load` run in the background against
# start_up_for_load's stack (its Send API on $load_port), the extra ARGs added; its pid goes to
# load_pid, its report to $work/load.out. stop_load ends it.
start_load() {
  local users=$1 rate=$2 seconds=$3
  shift 3
  "$root/build/bin/katy-emulator" load --ingress "http://$KATY_HTTP_ADDR/webhook" --listen "127.0.0.1:$load_port" \
    --app-secret "$KATY_APP_SECRET" --users "$users" --rate "$rate" --duration "$seconds" --drain 5 --json "$@" \
    >"$work/load.out" &
  load_pid=$!
}
stop_load() {
  kill "$load_pid" 2>/dev/null || true
  wait "$load_pid" 2>/dev/null || true
}

# measure_window COUNT PID SECONDS: while a load run of SECONDS goes on, from 2 s in to its end,
# how fast the command COUNT (a counter read from /metrics) grows and what process PID spends:
# sets window_rate (per second), window_cpu (µs of CPU per counted item) and window_rss_mb
# (PID's peak resident memory).
measure_window() {
  local count=$1 pid=$2 window=$(($3 - 2)) n0 n1
  sleep 2
  n0=$($count)
  cpu_sample "p:$pid" >"$work/cpu.before"
  sleep "$window"
  n1=$($count)
  cpu_sample "p:$pid" >"$work/cpu.after"
  # shellcheck disable=SC2034  # the three are what the calling script prints
  {
    window_rate=$(((n1 - n0) / window))
    window_cpu=$(cpu_per_message "$work/cpu.before" "$work/cpu.after" $((n1 > n0 ? n1 - n0 : 1)) | awk '{print $2}')
    window_rss_mb=$(($(awk '/^VmHWM/ {print $2}' "/proc/$pid/status") / 1024))
  }
}

# stream_entries KIND: entries in the in (or out, dlq) streams of every shard of up.sh's Redis.
stream_entries() {
  local shard total=0
  for ((shard = 0; shard < 16; ++shard)); do
    total=$((total + $(redis-cli -p "$KATY_REDIS_PORT" XLEN "$(printf 'katy:{s%02d}:%s' "$shard" "$1")")))
  done
  echo "$total"
}

# up_pids NAME: the processes scripts/up.sh (started by tests/e2e/lib_up.sh's start_up, in its
# own session) runs whose command line has NAME, on one line.
up_pids() { pgrep -s "$up_pid" -f "$1" | tr '\n' ' '; }

# start_extra SERVICE: one more katy-SERVICE beside up.sh's, on the same Redis (every other
# setting from the environment), on ports of its own, logging to $work/SERVICE.PID.log; its pid
# goes to extra_pids (and pids, so it is stopped on exit).
extra_pids=()
extra_admin_addrs=()
start_extra() {
  local admin_addr
  admin_addr="127.0.0.1:$(free_port)"
  KATY_REDIS_URL="redis://127.0.0.1:$KATY_REDIS_PORT/0" KATY_GRPC_ADDR="127.0.0.1:$(free_port)" \
    KATY_ADMIN_ADDR="$admin_addr" "$root/build/bin/katy-$1" >"$work/$1.$BASHPID.$RANDOM.log" 2>&1 &
  pids+=($!)
  extra_pids+=($!)
  extra_admin_addrs+=("$admin_addr")
}

# histogram_snapshot NAME ADMIN_ADDR...: the buckets of histogram NAME summed over the
# services' /metrics, one "le count" line each (cumulative, as Prometheus gives them).
histogram_snapshot() {
  local name=$1 addr
  shift
  for addr in "$@"; do curl -s "http://$addr/metrics"; done |
    awk -v name="${name}_bucket" 'index($0, name "{") == 1 {
      match($0, /le="[^"]*"/); le = substr($0, RSTART + 4, RLENGTH - 5); n[le] += $NF
    } END {for (le in n) print le, n[le]}' | sort -g
}

# histogram_quantiles BEFORE AFTER: what the histogram (files of histogram_snapshot) counted
# between the two snapshots: "N, p50 <= X ms, p99 <= Y ms, max <= Z ms" (each the upper
# bound of its bucket), or "none".
histogram_quantiles() {
  awk 'FNR == NR {before[$1] = $2; next}
    {le[FNR] = $1; n[FNR] = $2 - before[$1]; last = FNR}
    END {
      total = n[last]
      if (total == 0) {print "none"; exit}
      for (i = 1; i <= last; ++i) {
        ms = (le[i] == "+Inf") ? "inf" : le[i] * 1000
        if (p50 == "" && n[i] >= 0.5 * total) p50 = ms
        if (p99 == "" && n[i] >= 0.99 * total) p99 = ms
        if (max == "" && n[i] >= total) max = ms
      }
      printf "%d, p50 <= %s ms, p99 <= %s ms, max <= %s ms\n", total, p50, p99, max
    }' "$1" "$2"
}

# start_nginx PORT [WORKERS]: nginx answering 200 "EVENT_RECEIVED" to everything on 127.0.0.1:PORT,
# with keep-alive, but its counters (stub_status) at /katy-bench-status; in the background,
# stopped on exit. Needs $work.
start_nginx() {
  local port=$1 workers=${2:-auto}
  mkdir -p "$work/nginx"
  cat >"$work/nginx/nginx.conf" <<NGINX
worker_processes $workers;
pid $work/nginx/nginx.pid;
error_log $work/nginx/error.log;
daemon off;
events { worker_connections 1024; }
http {
  access_log off;
  keepalive_requests 1000000;
  client_body_temp_path $work/nginx;
  client_max_body_size 10m;
  server {
    listen 127.0.0.1:$port;
    location / { return 200 "EVENT_RECEIVED"; }
    location = /katy-bench-status { stub_status; }
  }
}
NGINX
  nginx -c "$work/nginx/nginx.conf" -p "$work/nginx" &
  pids+=($!)
}

# sched_sample LABEL:PID[,PID...] ... -> "LABEL ON_CPU_NS WAIT_NS SLICES" per label, summed over
# every thread of its processes: time run on a core, time runnable but waiting for one, and the
# times a thread was put on a core (so WAIT_NS / SLICES is the wait for a core per wake-up).
sched_sample() {
  local group pid task on wait slices cpu_sum wait_sum slice_sum
  for group in "$@"; do
    cpu_sum=0
    wait_sum=0
    slice_sum=0
    for pid in ${group#*:}; do
      for task in /proc/"$pid"/task/*/schedstat; do
        read -r on wait slices <"$task" 2>/dev/null || continue
        cpu_sum=$((cpu_sum + on))
        wait_sum=$((wait_sum + wait))
        slice_sum=$((slice_sum + slices))
      done
    done
    echo "${group%%:*} $cpu_sum $wait_sum $slice_sum"
  done
}

# cpu_sample LABEL:PID[,PID...] ... -> "LABEL CPU_NS" per label: user + system time of the
# processes, threads that have exited included (unlike sched_sample's per-thread sums), at the
# clock tick's resolution (10 ms): for windows of seconds. CPU_NS is -1 when a process is gone.
cpu_sample() {
  local group pid ticks sum hz
  hz=$(getconf CLK_TCK)
  for group in "$@"; do
    sum=0
    for pid in ${group#*:}; do
      # Fields 14 and 15 (utime, stime), counted after the command's closing parenthesis.
      ticks=$(sed 's/.*) //' "/proc/$pid/stat" 2>/dev/null | awk '{print $12 + $13}') || true
      [[ -n "$ticks" ]] || { sum=-1; break; }
      sum=$((sum + ticks))
    done
    # -1: a process had exited, so the label has no figure.
    ((sum < 0)) && echo "${group%%:*} -1" || echo "${group%%:*} $((sum * 1000000000 / hz))"
  done
}

# cpu_per_message BEFORE AFTER MESSAGES: from two cpu_sample files, each label's CPU time in µs
# per message, then the sum ("all").
cpu_per_message() {
  awk -v messages="$3" '
    NR == FNR {cpu[$1] = $2; next}
    cpu[$1] < 0 || $2 < 0 { printf "%s gone   ", $1; next }
    { on = ($2 - cpu[$1]) / 1000 / messages; total += on; printf "%s %.1f   ", $1, on }
    END {printf "all %.1f µs of CPU per message", total}' "$1" "$2"
}

# wakeups_per_message BEFORE AFTER MESSAGES: from two sched_sample files, each label's times a
# thread was put on a core, per message: the thread hand-offs and blocking waits a message
# costs, which is what a process's kernel time goes to at a steady rate (bench/RESULTS.md).
wakeups_per_message() {
  awk -v messages="$3" '
    NR == FNR {slices[$1] = $4; next}
    { printf "%s %.1f   ", $1, ($4 - slices[$1]) / messages }' "$1" "$2"
}

# machine_idle BEFORE AFTER: the share of the machine's CPU time left idle between two copies
# of /proc/stat's first line (user nice system idle iowait irq softirq steal, then guest time,
# already counted in user; idle is idle + iowait).
machine_idle() {
  paste -d' ' "$1" "$2" | awk '{
    half = NF / 2
    for (k = 2; k <= 9; k++) { d = $(k + half) - $k; total += d; if (k == 5 || k == 6) idle += d }
    printf "machine idle %.0f%%", 100 * idle / total}'
}

# redis_per_message COMMANDSTATS MESSAGES: from Redis's INFO commandstats (reset at the start of
# the window), per message: commands run (the calls scripts make counted too), script calls
# (EVALSHA/EVAL) and the µs spent in them (their calls' time included), stream reads
# (XREADGROUP) and their µs. What Redis spends beyond its commands is network work.
redis_per_message() {
  awk -F'[:,=]' -v messages="$2" '
    /^cmdstat_/ {
      name = $1; sub(/^cmdstat_/, "", name); calls = $3; usec = $5
      all += calls
      if (name == "evalsha" || name == "eval") { scripts += calls; script_usec += usec }
      if (name == "xreadgroup") { reads += calls; read_usec += usec }
    }
    END {
      printf "redis per message: %.1f commands; %.2f script calls, %.0f µs; %.2f XREADGROUP, %.0f µs\n",
        all / messages, scripts / messages, script_usec / messages, reads / messages, read_usec / messages
    }' "$1"
}
