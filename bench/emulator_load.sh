#!/usr/bin/env bash
# How fast katy-emulator's load mode itself is, so that it is never the bottleneck it measures:
#  1. sending: `katy-emulator load` at a rate far above Katy's, against nginx answering 200
#     (a webhook sink that costs nothing), batched as Meta batches under load;
#  2. receiving: wrk POSTing Send API calls to the emulator (keep-alive, 16 connections).
# Usage: bench/emulator_load.sh [seconds]   (default 5)
set -euo pipefail
source "$(dirname "$0")/lib.sh"
seconds="${1:-5}"
KATY_EXTRA_PACKAGES="wrk nginx-light" "$root/scripts/setup.sh"
"$root/scripts/build.sh" --target katy-emulator >/dev/null

work=$(mktemp -d /tmp/katy-bench-emulator.XXXXXX)

nginx_port=$(free_port)
start_nginx "$nginx_port" 1
wait_for_port "$nginx_port"
sleep 0.5

echo "== sending: katy-emulator load --rate 40000 --batch 100, webhooks to nginx"
send=$("$root/build/bin/katy-emulator" load --ingress "http://127.0.0.1:$nginx_port/webhook" \
  --listen "127.0.0.1:$(free_port)" --app-secret bench --users 1000 --rate 40000 --duration "$seconds" \
  --drain 0 --batch 100 2>/dev/null | head -1)
echo "$send"

echo "== receiving: wrk -t2 -c16 -d${seconds}s POST /v25.0/<page>/messages"
emulator_port=$(free_port)
KATY_APP_SECRET=bench-secret-0123456789 KATY_EMULATOR_ADDR="127.0.0.1:$emulator_port" KATY_LOG_LEVEL=error \
  KATY_EMULATOR_THREADS=2 "$root/build/bin/katy-emulator" >"$work/emulator.log" 2>&1 &
pids+=($!)
wait_for_port "$emulator_port"
cat >"$work/send.lua" <<'LUA'
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local n = 0
function request()
  n = n + 1
  return wrk.format(nil, nil, nil, '{"recipient":{"id":"load-user-' .. (n % 1000) ..
    '"},"messaging_type":"RESPONSE","message":{"text":"echo: load ' .. n .. '"}}')
end
LUA
wrk -t2 -c16 -d"${seconds}s" --latency -s "$work/send.lua" \
  "http://127.0.0.1:$emulator_port/v25.0/104560000000001/messages?access_token=t" | grep -E "Requests/sec|99%|Non-2xx"
