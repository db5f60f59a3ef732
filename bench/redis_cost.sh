#!/usr/bin/env bash
# What each delivered message costs Redis, and what it leaves behind (issue 37's measure):
# scripts/up.sh (one of each service, Redis with AOF) under a `katy-emulator load` run whose Send
# API answers at once, from 1 s before the load starts to the end of its drain:
#   - Redis commands per delivered message (INFO commandstats: the commands scripts run are
#     counted too, and so are the reads of idle consumers), script calls, XREADGROUP calls;
#   - Redis CPU per delivered message (INFO cpu, user + system, main thread and all);
#   - Redis memory still held per delivered message after the drain, streams left out (they
#     are trimmed as entries are acknowledged; the marks are what stays for their lifetimes),
#     and by kind of key: how many there are and what they take (MEMORY USAGE, each key).
# Usage: bench/redis_cost.sh [users] [rate] [seconds]   (defaults 2000, 1000, 20)
set -euo pipefail
users="${1:-2000}"
rate="${2:-1000}"
seconds="${3:-20}"
source "$(dirname "$0")/../tests/e2e/lib_up.sh"
source "$(dirname "$0")/lib.sh"
start_up_for_load
redis=(redis-cli -p "$KATY_REDIS_PORT")

delivered() { metric_sum "$KATY_SENDER_ADMIN_ADDR" '^katy_sender_sends_total[{].*result="delivered"'; }
redis_cpu_us() { "${redis[@]}" INFO cpu | awk -F: '/^used_cpu_(sys|user):/ {s += $2} END {printf "%.0f", s * 1e6}'; }
used_memory() { "${redis[@]}" INFO memory | awk -F: '/^used_memory:/ {print $2 + 0}'; }

# key_usage: one "kind type bytes" line per key, the kind being the key with its variable parts
# (ids, shard tags, buckets, pages) replaced, so that marks of one kind add up.
key_usage() {
  "${redis[@]}" --scan >"$work/key_names"
  # Two commands per key, through one redis-cli: its answers come back in order.
  awk '{printf "TYPE \"%s\"\nMEMORY USAGE \"%s\" SAMPLES 0\n", $0, $0}' "$work/key_names" |
    "${redis[@]}" | paste - - | paste "$work/key_names" - | awk '{
    kind = $1
    gsub(/\{s[0-9]+\}/, "{sNN}", kind)
    gsub(/@[0-9]+/, "@<bucket>", kind)
    n = split(kind, part, ":")
    kind = part[1]
    for (i = 2; i <= n && i <= 3; ++i) kind = kind ":" part[i]
    if (n > 3) kind = kind ":…"
    print kind, $2, $3
  }'
}

# memory_without_streams: used_memory less what the streams take (they are trimmed as they go).
memory_without_streams() {
  local streams
  streams=$(key_usage | awk '$2 == "stream" {s += $3} END {print s + 0}')
  echo $(($(used_memory) - streams))
}

sleep 1
before_memory=$(memory_without_streams)
n0=$(delivered)
"${redis[@]}" CONFIG RESETSTAT >/dev/null
cpu0=$(redis_cpu_us)
"$root/build/bin/katy-emulator" load --ingress "http://$KATY_HTTP_ADDR/webhook" --listen "127.0.0.1:$load_port" \
  --app-secret "$KATY_APP_SECRET" --users "$users" --rate "$rate" --duration "$seconds" --drain 30 --json \
  >"$work/load.out"
cpu1=$(redis_cpu_us)
"${redis[@]}" INFO commandstats >"$work/commandstats"
n1=$(delivered)
messages=$((n1 - n0))
after_memory=$(memory_without_streams)
key_usage >"$work/keys"
cat "$work/load.out"
if ((messages <= 0)); then
  echo "redis_cost: nothing was delivered" >&2
  exit 1
fi
echo "delivered: $messages"
redis_per_message "$work/commandstats" "$messages"
awk -v us=$((cpu1 - cpu0)) -v n="$messages" 'BEGIN {printf "redis cpu per message: %.0f µs\n", us / n}'
awk -v b=$((after_memory - before_memory)) -v n="$messages" \
  'BEGIN {printf "redis memory held per message after the drain (streams left out): %.0f bytes\n", b / n}'
echo "commands per message, the largest:"
awk -F'[:,=]' -v n="$messages" '/^cmdstat_/ {name = $1; sub(/^cmdstat_/, "", name); printf "  %-12s %.2f\n", name, $3 / n}' \
  "$work/commandstats" | sort -k2 -gr | head -12
echo "keys after the drain, by kind: count, bytes, bytes per message:"
awk -v n="$messages" '{count[$1 " " $2] += 1; bytes[$1 " " $2] += $3}
  END {for (k in count) printf "  %-36s %8d %12d %8.1f\n", k, count[k], bytes[k], bytes[k] / n}' "$work/keys" |
  sort -k4 -nr
stop_up
rm -rf "$work"
