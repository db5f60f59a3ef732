#include "services/ingress/signature.h"

#include <string>

#include "common/hmac.h"

namespace katy::ingress {
namespace {

// Splits "algo=hex" and checks the hex part's form; Meta sends lowercase, uppercase is tolerated.
bool SplitHeader(std::string_view header, std::string_view algo, size_t hex_len, std::string* hex) {
  if (header.size() != algo.size() + 1 + hex_len) return false;
  if (header.substr(0, algo.size()) != algo || header[algo.size()] != '=') return false;
  hex->assign(header.substr(algo.size() + 1));
  for (char& c : *hex) {
    if (c >= 'A' && c <= 'F') c = static_cast<char>(c - 'A' + 'a');
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

}  // namespace

SignatureCheck VerifySignature(std::string_view app_secret, std::string_view raw_body, std::string_view sha256_header,
                               std::string_view sha1_header, bool accept_sha1) {
  std::string given;
  if (!sha256_header.empty()) {
    if (!SplitHeader(sha256_header, "sha256", 64, &given)) return SignatureCheck::kMalformed;
    return ConstantTimeEquals(given, HmacSha256Hex(app_secret, raw_body)) ? SignatureCheck::kValid
                                                                          : SignatureCheck::kMismatch;
  }
  if (accept_sha1 && !sha1_header.empty()) {
    if (!SplitHeader(sha1_header, "sha1", 40, &given)) return SignatureCheck::kMalformed;
    return ConstantTimeEquals(given, HmacSha1Hex(app_secret, raw_body)) ? SignatureCheck::kValid
                                                                        : SignatureCheck::kMismatch;
  }
  return SignatureCheck::kMissing;
}

const char* SignatureCheckName(SignatureCheck check) {
  switch (check) {
    case SignatureCheck::kValid:
      return "valid";
    case SignatureCheck::kMissing:
      return "missing";
    case SignatureCheck::kMalformed:
      return "malformed";
    case SignatureCheck::kMismatch:
      return "mismatch";
  }
  return "unknown";
}

}  // namespace katy::ingress
