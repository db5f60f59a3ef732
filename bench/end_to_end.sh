#!/usr/bin/env bash
# A whole Katy under load, end to end: scripts/up.sh runs Redis (AOF) and the three services
# with the sender's Send API pointed at a `katy-emulator load` run, which plays N users sending
# R messages/s through signed, batched webhooks and measures every reply. The page's rate limit
# is raised out of the way (KATY_PAGE_RATE), so the pipeline itself is measured.
#
# Prints the load run's JSON report, then what each process spent on a core per message
# delivered (µs, over a steady window from 1 s after the start to 1 s before the end), so the
# next limit is visible: the largest figure is the process to make cheaper; then what Redis
# ran per message over the same window (INFO commandstats: calls, scripts, time in commands),
# and how often each process's threads were woken per message (thread hand-offs, blocking waits).
# Usage: bench/end_to_end.sh [users] [rate] [seconds]   (defaults 50, 500, 5)
set -euo pipefail
users="${1:-50}"
rate="${2:-500}"
seconds="${3:-5}"
source "$(dirname "$0")/../tests/e2e/lib_up.sh"
source "$(dirname "$0")/lib.sh"
start_up_for_load
ingress="http://$KATY_HTTP_ADDR/webhook"

# The sender's count of delivered messages.
delivered() { metric_sum "$KATY_SENDER_ADMIN_ADDR" '^katy_sender_sends_total[{].*result="delivered"'; }

"$root/build/bin/katy-emulator" load --ingress "$ingress" --listen "127.0.0.1:$load_port" \
  --app-secret "$KATY_APP_SECRET" --users "$users" --rate "$rate" --duration "$seconds" --drain 20 --json \
  >"$work/load.out" &
load_pid=$!
groups=("ingress:$(up_pids katy-ingress)" "responder:$(up_pids katy-responder)"
  "sender:$(up_pids katy-sender)" "redis:$(up_pids redis-server)" "load:$load_pid")
window=$((seconds - 2))
if ((window > 0)); then
  sleep 1
  n0=$(delivered)
  cpu_sample "${groups[@]}" >"$work/cpu.before"
  sched_sample "${groups[@]}" >"$work/sched.before"
  redis-cli -p "$KATY_REDIS_PORT" CONFIG RESETSTAT >/dev/null
  sleep "$window"
  n1=$(delivered)
  cpu_sample "${groups[@]}" >"$work/cpu.after"
  sched_sample "${groups[@]}" >"$work/sched.after"
  redis-cli -p "$KATY_REDIS_PORT" INFO commandstats >"$work/commandstats"
fi
wait "$load_pid"
cat "$work/load.out"
if ((window > 0)) && ((n1 > n0)); then
  echo "$(cpu_per_message "$work/cpu.before" "$work/cpu.after" $((n1 - n0))) delivered ($((n1 - n0)) in the window)"
  echo "wake-ups per message: $(wakeups_per_message "$work/sched.before" "$work/sched.after" $((n1 - n0)))"
  redis_per_message "$work/commandstats" $((n1 - n0))
fi
stop_up
rm -rf "$work"
