#!/usr/bin/env bash
# A whole Katy under load, end to end: scripts/up.sh runs Redis (AOF) and the three services
# with the sender's Send API pointed at a `katy-emulator load` run, which plays N users sending
# R messages/s through signed, batched webhooks and measures every reply.
# Usage: bench/end_to_end.sh [users] [rate] [seconds]   (defaults 50, 500, 5)
set -euo pipefail
users="${1:-50}"
rate="${2:-500}"
seconds="${3:-5}"
source "$(dirname "$0")/../tests/e2e/lib_up.sh"
load_port=$(free_port)
export KATY_KEEP_META_ENV=1
export KATY_GRAPH_URL="http://127.0.0.1:$load_port/v25.0"
export KATY_APP_SECRET=bench-secret KATY_PAGE_TOKEN=bench-token KATY_LOG_LEVEL=warn
start_up
ingress="http://$KATY_HTTP_ADDR/webhook"
"$root/build/bin/katy-emulator" load --ingress "$ingress" --listen "127.0.0.1:$load_port" \
  --app-secret "$KATY_APP_SECRET" --users "$users" --rate "$rate" --duration "$seconds" --drain 20 --json
stop_up
rm -rf "$work"
