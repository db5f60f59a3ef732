#!/usr/bin/env bash
# Runs one libFuzzer target for a bounded time: tests/fuzz/run.sh BINARY SECONDS SEED_DIR...
# The seed folders (in the repo) are read, never written; new inputs go to a work folder
# beside the binary. libFuzzer runs every seed first, so a crash input saved into a seed
# folder is a regression test from then on. Exits non-zero on any crash, leak, timeout or
# sanitizer report, and leaves the input that caused it in the work folder (crash-*, leak-*).
# The targets are built by CMake with KATY_FUZZ=ON (scripts/test.sh does it in build-asan).
set -euo pipefail
binary=$1 seconds=$2
shift 2
work="$(dirname "$binary")/fuzz-work/$(basename "$binary")"
mkdir -p "$work/corpus"
"$binary" -max_total_time="$seconds" -max_len=65536 -timeout=10 -rss_limit_mb=2048 \
  -print_final_stats=1 -artifact_prefix="$work/" "$work/corpus" "$@" 2>&1 | tail -n 25
