#!/usr/bin/env bash
# One responder whose every reply comes from a skill as slow as an LLM: for each skill latency,
# scripts/up.sh runs Katy with default settings, rules that send every event to a skill
# answering after that many ms (tests/support/late_http_server.py /skill: asyncio, so the skill
# itself holds any number at once), and its Send API at a `katy-emulator load` run
# (answering at once) while USERS users send RATE messages/s for SECONDS.
#
# For each latency it prints, over a steady window (from 2 s after the start to the end of the
# sending): events the responder finished per second, its CPU µs per event and its peak RSS.
# Usage: bench/slow_skill.sh ["LATENCIES_MS"] [users] [rate] [seconds]   (defaults "100 1000 3000",
#        5000, 600, 12)
set -euo pipefail
latencies="${1:-100 1000 3000}"
users="${2:-5000}"
rate="${3:-600}"
seconds="${4:-12}"
source "$(dirname "$0")/../tests/e2e/lib_up.sh"
source "$(dirname "$0")/lib.sh"

skill_port=$(free_port)
# Asyncio: holds any number of calls on timers, so the skill side is not the limit (a thread
# per request, as tests/skills/weather_skill.py has, fell over at ~1,000 at once).
python3 "$root/tests/support/late_http_server.py" "$skill_port" &
pids+=($!)
wait_for_port "$skill_port"

finished() { metric_sum "$KATY_RESPONDER_ADMIN_ADDR" '^katy_consumer_entries_total[{].*outcome="done"'; }

printf "%-10s %-12s %-20s %s\n" "skill" "events/s" "responder CPU/event" "responder peak RSS"
for latency in $latencies; do
  work=$(mktemp -d)
  cat >"$work/rules.yaml" <<RULES
fallback:
  skill:
    url: "http://127.0.0.1:$skill_port/skill?ms=$latency"
    timeout_ms: $((${latency#*-} + 5000))
RULES
  export KATY_UP_TEST_RULES="$work/rules.yaml"
  start_up_for_load
  responder_pid=$(up_pids katy-responder | awk '{print $1}')
  start_load "$users" "$rate" "$seconds"
  measure_window finished "$responder_pid" "$seconds"
  printf "%-10s %-12s %-20s %s\n" "${latency} ms" "$window_rate" "${window_cpu} µs" "$window_rss_mb MB"
  stop_load
  stop_up
  rm -rf "$work"
done
