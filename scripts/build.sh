#!/usr/bin/env bash
# Configures and builds Katy into build/ (binaries in build/bin/). Extra arguments go to the
# build step, e.g. `scripts/build.sh --target katy-ingress`. KATY_CMAKE_ARGS adds cmake options.
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=$(nproc 2>/dev/null || echo 2)
read -r -a cmake_args <<<"${KATY_CMAKE_ARGS:-}"
if [[ ! -f build/build.ninja ]] || [[ ${#cmake_args[@]} -gt 0 ]]; then
  cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo "${cmake_args[@]}" >/dev/null
fi
cmake --build build -j"$jobs" "$@"
