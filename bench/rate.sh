#!/usr/bin/env bash
# The shared per-page rate limit: three senders on one page limited to RATE messages/s.
#
# scripts/up.sh runs the stack with KATY_PAGE_RATE=RATE; two more senders join its one on the
# same Redis, so the three take slots from the same GCRA state. Two runs of the load generator,
# which times every reply's arrival at its Send API:
#   alone      - one page, offered 1.5x its limit for SECONDS: the senders always have a backlog.
#   saturated  - the same page among 12 (its 11 neighbours raised out of the way with
#                `katyctl rate`): every page paused (`katyctl pause`) while 4,000 messages/s
#                for SECONDS/2 are answered and queued, then resumed, so the three senders
#                start together on a backlog they cannot send as fast as they would (the
#                neighbours' messages, 11 in 12) while the page's wait for their slots. (With
#                the senders running during the load, the responder would feed the page only
#                its share of what it answers, under the limit: a measure of the responder.)
# For the limited page: the mean reply rate from its first reply to its last (target: within
# 3% of RATE) and the most replies in any one second, a sliding window (target: at most
# RATE + 10); machine idle is measured from the resume; and how late the senders' calls on
# reserved slots left after their slots fell due (late sends bunch the page's replies), and how
# long the senders' threads waited for a core each time they became runnable.
# Usage: bench/rate.sh [seconds] [rate]   (defaults 20, 300)
set -euo pipefail
seconds="${1:-20}"
page_rate="${2:-300}"
source "$(dirname "$0")/../tests/e2e/lib_up.sh"
source "$(dirname "$0")/lib.sh"
page=104560000000001  # the load generator's first page; the saturated run's others follow it
KATY_PAGE_RATE="$page_rate" start_up_for_load
start_extra sender
start_extra sender
senders=("$KATY_SENDER_ADMIN_ADDR" "${extra_admin_addrs[@]}")
sender_pids="senders:$(up_pids bin/katy-sender) ${extra_pids[*]}"
for other in $(seq 1 11); do
  "$root/build/bin/katyctl" --addr "$KATY_SENDER_GRPC_ADDR" rate $((page + other)) 100000 >/dev/null
done

# answered: how many events the responder has finished (each queued one reply).
answered() { metric_sum "$KATY_RESPONDER_ADMIN_ADDR" '^katy_consumer_entries_total[{].*outcome="done"'; }

# run LABEL PAGES RATE SECONDS [prefill]: one load run; prints the limited page's figures.
run() {
  local label=$1 pages=$2 offered=$3 duration=$4 prefill=${5:-}
  local before sent="" ctl=("$root/build/bin/katyctl" --addr "$KATY_SENDER_GRPC_ADDR")
  [[ -z "$prefill" ]] || "${ctl[@]}" pause >/dev/null
  before=$(answered)
  : >"$work/load.$label.err"  # before the load's own redirection (in its forked shell) creates it
  "$root/build/bin/katy-emulator" load --ingress "http://$KATY_HTTP_ADDR/webhook" --listen "127.0.0.1:$load_port" \
    --users $((100 * pages)) --pages "$pages" --page "$page" --rate "$offered" --duration "$duration" \
    --drain 300 --json >"$work/load.$label" 2>"$work/load.$label.err" &
  local load_pid=$!
  if [[ -n "$prefill" ]]; then
    # The load says how many it sent ("load: sent N in ..."); all are queued once the
    # responder has answered that many more.
    for _ in $(seq 1 1200); do
      sent=$(awk '/^load: sent/ {print $3}' "$work/load.$label.err")
      [[ -n "$sent" ]] && (($(answered) >= before + sent)) && break
      sleep 0.1
    done
    [[ -n "$sent" ]] && (($(answered) >= before + sent)) || fail "the replies were not all queued"
    "${ctl[@]}" resume >/dev/null
  fi
  head -1 /proc/stat >"$work/stat.before"
  histogram_snapshot katy_sender_slot_lateness_seconds "${senders[@]}" >"$work/late.before"
  sched_sample "$sender_pids" >"$work/sched.before"
  wait "$load_pid" || fail "load run: $(cat "$work/load.$label.err")"
  head -1 /proc/stat >"$work/stat.after"
  histogram_snapshot katy_sender_slot_lateness_seconds "${senders[@]}" >"$work/late.after"
  sched_sample "$sender_pids" >"$work/sched.after"
  tail -n 1 "$work/load.$label" | python3 -c '
import json, sys
label, limit, idle = sys.argv[1], float(sys.argv[2]), sys.argv[3]
r = json.load(sys.stdin)
p = r["pages"][0]
print("%-10s %8d %10.1f %+8.2f%% %9d %5d %6d %10.0f   %s" % (label, p["received"], p["reply_rate"],
      100 * (p["reply_rate"] / limit - 1), p["max_in_1s"], r["lost"], r["out_of_order"], r["throughput"], idle))
' "$label" "$page_rate" "$(machine_idle "$work/stat.before" "$work/stat.after")"
  echo "           sends on reserved slots, how late they left: $(histogram_quantiles "$work/late.before" "$work/late.after")"
  paste "$work/sched.before" "$work/sched.after" | awk '$8 > $4 && $6 > $2 {
    printf "           the senders'"'"' threads waited for a core %.2f ms each time one became runnable (%.1fx the time they ran)\n",
      ($7 - $3) / ($8 - $4) / 1e6, ($7 - $3) / ($6 - $2) }'
}
printf '%-10s %8s %10s %9s %9s %5s %6s %10s   %s\n' run replies "page's /s" "vs limit" "max in 1s" lost "order" \
  "all /s" "machine"
run alone 1 $((page_rate * 3 / 2)) "$seconds"
run saturated 12 4000 $((seconds / 2)) prefill
kill "${extra_pids[@]}" 2>/dev/null || true
stop_up
