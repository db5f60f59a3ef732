#!/usr/bin/env bash
# Builds the webhook fuzzer (HTTP request parsing, signature, webhook parsing) with clang-14 (libFuzzer + ASan + UBSan) and runs it for a bounded
# time (KATY_FUZZ_SECONDS, default 20), seeded with the webhook fixtures. Exits non-zero on any
# crash, leak or sanitizer report. Usage: tests/fuzz/run.sh [seconds]
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
seconds="${1:-${KATY_FUZZ_SECONDS:-20}}"
KATY_EXTRA_PACKAGES="clang-14 libclang-rt-14-dev" "$root/scripts/setup.sh"

out="$root/build/fuzz"
mkdir -p "$out/gen" "$out/corpus"
protoc -I "$root/proto" --cpp_out="$out/gen" "$root/proto/katy/v1/events.proto"
if [[ ! -x "$out/webhook_fuzz" || -n "$(find "$root/services/ingress" "$root/common" "$root/tests/fuzz" -newer "$out/webhook_fuzz" -name '*.cc' -o -newer "$out/webhook_fuzz" -name '*.h' | head -1)" ]]; then
  clang++-14 -std=c++20 -O1 -g -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
    -I "$root" -I "$out/gen" \
    "$root/tests/fuzz/webhook_fuzz.cc" \
    "$root/services/ingress/webhook_parser.cc" "$root/services/ingress/signature.cc" \
    "$root/services/ingress/http1.cc" \
    "$root/common/hmac.cc" "$root/common/shard.cc" "$out/gen/katy/v1/events.pb.cc" \
    -lprotobuf -lcrypto -lsimdjson -pthread -o "$out/webhook_fuzz"
fi
cp "$root"/tests/fixtures/webhooks/*.json "$out/corpus/"
# A whole webhook POST as it arrives on the wire, so the HTTP parser is explored from a real request.
{
  printf 'POST /webhook?hub.mode=subscribe&hub.challenge=a%%20b HTTP/1.1\r\nHost: katy\r\n'
  printf 'Content-Type: application/json\r\nX-Hub-Signature-256: sha256=%064d\r\n' 0
  printf 'Expect: 100-continue\r\nContent-Length: %d\r\n\r\n' "$(wc -c <"$root/tests/fixtures/webhooks/text_message.json")"
  cat "$root/tests/fixtures/webhooks/text_message.json"
} >"$out/corpus/http_request.seed"
cd "$out"
./webhook_fuzz -max_total_time="$seconds" -max_len=65536 -timeout=10 -rss_limit_mb=2048 \
  -print_final_stats=1 corpus 2>&1 | tail -n 20
