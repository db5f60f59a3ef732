#!/usr/bin/env bash
# Scale-out: throughput with 1, 2 and 4 responders when every event waits on a slow skill.
#
# scripts/up.sh runs the stack; every event goes to a skill that answers after SKILL_MS
# (tests/skills/weather_skill.py /echo), so a responder's throughput is bounded by its
# KATY_WORKERS conversations at once (WORKERS / SKILL_MS each), not by the CPU, and adding
# responders should add that much again. For each count the load generator offers MESSAGES
# messages from 2,000 users at more than four responders can take, and the throughput is the
# replies per second from the first message to the last reply. The responders share the 16
# shards by lease (waited for before each run); the report's out_of_order counts replies that
# overtook an earlier message of the same user (must be 0).
#
# KATY_WORKERS applies to every service up.sh starts (the sender too: WORKERS recipients in
# flight, far above what these rates need). Usage:
#   bench/scale.sh [messages] [skill-ms] [workers] [counts]   (defaults 4000, 20, 2, "1 2 4")
set -euo pipefail
messages="${1:-4000}"
skill_ms="${2:-20}"
workers="${3:-2}"
counts="${4:-1 2 4}"
source "$(dirname "$0")/../tests/e2e/lib_up.sh"
source "$(dirname "$0")/lib.sh"
users=2000
shards=16
# Offered: a quarter more than four responders could take if the skill were the only cost.
rate=$((4 * workers * 1000 / skill_ms * 5 / 4))

skill_port=$(free_port)
python3 "$root/tests/skills/weather_skill.py" "$skill_port" &
skill_pid=$!
pids+=("$skill_pid")
wait_for_port "$skill_port"
cat >"$work/rules.yaml" <<RULES
fallback:
  skill:
    url: "http://127.0.0.1:$skill_port/echo?delay_ms=$skill_ms"
    timeout_ms: 5000
RULES
export KATY_UP_TEST_RULES="$work/rules.yaml" KATY_WORKERS="$workers" KATY_MAX_IN_FLIGHT=2048 KATY_SHARDS="$shards" KATY_LEASE_TTL_MS=2000
start_up_for_load

# lease_holders: how many responders hold shard leases, and the most shards one holds.
lease_holders() {
  local shard keys=()
  for ((shard = 0; shard < shards; ++shard)); do keys+=("$(printf 'katy:{s%02d}:lease:responder' "$shard")"); done
  # --raw: one holder per line, an empty line for a shard nobody holds.
  redis-cli -p "$KATY_REDIS_PORT" --raw MGET "${keys[@]}" | sort | uniq -c |
    awk 'NF == 2 {holders++; if ($1 > most) most = $1} END {print holders + 0, most + 0}'
}
wait_for_balance() {  # wait_for_balance N: until N responders hold ceil(16 / N) shards at most each
  local want=$1 most=$(((shards + $1 - 1) / $1)) holders top
  for _ in $(seq 1 300); do
    read -r holders top < <(lease_holders)
    ((holders == want && top <= most)) && return 0
    sleep 0.2
  done
  fail "the leases did not spread over $want responders (holders $holders, most $top)"
}

extra=0
printf '%-10s %-10s %-8s %-5s %-13s %-7s %-12s %s\n' responders "replies/s" speedup lost out_of_order p99_ms \
  replies/sent "CPU per reply"
for count in $counts; do
  while ((extra + 1 < count)); do
    start_extra responder
    extra=$((extra + 1))
  done
  wait_for_balance "$count"
  groups=("ingress:$(up_pids katy-ingress)" "responders:$(up_pids katy-responder) ${extra_pids[*]}"
    "sender:$(up_pids katy-sender)" "redis:$(up_pids redis-server)" "skill:$skill_pid")
  cpu_sample "${groups[@]}" >"$work/cpu.before"
  head -1 /proc/stat >"$work/stat.before"
  "$root/build/bin/katy-emulator" load --ingress "http://$KATY_HTTP_ADDR/webhook" --listen "127.0.0.1:$load_port" \
    --users "$users" --rate "$rate" --duration "$(awk -v m="$messages" -v r="$rate" 'BEGIN {print m / r}')" \
    --drain 120 --json >"$work/load.$count" 2>"$work/load.$count.err" || fail "load run: $(cat "$work/load.$count.err")"
  cpu_sample "${groups[@]}" >"$work/cpu.after"
  head -1 /proc/stat >"$work/stat.after"
  read -r throughput received report < <(tail -n 1 "$work/load.$count" | python3 -c '
import json, sys
r = json.load(sys.stdin)
print(r["throughput"], r["received"], r["lost"], r["out_of_order"], round(r["p99_ms"]), "%d/%d" % (r["received"], r["sent"]))')
  first_throughput="${first_throughput:-$throughput}"
  # shellcheck disable=SC2086 # report: four fields to print
  printf '%-10s %-10s %-8s %-5s %-13s %-7s %-12s %s\n' "$count" "$throughput" \
    "$(awk -v a="$throughput" -v b="$first_throughput" 'BEGIN {printf "%.2f", a / b}')" $report \
    "$(cpu_per_message "$work/cpu.before" "$work/cpu.after" "$received"), $(machine_idle "$work/stat.before" "$work/stat.after")"
done
kill "${extra_pids[@]}" 2>/dev/null || true
stop_up
