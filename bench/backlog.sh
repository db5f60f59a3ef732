#!/usr/bin/env bash
# A backlog of a million events: scripts/up.sh runs the stack; the responder is paused
# (`katyctl pause`) while the load generator queues EVENTS messages through ingress at RATE/s,
# then resumed, and the whole backlog drains to the load generator's Send API.
#
# Prints the queueing and drain rates (events answered per second from the resume to the last
# reply), the load's report (nothing lost, per-user order), each service's RSS (largest seen,
# sampled every second from the start) and Redis's used memory: before, with the backlog
# queued, and after the drain once the consumers have trimmed their streams, with what stays
# (the dedupe and delivered marks, which expire after KATY_DEDUPE_TTL_S and KATY_SENT_MARK_TTL_S).
# Usage: bench/backlog.sh [events] [rate]   (defaults 1000000, 20000)
set -euo pipefail
events="${1:-1000000}"
rate="${2:-20000}"
source "$(dirname "$0")/../tests/e2e/lib_up.sh"
source "$(dirname "$0")/lib.sh"
start_up_for_load
redis() { redis-cli -p "$KATY_REDIS_PORT" "$@"; }
used_memory() { redis INFO memory | awk -F: '/^used_memory:/ {printf "%.1f MB", $2 / 1048576}'; }
services=(ingress responder sender)
declare -A service_pid
for service in "${services[@]}"; do read -r service_pid[$service] _ <<<"$(up_pids "katy-$service")"; done
# Every second: each service's RSS in kB, then Redis's used memory in bytes.
sample_memory() {
  while sleep 1; do
    for service in "${services[@]}"; do
      echo "$service $(awk '/^VmRSS:/ {print $2}' "/proc/${service_pid[$service]}/status" 2>/dev/null || echo 0)"
    done
  done
}
sample_memory >"$work/rss" &
pids+=($!)

echo "Redis before: $(used_memory)"
"$root/build/bin/katyctl" --addr "$KATY_RESPONDER_GRPC_ADDR" pause >/dev/null
started=$(date +%s.%N)
: >"$work/load.err"  # before the load's own redirection (in its forked shell) creates it
"$root/build/bin/katy-emulator" load --ingress "http://$KATY_HTTP_ADDR/webhook" --listen "127.0.0.1:$load_port" \
  --users 1000 --rate "$rate" --duration "$(awk -v e="$events" -v r="$rate" 'BEGIN {print e / r}')" \
  --drain 3600 --json >"$work/load.out" 2>"$work/load.err" &
load_pid=$!
pids+=("$load_pid")
# The load says how many it sent ("load: sent N in ..."); ingress has taken them all when the
# inbound streams hold that many.
sent=""
until [[ -n "$sent" ]] && (($(stream_entries in) >= sent)); do
  kill -0 "$load_pid" 2>/dev/null || fail "the load run ended early: $(cat "$work/load.err")"
  sent=$(awk '/^load: sent/ {print $3}' "$work/load.err")
  sleep 0.5
done
events=$sent
queued=$(date +%s.%N)
echo "queued $events events in $(awk -v a="$started" -v b="$queued" 'BEGIN {printf "%.1f s (%.0f/s)", b - a, '"$events"' / (b - a)}');" \
  "Redis with the backlog: $(used_memory)"
"$root/build/bin/katyctl" --addr "$KATY_RESPONDER_GRPC_ADDR" resume >/dev/null
wait "$load_pid" || fail "load run: $(cat "$work/load.err")"
drained=$(date +%s.%N)
echo "drained in $(awk -v a="$queued" -v b="$drained" 'BEGIN {printf "%.1f s: %.0f events/s", b - a, '"$events"' / (b - a)}')"
cat "$work/load.out"
echo -n "largest RSS:"
awk '{if ($2 > most[$1]) most[$1] = $2} END {for (s in most) printf " %s %.1f MB", s, most[s] / 1024; print ""}' "$work/rss"
# The consumers trim what their group has finished every 10 s.
sleep 12
echo "Redis after the drain: $(used_memory); stream entries left in $(stream_entries in), out $(stream_entries out);" \
  "keys $(redis DBSIZE) (dedupe and delivered marks, conversations)"
kill "${extra_pids[@]}" 2>/dev/null || true
stop_up
