// libFuzzer target: what ingress does to an untrusted body before Redis, signature
// verification over the raw bytes and webhook parsing. Must never crash, leak or hang, and
// the parser's events must always carry the fields the rest of Katy relies on.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "common/hmac.h"
#include "services/ingress/signature.h"
#include "services/ingress/webhook_parser.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view body(reinterpret_cast<const char*>(data), size);
  constexpr std::string_view kSecret = "fuzz-secret";

  // The right signature always verifies; the body used as a header never crashes the check.
  const std::string header = "sha256=" + katy::HmacSha256Hex(kSecret, body);
  if (katy::ingress::VerifySignature(kSecret, body, header, "", false) != katy::ingress::SignatureCheck::kValid) {
    __builtin_trap();
  }
  katy::ingress::VerifySignature(kSecret, body, body.substr(0, 80), body.substr(0, 50), true);

  auto events = katy::ingress::ParseWebhook(body, 1, 50);
  if (events.ok()) {
    if (events->size() > 50) __builtin_trap();
    for (const auto& event : *events) {
      if (event.page_id().empty() || event.dedupe_key().empty() || event.raw_json().empty()) __builtin_trap();
      std::string wire;
      if (!event.SerializeToString(&wire)) __builtin_trap();
    }
  } else if (events.error().reason.empty()) {
    __builtin_trap();
  }
  return 0;
}
