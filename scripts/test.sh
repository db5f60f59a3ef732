#!/usr/bin/env bash
# Runs Katy's tests: installs missing packages, builds, starts a private Redis on a free port,
# runs CTest labels, and exits non-zero on any failure.
#
#   scripts/test.sh [ctest args]       build/ (g++, warnings are errors): unit, integration,
#                                      e2e, chaos, cluster, containers (docker-compose up);
#                                      then the fuzz targets (build-asan) for a bounded time
#   scripts/test.sh --sanitize=address build-asan (clang, ASan + UBSan): unit and integration
#   scripts/test.sh --sanitize=thread  build-tsan (clang, TSan): unit and integration
#
# Extra arguments go to ctest (e.g. -L unit, -R Rules) and replace the default labels.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

sanitize=""
if [[ "${1:-}" == --sanitize=* ]]; then
  sanitize="${1#--sanitize=}"
  shift
  [[ "$sanitize" == address || "$sanitize" == thread ]] || { echo "test: --sanitize=address or --sanitize=thread" >&2; exit 2; }
fi

# docker-compose checks and runs the compose files (podman serves it the Docker API:
# scripts/podman-docker.sh installs its own packages); clang-14 builds the fuzzers and the
# sanitizer variants; prometheus brings promtool, which checks every service's /metrics and the
# alert rules; python3-yaml reads the manifests; kubectl renders deploy/k8s (Debian's
# kubernetes-client unless a kubectl is already there); nghttp2-server's nghttpd (with openssl's
# certificate) is the HTTP/2 server the async client multiplexes its calls to.
extra="docker-compose clang-14 libclang-rt-14-dev prometheus python3-yaml nghttp2-server openssl"
command -v kubectl >/dev/null || extra+=" kubernetes-client"
KATY_EXTRA_PACKAGES="$extra ${KATY_EXTRA_PACKAGES:-}" scripts/setup.sh

# The clang build with ASan + UBSan also carries the libFuzzer targets, so one build serves
# both the sanitizer run and fuzzing.
build_asan() {
  KATY_BUILD_DIR=build-asan CXX=clang++-14 KATY_CMAKE_ARGS="-DKATY_SANITIZE=address -DKATY_FUZZ=ON" \
    scripts/build.sh "$@"
}

case "$sanitize" in
  "")
    KATY_CMAKE_ARGS="-DKATY_WERROR=ON" scripts/build.sh
    build_asan --target katy_fuzzers
    build_dir=build
    labels=(-L 'unit|integration|e2e|chaos|cluster|containers')
    ;;
  address)
    build_asan
    build_dir=build-asan
    labels=(-L 'unit|integration')
    ;;
  thread)
    KATY_BUILD_DIR=build-tsan CXX=clang++-14 KATY_CMAKE_ARGS="-DKATY_SANITIZE=thread" \
      scripts/build.sh --target katy_unit_tests katy_integration_tests
    build_dir=build-tsan
    # Deploy.*: file checks that run the service binaries, which this build leaves out.
    labels=(-L 'unit|integration' -E '^Deploy\.')
    ;;
esac
[[ $# -gt 0 ]] && labels=("$@")

# A sanitizer report fails the test that caused it.
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1:${ASAN_OPTIONS:-}"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:${UBSAN_OPTIONS:-}"
export TSAN_OPTIONS="halt_on_error=1:second_deadlock_stack=1:suppressions=$root/tests/tsan.supp:${TSAN_OPTIONS:-}"

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
# --no-tests=error: a label or -R that matches nothing fails instead of passing empty.
(cd "$root/$build_dir" && ctest --output-on-failure --no-tests=error -j2 --timeout 300 "${labels[@]}") || status=$?
# The chaos, failover, reshard and dead-master tests' accounting, which ctest shows only on failure.
grep -hE "(chaos|failover|reshard|dead master) accounting" "$root/$build_dir/Testing/Temporary/LastTest.log" 2>/dev/null || true
# The plain run ends with the fuzzers (their own build), unless ctest arguments chose the tests.
if [[ -z "$sanitize" && $# -eq 0 && $status -eq 0 ]]; then
  (cd "$root/build-asan" && ctest --output-on-failure --no-tests=error -j2 --timeout 300 -L fuzz) || status=$?
fi
if [[ $status -eq 0 ]]; then echo "test: all tests passed"; else echo "test: FAILED (status $status)" >&2; fi
exit $status
