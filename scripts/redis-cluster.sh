#!/usr/bin/env bash
# A local Redis Cluster for trying Katy on one (and for its tests): six redis-server processes
# on free loopback ports (AOF on), joined by `redis-cli --cluster create --cluster-replicas 1`
# into three masters with one replica each.
#
#   scripts/redis-cluster.sh start DIR   starts it with its files in DIR and prints the URL to
#                                        give Katy: KATY_REDIS_URL=redis://127.0.0.1:p1,...,p6/0
#   scripts/redis-cluster.sh stop DIR    stops the nodes started in DIR
#
# Short timeouts, for a machine where nothing is far away: a dead master's replica takes over
# after about two seconds (cluster-node-timeout 1000). docs/scaling.md has production settings.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v redis-server >/dev/null || sudo apt-get install -y redis-server >&2

action=${1:-}
dir=${2:-}
[[ ( "$action" == start || "$action" == stop ) && -n "$dir" ]] || { sed -n 2,11p "$0" >&2; exit 2; }

if [[ "$action" == stop ]]; then
  pids=()
  for pidfile in "$dir"/node-*.pid; do
    [[ -f "$pidfile" ]] && pids+=("$(cat "$pidfile")")
  done
  [[ ${#pids[@]} -gt 0 ]] || exit 0
  kill "${pids[@]}" 2>/dev/null || true
  # Each node writes its files as it goes: wait until it has.
  for _ in $(seq 1 100); do
    alive=0
    for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
    [[ $alive -eq 1 ]] || exit 0
    sleep 0.1
  done
  kill -9 "${pids[@]}" 2>/dev/null || true
  exit 0
fi

mkdir -p "$dir"
ports=()
for _ in 1 2 3 4 5 6; do
  port=$(python3 scripts/free_port.py --cluster-node)
  ports+=("$port")
  redis-server --port "$port" --bind 127.0.0.1 --dir "$dir" --save "" \
    --appendonly yes --appendfilename "appendonly-$port.aof" --appenddirname "aof-$port" \
    --cluster-enabled yes --cluster-config-file "nodes-$port.conf" --cluster-node-timeout 1000 \
    --cluster-require-full-coverage no --repl-diskless-sync-delay 0 \
    --daemonize yes --pidfile "$dir/node-$port.pid" --logfile "$dir/node-$port.log"
done
for port in "${ports[@]}"; do
  for _ in $(seq 1 50); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.1; done
done
addresses=()
for port in "${ports[@]}"; do addresses+=("127.0.0.1:$port"); done
redis-cli --cluster create "${addresses[@]}" --cluster-replicas 1 --cluster-yes >"$dir/create.log" 2>&1 \
  || { cat "$dir/create.log" >&2; exit 1; }
for _ in $(seq 1 100); do
  redis-cli -p "${ports[0]}" cluster info | grep -q "cluster_state:ok" && break
  sleep 0.2
done
(IFS=,; echo "redis://${addresses[*]}/0")
