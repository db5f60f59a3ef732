#!/usr/bin/env bash
# scripts/up.sh as a new user runs it: start, say hello with the printed command, read the
# reply with the printed command, stop with a signal; everything must exit and nothing linger.
set -euo pipefail
source "$(dirname "$0")/lib_up.sh"
start_up

say_hello_and_expect_the_greeting

stop_up
[[ -n "$(find "$KATY_DATA_DIR/redis" -name '*.aof' -print -quit)" ]] || fail "Redis wrote no AOF (appendonly must be on)"
rm -rf "$work"
echo "1 passed, 0 failed"
