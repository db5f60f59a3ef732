#!/usr/bin/env bash
# Runs every Katy test: installs missing packages, builds (warnings are errors), starts a
# private Redis on a free port, and runs the CTest labels unit, integration and e2e.
# Exits non-zero on any failure. Extra arguments go to ctest (e.g. -L unit, -R Rules).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

# docker-compose validates the compose file offline (no Docker engine runs here); clang-14
# builds the fuzzer; prometheus brings promtool, which checks every service's /metrics.
KATY_EXTRA_PACKAGES="docker-compose clang-14 libclang-rt-14-dev prometheus ${KATY_EXTRA_PACKAGES:-}" scripts/setup.sh
KATY_CMAKE_ARGS="-DKATY_WERROR=ON" scripts/build.sh

work=$(mktemp -d /tmp/katy-test.XXXXXX)
redis_pid=""
cleanup() {
  [[ -n "$redis_pid" ]] && kill "$redis_pid" 2>/dev/null && wait "$redis_pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

port=$(python3 "$root/scripts/free_port.py")
redis-server --port "$port" --bind 127.0.0.1 --dir "$work" --save "" --appendonly yes \
  --appendfsync everysec --daemonize no >"$work/redis.log" 2>&1 &
redis_pid=$!
for _ in $(seq 1 50); do
  redis-cli -p "$port" ping >/dev/null 2>&1 && break
  sleep 0.1
done
redis-cli -p "$port" ping >/dev/null || { echo "test: Redis did not start" >&2; cat "$work/redis.log" >&2; exit 1; }

export KATY_TEST_REDIS_URL="redis://127.0.0.1:$port/0"
status=0
(cd "$root/build" && ctest --output-on-failure -j2 --timeout 300 "$@") || status=$?
if [[ $status -eq 0 ]]; then echo "test: all tests passed"; else echo "test: FAILED (status $status)" >&2; fi
exit $status
