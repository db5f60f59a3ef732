#!/usr/bin/env bash
# The sender saturated: scripts/up.sh runs the stack with the emulator as Send API (answering at
# once); the sender is stopped (SIGSTOP) while the load generator sends MESSAGES at RATE/s, so
# their replies queue in the outbound streams, then continued: it drains the backlog as fast
# as it can. This is where the sender's Redis work for many messages shares round trips (a
# batch's checks, the records of the calls answered together), which at a steady 1,000/s
# carry one message each.
#
# Prints the drain rate (replies delivered per second from the continue to the last), the
# sender's CPU per delivered message over the drain, its threads' wake-ups per message, and what
# Redis ran per message meanwhile.
# Usage: bench/sender_backlog.sh [messages] [rate]   (defaults 20000, 2000)
set -euo pipefail
messages="${1:-20000}"
rate="${2:-2000}"
source "$(dirname "$0")/../tests/e2e/lib_up.sh"
source "$(dirname "$0")/lib.sh"
start_up_for_load
ingress="http://$KATY_HTTP_ADDR/webhook"
delivered() { metric_sum "$KATY_SENDER_ADMIN_ADDR" '^katy_sender_sends_total[{].*result="delivered"'; }

read -r sender _ <<<"$(up_pids katy-sender)"
seconds=$((messages / rate))
kill -STOP "$sender"
"$root/build/bin/katy-emulator" load --ingress "$ingress" --listen "127.0.0.1:$load_port" \
  --app-secret "$KATY_APP_SECRET" --users 2000 --rate "$rate" --duration "$seconds" --drain 120 --json \
  >"$work/load.out" &
load_pid=$!
# wait_for WHAT CONDITION: polls CONDITION (an arithmetic test of a function's output) for up
# to two minutes, else fails with WHAT, the sender's outcomes and queue gauges, and the logs.
wait_for() {
  local deadline=$((SECONDS + 120))
  until eval "$2"; do
    if ((SECONDS >= deadline)); then
      kill -CONT "$sender"
      curl -s "http://$KATY_SENDER_ADMIN_ADDR/metrics" | grep -E '^katy_(sender_sends_total|stream_lag|stream_pending)' || true
      fail "gave up waiting: $1"
    fi
    sleep 0.1
  done
}
# Every reply queued: the responder has answered every message.
wait_for "replies queued" '(($(stream_entries out) >= messages))'
n0=0  # the sender has been stopped since before the first message
cpu_sample "sender:$sender" >"$work/cpu.before"
sched_sample "sender:$sender" >"$work/sched.before"
redis-cli -p "$KATY_REDIS_PORT" CONFIG RESETSTAT >/dev/null
started=$(date +%s.%N)
kill -CONT "$sender"
wait_for "replies delivered" '(($(delivered) - n0 >= messages))'
ended=$(date +%s.%N)
cpu_sample "sender:$sender" >"$work/cpu.after"
sched_sample "sender:$sender" >"$work/sched.after"
redis-cli -p "$KATY_REDIS_PORT" INFO commandstats >"$work/commandstats"
n1=$(delivered)
wait "$load_pid"
tail -n 1 "$work/load.out"
awk -v a="$started" -v b="$ended" -v n=$((n1 - n0)) 'BEGIN {printf "drained %d in %.1f s: %.0f replies/s\n", n, b - a, n / (b - a)}'
echo "$(cpu_per_message "$work/cpu.before" "$work/cpu.after" $((n1 - n0))) delivered"
echo "wake-ups per message: $(wakeups_per_message "$work/sched.before" "$work/sched.after" $((n1 - n0)))"
redis_per_message "$work/commandstats" $((n1 - n0))
stop_up
rm -rf "$work"
