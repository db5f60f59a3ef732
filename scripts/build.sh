#!/usr/bin/env bash
# Configures and builds Katy (binaries in <build dir>/bin/). Extra arguments go to the build
# step, e.g. `scripts/build.sh --target katy-ingress`. KATY_CMAKE_ARGS adds cmake options;
# KATY_BUILD_DIR names the build folder (default build/; sanitizer builds use their own).
# CXX picks the compiler when the folder is first configured.
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=$(nproc 2>/dev/null || echo 2)
dir="${KATY_BUILD_DIR:-build}"
read -r -a cmake_args <<<"${KATY_CMAKE_ARGS:-}"
if [[ ! -f "$dir/build.ninja" ]] || [[ ${#cmake_args[@]} -gt 0 ]]; then
  cmake -S . -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo "${cmake_args[@]}" >/dev/null
fi
cmake --build "$dir" -j"$jobs" "$@"
