# shellcheck shell=bash
# Sourced by tests that run scripts/up.sh as a user would. Starts it on free ports with its
# own data directory and waits for it; stop_up stops it like Ctrl-C and checks it went.
# Sets: work, up_pid, up_out, and KATY_* addresses (exported).
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
work=$(mktemp -d /tmp/katy-up-test.XXXXXX)
up_out="$work/up.out"
free_port() { python3 "$root/scripts/free_port.py"; }

fail() {
  echo "FAIL: $*"
  echo "--- up.sh output"; cat "$up_out"
  for log in "$KATY_DATA_DIR"/logs/*.log; do echo "--- $log"; tail -n 20 "$log"; done
  [[ -n "${up_pid:-}" ]] && kill -TERM "$up_pid" 2>/dev/null
  echo "0 passed, 1 failed"
  exit 1
}

start_up() {
  export KATY_DATA_DIR="$work/data"
  KATY_REDIS_PORT=$(free_port)
  KATY_HTTP_ADDR="127.0.0.1:$(free_port)"
  KATY_EMULATOR_ADDR="127.0.0.1:$(free_port)"
  export KATY_REDIS_PORT KATY_HTTP_ADDR KATY_EMULATOR_ADDR
  for service in INGRESS RESPONDER SENDER; do
    export "KATY_${service}_GRPC_ADDR=127.0.0.1:$(free_port)"
    export "KATY_${service}_ADMIN_ADDR=127.0.0.1:$(free_port)"
  done
  unset KATY_REDIS_URL KATY_RULES
  # Rules of the caller's own (a benchmark's): KATY_UP_TEST_RULES.
  [[ -z "${KATY_UP_TEST_RULES:-}" ]] || export KATY_RULES="$KATY_UP_TEST_RULES"
  # A run against a Redis the caller started (a cluster, say): KATY_UP_TEST_REDIS_URL.
  [[ -z "${KATY_UP_TEST_REDIS_URL:-}" ]] || export KATY_REDIS_URL="$KATY_UP_TEST_REDIS_URL"
  # A run against the emulator started by up.sh, unless the caller points Katy elsewhere
  # (KATY_KEEP_META_ENV=1 with its own KATY_GRAPH_URL, KATY_APP_SECRET, KATY_PAGE_TOKEN).
  [[ -n "${KATY_KEEP_META_ENV:-}" ]] || unset KATY_GRAPH_URL KATY_APP_SECRET KATY_PAGE_TOKEN
  setsid "$root/scripts/up.sh" >"$up_out" 2>&1 &
  up_pid=$!
  for _ in $(seq 1 600); do
    grep -q "Press Ctrl-C" "$up_out" && return 0
    kill -0 "$up_pid" 2>/dev/null || fail "up.sh exited early"
    sleep 0.5
  done
  fail "up.sh did not come up"
}

stop_up() {
  kill -TERM "$up_pid"
  for _ in $(seq 1 100); do kill -0 "$up_pid" 2>/dev/null || break; sleep 0.2; done
  kill -0 "$up_pid" 2>/dev/null && fail "up.sh did not stop"
  grep -q "up: stopped" "$up_out" || fail "up.sh did not report a clean stop"
  if pgrep -f "$KATY_DATA_DIR" >/dev/null || pgrep -f "port $KATY_REDIS_PORT" >/dev/null; then
    fail "processes left running"
  fi
}

# Says "hello" with the command up.sh printed, reads the replies with the other one, and fails
# unless the greeting rule answered (deploy/rules/katy.yaml), not the fallback, which repeats
# whatever was said ("I don't understand \"hello\"").
say_hello_and_expect_the_greeting() {
  local say read_replies replies=""
  say=$(grep -o "curl -s -X POST .*/_emulator/say -H .* -d .*" "$up_out")
  read_replies=$(grep -o "curl -s '.*/_emulator/messages?psid=42'" "$up_out")
  [[ -n "$say" && -n "$read_replies" ]] || fail "up.sh did not print the say and read commands"
  eval "$say" >/dev/null || fail "the printed say command failed"
  for _ in $(seq 1 50); do
    replies=$(eval "$read_replies")
    [[ "$replies" == *'"text"'* ]] && break
    sleep 0.2
  done
  [[ "$replies" == *'Meow, hello'* || "$replies" == *'Purr... hi there'* ]] || fail "no greeting in the replies: $replies"
  [[ "$replies" != *"understand"* ]] || fail "the fallback answered hello: $replies"
  echo "reply: $replies"
}
