#!/usr/bin/env bash
# scripts/up.sh with KATY_REDIS_URL naming a Redis Cluster (started by scripts/redis-cluster.sh):
# Katy runs on it as on one Redis, and its shards' keys are spread over the masters.
set -euo pipefail
source "$(dirname "$0")/lib_up.sh"
cluster_dir="$work/cluster"
trap '"$root/scripts/redis-cluster.sh" stop "$cluster_dir"' EXIT
KATY_UP_TEST_REDIS_URL=$("$root/scripts/redis-cluster.sh" start "$cluster_dir") || fail "the cluster did not start"
export KATY_UP_TEST_REDIS_URL
start_up

say_hello_and_expect_the_greeting

# Every master holds some of the shards' streams.
masters=0
for port in $(redis-cli -u "${KATY_UP_TEST_REDIS_URL%%,*}" cluster nodes | awk '$3 ~ /master/ {split($2, a, "[:@]"); print a[2]}'); do
  streams=$(redis-cli -p "$port" --scan --pattern 'katy:{s*}:in' | wc -l)
  echo "master $port: $streams inbound streams"
  [[ "$streams" -gt 0 ]] && masters=$((masters + 1))
done
[[ "$masters" -eq 3 ]] || fail "the shards' streams are not on all three masters"

stop_up
"$root/scripts/redis-cluster.sh" stop "$cluster_dir"
trap - EXIT
rm -rf "$work"
echo "1 passed, 0 failed"
