#!/usr/bin/env bash
# scripts/up.sh as a new user runs it: start, say hello with the printed command, read the
# reply with the printed command, stop with a signal; everything must exit and nothing linger.
set -euo pipefail
source "$(dirname "$0")/lib_up.sh"
start_up

say=$(grep -o "curl -s -X POST .*/_emulator/say -d .*" "$work/up.out")
read_replies=$(grep -o "curl -s '.*/_emulator/messages?psid=42'" "$work/up.out")
[[ -n "$say" && -n "$read_replies" ]] || fail "up.sh did not print the say and read commands"
eval "$say" >/dev/null || fail "the printed say command failed"
replies=""
for _ in $(seq 1 50); do
  replies=$(eval "$read_replies")
  [[ "$replies" == *'"text"'* ]] && break
  sleep 0.2
done
# The greeting rule's own words (deploy/rules/katy.yaml), not the fallback, which repeats
# whatever was said ("I don't understand \"hello\"").
[[ "$replies" == *'Meow, hello'* || "$replies" == *'Purr... hi there'* ]] || fail "no greeting in the replies: $replies"
[[ "$replies" != *"understand"* ]] || fail "the fallback answered hello: $replies"
echo "reply: $replies"

stop_up
ls -R "$KATY_DATA_DIR/redis" | grep -q '\.aof$' || fail "Redis wrote no AOF (appendonly must be on)"
rm -rf "$work"
echo "1 passed, 0 failed"
