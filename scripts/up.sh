#!/usr/bin/env bash
# Runs Katy on this machine: installs missing packages, builds, starts Redis (AOF on, data in
# .katy/), the three services and, when no real Graph API is configured (KATY_GRAPH_URL unset),
# the local Messenger emulator. Prints how to talk to the bot. Ctrl-C stops everything cleanly.
#
# Any KATY_* setting in the environment is passed through (see README.md), for example:
#   KATY_GRAPH_URL=https://graph.facebook.com/v25.0 KATY_APP_SECRET=... KATY_VERIFY_TOKEN=... \
#   KATY_PAGE_TOKEN=... scripts/up.sh
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

scripts/setup.sh
scripts/build.sh --target katy-ingress katy-responder katy-sender katy-emulator katyctl >/dev/null

data="${KATY_DATA_DIR:-$root/.katy}"
mkdir -p "$data/redis" "$data/logs"
bin="$root/build/bin"

# Secrets: what the environment gives, else made once and kept in .katy/secrets.env.
if [[ ! -f "$data/secrets.env" ]]; then
  umask 077
  {
    echo "GENERATED_APP_SECRET=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')"
    echo "GENERATED_VERIFY_TOKEN=$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
  } >"$data/secrets.env"
fi
# shellcheck disable=SC1091
source "$data/secrets.env"
export KATY_APP_SECRET="${KATY_APP_SECRET:-$GENERATED_APP_SECRET}"
export KATY_VERIFY_TOKEN="${KATY_VERIFY_TOKEN:-$GENERATED_VERIFY_TOKEN}"
# The default addresses, from the one place they are written (common/defaults.h).
eval "$("$bin/katyctl" defaults)"
export KATY_HTTP_ADDR="${KATY_HTTP_ADDR:-$KATY_DEFAULT_HTTP_ADDR}"
export KATY_RULES="${KATY_RULES:-$root/deploy/rules/katy.yaml}"
ingress_port="${KATY_HTTP_ADDR##*:}"

pids=()
names=()
start() {  # start NAME COMMAND...: runs in the background, logs to .katy/logs/NAME.log
  local name=$1
  shift
  "$@" >>"$data/logs/$name.log" 2>&1 &
  pids+=($!)
  names+=("$name")
}
stopped=""
stop_all() {
  [[ -n "$stopped" ]] && return
  stopped=1
  echo
  echo "up: stopping..."
  # Services first (each drains its in-flight work), and only then Redis, which they need to
  # finish that work.
  for i in "${!pids[@]}"; do [[ ${names[i]} != redis ]] && kill -TERM "${pids[i]}" 2>/dev/null; done
  for i in "${!pids[@]}"; do [[ ${names[i]} != redis ]] && wait "${pids[i]}" 2>/dev/null; done
  for i in "${!pids[@]}"; do
    if [[ ${names[i]} == redis ]]; then kill -TERM "${pids[i]}" 2>/dev/null; wait "${pids[i]}" 2>/dev/null; fi
  done
  echo "up: stopped (logs in $data/logs)"
}
trap stop_all EXIT
trap 'stop_all; exit 0' INT TERM

# Redis: our own, unless KATY_REDIS_URL points elsewhere.
if [[ -z "${KATY_REDIS_URL:-}" ]]; then
  default_redis_port="${KATY_DEFAULT_REDIS_URL##*:}"  # redis://host:PORT/db
  redis_port="${KATY_REDIS_PORT:-${default_redis_port%%/*}}"
  if redis-cli -p "$redis_port" ping >/dev/null 2>&1; then
    echo "up: something already answers on port $redis_port; set KATY_REDIS_PORT or KATY_REDIS_URL" >&2
    exit 1
  fi
  start redis redis-server --port "$redis_port" --bind 127.0.0.1 --dir "$data/redis" \
    --appendonly yes --appendfsync everysec --save ""
  export KATY_REDIS_URL="redis://127.0.0.1:$redis_port/0"
  for _ in $(seq 1 50); do redis-cli -p "$redis_port" ping >/dev/null 2>&1 && break; sleep 0.1; done
fi

