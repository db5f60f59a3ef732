#!/usr/bin/env bash
# One sender against a Send API as slow as Meta's: for each latency, scripts/up.sh runs Katy
# (default settings, the page's rate limit out of the way) with its Send API at a `katy-emulator
# load` run whose every call answers after that many ms (held on timers: the emulator keeps
# thousands waiting at once), while USERS users send RATE messages/s for SECONDS.
#
# For each latency it prints, over a steady window (from 2 s after the start to the end of the
# sending): messages the sender delivered per second, the most Send API calls the emulator held
# at once, the sender's CPU µs per delivered message, and its peak RSS. The load report's "lost"
# is not a figure here: the run stops when the sending stops, with whatever a slow sender has
# not yet delivered still queued.
# A latency "A-B" draws each call's from A to B ms ("300-800": like Meta).
# Usage: bench/slow_meta.sh ["LATENCIES_MS"] [users] [rate] [seconds]   (defaults "0 100 500 1000",
#        5000, 1100, 10)
set -euo pipefail
latencies="${1:-0 100 500 1000}"
users="${2:-5000}"
rate="${3:-1100}"
seconds="${4:-10}"
source "$(dirname "$0")/../tests/e2e/lib_up.sh"
source "$(dirname "$0")/lib.sh"

delivered() { metric_sum "$KATY_SENDER_ADMIN_ADDR" '^katy_sender_sends_total[{].*result="delivered"'; }

printf "%-10s %-14s %-16s %-18s %s\n" "latency" "delivered/s" "most in flight" "sender CPU/msg" "sender peak RSS"
for latency in $latencies; do
  work=$(mktemp -d)
  start_up_for_load
  sender_pid=$(up_pids katy-sender | awk "{print \$1}")
  low="${latency%-*}" high="${latency#*-}"
  start_load "$users" "$rate" "$seconds" --faults "{\"latency_ms\":[$low,$high]}"
  measure_window delivered "$sender_pid" "$seconds"
  held=$(curl -s "http://127.0.0.1:$load_port/_emulator/faults" | grep -o '"most_held_calls":[0-9]*' | cut -d: -f2 || true)
  printf "%-10s %-14s %-16s %-18s %s\n" "${latency} ms" "$window_rate" "${held:-?}" "${window_cpu} µs" "$window_rss_mb MB"
  stop_load
  stop_up
  rm -rf "$work"
done
