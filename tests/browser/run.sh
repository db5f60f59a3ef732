#!/usr/bin/env bash
# The chat page in a real browser against a real Katy started by scripts/up.sh (issue 7).
# Installs Debian's chromium and playwright-core (pinned in package-lock.json; it drives
# /usr/bin/chromium and downloads no browser). The screenshot is kept as a test artifact in
# build/artifacts/chat.png.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
KATY_EXTRA_PACKAGES="chromium nodejs fonts-noto-color-emoji" "$here/../../scripts/setup.sh"
if ! command -v npm >/dev/null; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends npm >/dev/null
fi
(cd "$here" && npm ci --no-audit --no-fund --silent)

source "$here/../e2e/lib_up.sh"
start_up
chat_url=$(grep -o "Chat with the bot in your browser: .*" "$up_out" | awk '{print $NF}')
[[ -n "$chat_url" ]] || fail "up.sh did not print the chat page's URL"
artifacts="$root/build/artifacts"
mkdir -p "$artifacts"
status=0
node "$here/chat_test.mjs" "$chat_url" "$artifacts/chat.png" || status=$?
stop_up
rm -rf "$work"
exit $status