emulator=""
if [[ -z "${KATY_GRAPH_URL:-}" ]]; then
  export KATY_EMULATOR_ADDR="${KATY_EMULATOR_ADDR:-$KATY_DEFAULT_EMULATOR_ADDR}"
  export KATY_PAGE_TOKEN="${KATY_PAGE_TOKEN:-emulator-page-token}"
  export KATY_EMULATOR_PAGE_TOKEN="$KATY_PAGE_TOKEN"
  export KATY_INGRESS_URL="${KATY_INGRESS_URL:-http://127.0.0.1:$ingress_port/webhook}"
  export KATY_GRAPH_URL="http://$KATY_EMULATOR_ADDR/v25.0"
  # The emulator's app id: its echoes of the bot's messages are the bot's own, and an echo from
  # the Page Inbox (a person answering) pauses the bot (docs/handover.md).
  export KATY_APP_ID="${KATY_APP_ID:-1517776481860111}"
  # Meta's data deletion callback on ingress's port, which the emulator calls
  # (/_emulator/delete-user; docs/privacy.md). For a real page, set your https:// origin.
  export KATY_PUBLIC_URL="${KATY_PUBLIC_URL:-http://127.0.0.1:$ingress_port}"
  emulator="http://$KATY_EMULATOR_ADDR"
  # The chat page's side panel reads the services' queue gauges every second: share each read
  # for a second, not for a Prometheus scrape interval (README.md, KATY_STATUS_MAX_AGE_MS).
  export KATY_STATUS_MAX_AGE_MS="${KATY_STATUS_MAX_AGE_MS:-1000}"
  start emulator env KATY_EMULATOR_METRICS_URLS="http://${KATY_INGRESS_ADMIN_ADDR:-$KATY_DEFAULT_INGRESS_ADMIN_ADDR}/metrics,http://${KATY_SENDER_ADMIN_ADDR:-$KATY_DEFAULT_SENDER_ADMIN_ADDR}/metrics" \
    "$bin/katy-emulator"
fi

# Each service has its own gRPC and admin ports (KATY_GRPC_ADDR/KATY_ADMIN_ADDR would give all
# three the same one), overridable per service here.
start ingress env KATY_GRPC_ADDR="${KATY_INGRESS_GRPC_ADDR:-$KATY_DEFAULT_INGRESS_GRPC_ADDR}" \
  KATY_ADMIN_ADDR="${KATY_INGRESS_ADMIN_ADDR:-$KATY_DEFAULT_INGRESS_ADMIN_ADDR}" "$bin/katy-ingress"
start responder env KATY_GRPC_ADDR="${KATY_RESPONDER_GRPC_ADDR:-$KATY_DEFAULT_RESPONDER_GRPC_ADDR}" \
  KATY_ADMIN_ADDR="${KATY_RESPONDER_ADMIN_ADDR:-$KATY_DEFAULT_RESPONDER_ADMIN_ADDR}" "$bin/katy-responder"
start sender env KATY_GRPC_ADDR="${KATY_SENDER_GRPC_ADDR:-$KATY_DEFAULT_SENDER_GRPC_ADDR}" \
  KATY_ADMIN_ADDR="${KATY_SENDER_ADMIN_ADDR:-$KATY_DEFAULT_SENDER_ADMIN_ADDR}" "$bin/katy-sender"

sleep 1
for i in "${!pids[@]}"; do
  if ! kill -0 "${pids[i]}" 2>/dev/null; then
    echo "up: ${names[i]} failed to start; its log ($data/logs/${names[i]}.log) ends with:" >&2
    tail -n 5 "$data/logs/${names[i]}.log" >&2
    exit 1
  fi
done

echo
if [[ -n "$emulator" ]]; then
  echo "Chat with the bot in your browser: $emulator/"
fi
cat <<MSG

Katy is running (logs in $data/logs, Redis data in $data/redis).
  ingress    http://127.0.0.1:$ingress_port/webhook    (Meta's webhook; verify token in $data/secrets.env)
  responder  rules from $KATY_RULES (edit, then: kill -HUP \$(pgrep -f bin/katy-responder))
  sender     Send API at $KATY_GRAPH_URL
MSG
if [[ -n "$emulator" ]]; then
  cat <<MSG
  emulator   $emulator    (a stand-in for Meta: no Facebook account needed)
  katyctl    $bin/katyctl status    (queues, shard owners, pages; katyctl --help)

Talk to the bot as a user, from the command line:
  curl -s -X POST $emulator/_emulator/say -H 'Content-Type: application/json' -d '{"page":"1045","psid":"42","text":"hello"}'
Read the bot's replies to that user:
  curl -s '$emulator/_emulator/messages?psid=42'
MSG
fi
echo
echo "Press Ctrl-C to stop."

# Stay up until Ctrl-C, or until one process dies (then stop the rest).
while true; do
  for i in "${!pids[@]}"; do
    if ! kill -0 "${pids[i]}" 2>/dev/null; then
      echo "up: ${names[i]} exited; see $data/logs/${names[i]}.log" >&2
      exit 1
    fi
  done
  sleep 1
done
