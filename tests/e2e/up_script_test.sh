#!/usr/bin/env bash
# scripts/up.sh as a new user runs it: start, say hello with the printed command, read the
# reply with the printed command, stop with a signal; everything must exit and nothing linger.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
work=$(mktemp -d /tmp/katy-up-test.XXXXXX)
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

export KATY_DATA_DIR="$work/data"
export KATY_REDIS_PORT=$(free_port)
export KATY_HTTP_ADDR="127.0.0.1:$(free_port)"
export KATY_EMULATOR_ADDR="127.0.0.1:$(free_port)"
for service in INGRESS RESPONDER SENDER; do
  export "KATY_${service}_GRPC_ADDR=127.0.0.1:$(free_port)"
  export "KATY_${service}_ADMIN_ADDR=127.0.0.1:$(free_port)"
done
unset KATY_GRAPH_URL KATY_REDIS_URL KATY_APP_SECRET KATY_PAGE_TOKEN

setsid "$root/scripts/up.sh" >"$work/up.out" 2>&1 &
up_pid=$!
fail() {
  echo "FAIL: $*"
  echo "--- up.sh output"; cat "$work/up.out"
  for log in "$KATY_DATA_DIR"/logs/*.log; do echo "--- $log"; tail -n 20 "$log"; done
  kill -TERM "$up_pid" 2>/dev/null || true
  exit 1
}
for _ in $(seq 1 600); do grep -q "Press Ctrl-C" "$work/up.out" && break; kill -0 "$up_pid" 2>/dev/null || fail "up.sh exited early"; sleep 0.5; done
grep -q "Press Ctrl-C" "$work/up.out" || fail "up.sh did not come up"

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
[[ "$replies" == *'hello'* || "$replies" == *'hi there'* ]] || fail "no greeting in the replies: $replies"
echo "reply: $replies"

kill -TERM "$up_pid"
for _ in $(seq 1 100); do kill -0 "$up_pid" 2>/dev/null || break; sleep 0.2; done
kill -0 "$up_pid" 2>/dev/null && fail "up.sh did not stop"
grep -q "up: stopped" "$work/up.out" || fail "up.sh did not report a clean stop"
if pgrep -f "$KATY_DATA_DIR" >/dev/null || pgrep -f "port $KATY_REDIS_PORT" >/dev/null; then
  fail "processes left running"
fi
ls -R "$KATY_DATA_DIR/redis" | grep -q '\.aof$' || fail "Redis wrote no AOF (appendonly must be on)"
rm -rf "$work"
echo "1 passed, 0 failed"
