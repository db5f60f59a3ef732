#!/usr/bin/env bash
# A few-second run of one benchmark, so that every script in bench/ keeps working: it must
# finish, and whatever it reports about correctness must hold (nothing lost, duplicated or out
# of order; no error answers). How fast is not asserted: that is measured by the benchmarks
# themselves, on a quiet machine, into bench/RESULTS.md.
# Usage: bench_smoke_test.sh end_to_end|scale|rate|backlog|sender_backlog|ingress|emulator_load|redis_cost
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
name=$1
out=$(mktemp /tmp/katy-bench-smoke.XXXXXX)
trap 'rm -f "$out"' EXIT
fail() {
  echo "--- bench/$name.sh output"; cat "$out"
  echo "FAIL: $*"
  exit 1
}
# load_report_holds: the load generator's JSON report (its one line starting '{"duplicates"')
# says every message was answered once, in order.
load_report_holds() {
  grep '^{"duplicates"' "$out" | tail -n 1 | python3 -c '
import json, sys
r = json.load(sys.stdin)
ok = r["sent"] > 0 and r["received"] == r["sent"] and r["lost"] == 0 and r["duplicates"] == 0 and r["out_of_order"] == 0
sys.exit(0 if ok else 1)' || fail "the load report shows a message lost, duplicated or out of order"
}
# table_holds FIRST_FIELD LOST_COLUMN ORDER_COLUMN ROWS: the rows whose first field matches
# report 0 lost and 0 out of order, and there are ROWS of them.
table_holds() {
  awk -v first="$1" -v lost="$2" -v order="$3" -v rows="$4" '
    $1 ~ first { n++; if ($lost != 0 || $order != 0) bad++ }
    END { exit (n == rows && bad == 0) ? 0 : 1 }' "$out" ||
    fail "expected $4 rows with nothing lost or out of order"
}

case "$name" in
  end_to_end)
    "$root/bench/end_to_end.sh" 10 100 3 >"$out" 2>&1 || fail "exit $?"
    load_report_holds
    grep -q "µs of CPU per message" "$out" || fail "no CPU per message" ;;
  scale)
    "$root/bench/scale.sh" 200 20 2 "1 2" >"$out" 2>&1 || fail "exit $?"
    table_holds '^[0-9]+$' 4 5 2 ;;
  rate)
    "$root/bench/rate.sh" 4 50 >"$out" 2>&1 || fail "exit $?"
    table_holds '^(alone|saturated)$' 6 7 2
    grep -q "how late they left: [0-9]" "$out" || fail "no lateness of the reserved sends" ;;
  backlog)
    "$root/bench/backlog.sh" 5000 5000 >"$out" 2>&1 || fail "exit $?"
    load_report_holds
    grep -q "stream entries left in 0, out 0" "$out" || fail "the streams were not trimmed" ;;
  sender_backlog)
    "$root/bench/sender_backlog.sh" 2000 1000 >"$out" 2>&1 || fail "exit $?"
    load_report_holds
    grep -q "^drained 2000 in" "$out" || fail "the backlog was not drained" ;;
  ingress)
    "$root/bench/ingress.sh" 3 16 1 >"$out" 2>&1 || fail "exit $?" ;;
  emulator_load)
    "$root/bench/emulator_load.sh" 2 >"$out" 2>&1 || fail "exit $?" ;;
  redis_cost)
    "$root/bench/redis_cost.sh" 20 100 3 >"$out" 2>&1 || fail "exit $?"
    load_report_holds
    grep -q "redis memory held per message after the drain" "$out" || fail "no memory per message"
    grep -q "seen" "$out" || fail "no dedupe marks among the keys left" ;;
  *) fail "unknown benchmark" ;;
esac
tail -n 5 "$out"
echo "1 passed, 0 failed"
