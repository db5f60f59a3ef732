#pragma once

#include <string_view>

namespace katy::ingress {

enum class SignatureCheck {
  kValid,
  kMissing,    // no usable signature header
  kMalformed,  // header present but not "sha256=<64 hex>" / "sha1=<40 hex>"
  kMismatch,   // well-formed but wrong
};

// Checks Meta's X-Hub-Signature-256 ("sha256=" + hex HMAC-SHA256(app secret, raw body)) over
// the body exactly as received. The legacy X-Hub-Signature (sha1) counts only when
// `accept_sha1` is set and the sha256 header is absent. Constant-time. Pure, thread-safe.
SignatureCheck VerifySignature(std::string_view app_secret, std::string_view raw_body, std::string_view sha256_header,
                               std::string_view sha1_header, bool accept_sha1);

const char* SignatureCheckName(SignatureCheck check);

}  // namespace katy::ingress
