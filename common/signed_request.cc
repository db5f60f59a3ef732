#include "common/signed_request.h"

#include <openssl/evp.h>

#include <charconv>
#include <nlohmann/json.hpp>

#include "common/events.h"
#include "common/hmac.h"

namespace katy {
namespace {

constexpr const char* kAlgorithm = "HMAC-SHA256";
constexpr size_t kMaxIdLength = 64;

Error Refused(const std::string& reason, const std::string& message) {
  Error error{ErrorCode::kRejected, message};
  error.reason = reason;
  return error;
}

// base64url without padding (Meta's form) to bytes; nullopt when it is not base64url.
std::optional<std::string> DecodeBase64Url(std::string_view text) {
  std::string standard(text);
  for (char& c : standard) {
    if (c == '-')
      c = '+';
    else if (c == '_')
      c = '/';
    else if (c == '+' || c == '/')
      return std::nullopt;
  }
  while (!standard.empty() && standard.back() == '=') standard.pop_back();
  if (standard.size() % 4 == 1) return std::nullopt;
  const size_t padding = (4 - standard.size() % 4) % 4;
  standard.append(padding, '=');
  std::string bytes(standard.size() / 4 * 3, '\0');
  const int n =
      EVP_DecodeBlock(reinterpret_cast<unsigned char*>(bytes.data()),
                      reinterpret_cast<const unsigned char*>(standard.data()), static_cast<int>(standard.size()));
  if (n < 0) return std::nullopt;
  bytes.resize(static_cast<size_t>(n) - padding);
  return bytes;
}

std::string EncodeBase64Url(std::string_view bytes) {
  std::string out(4 * ((bytes.size() + 2) / 3) + 1, '\0');
  const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(bytes.data()), static_cast<int>(bytes.size()));
  out.resize(static_cast<size_t>(n));
  while (!out.empty() && out.back() == '=') out.pop_back();
  for (char& c : out) {
    if (c == '+')
      c = '-';
    else if (c == '/')
      c = '_';
  }
  return out;
}

std::string BytesOfHex(std::string_view hex) {
  std::string bytes(hex.size() / 2, '\0');
  for (size_t i = 0; i < bytes.size(); ++i) {
    std::from_chars(hex.data() + 2 * i, hex.data() + 2 * i + 2, reinterpret_cast<unsigned char&>(bytes[i]), 16);
  }
  return bytes;
}

Result<SignedRequest> ReadPayload(const std::string& json, int64_t now_s, SignedRequestBounds bounds) {
  const auto payload = nlohmann::json::parse(json, nullptr, false);
  if (!payload.is_object()) return Refused("bad_payload", "the payload is not a JSON object");
  if (payload.value("algorithm", "") != kAlgorithm) {
    return Refused("bad_algorithm", "the algorithm is not HMAC-SHA256");
  }
  SignedRequest request;
  const auto& issued = payload.contains("issued_at") ? payload["issued_at"] : nlohmann::json();
  if (!issued.is_number_integer()) return Refused("bad_payload", "issued_at is missing");
  request.issued_at_s = issued.get<int64_t>();
  if (request.issued_at_s > now_s + bounds.max_skew_s) return Refused("from_the_future", "issued_at is in the future");
  if (request.issued_at_s < now_s - bounds.max_age_s) return Refused("expired", "issued_at is too old");
  const auto& user = payload.contains("user_id") ? payload["user_id"] : nlohmann::json();
  request.user_id = user.is_string() ? user.get<std::string>() : user.is_number_unsigned() ? user.dump() : "";
  if (!IsNumericId(request.user_id, kMaxIdLength)) return Refused("bad_payload", "user_id is not an id");
  return request;
}

std::string CodeTag(std::string_view app_secret, std::string_view issued_and_id) {
  return HmacSha256Hex(app_secret, "katy-deletion-status:" + std::string(issued_and_id)).substr(0, 16);
}

}  // namespace

Result<SignedRequest> ParseSignedRequest(std::string_view signed_request, std::string_view app_secret, int64_t now_s,
                                         SignedRequestBounds bounds) {
  const size_t dot = signed_request.find('.');
  if (dot == std::string_view::npos || dot == 0 || dot + 1 == signed_request.size()) {
    return Refused("bad_format", "a signed_request is signature.payload");
  }
  const std::string_view encoded_payload = signed_request.substr(dot + 1);
  const auto signature = DecodeBase64Url(signed_request.substr(0, dot));
  const auto payload = DecodeBase64Url(encoded_payload);
  if (!signature || !payload) return Refused("bad_format", "the signed_request is not base64url");
  // Meta signs the payload as sent, base64url and all.
  if (!ConstantTimeEquals(LowerHex(*signature), HmacSha256Hex(app_secret, encoded_payload))) {
    return Refused("bad_signature", "the signature does not match the app secret");
  }
  return ReadPayload(*payload, now_s, bounds);
}

std::string SignRequest(std::string_view payload_json, std::string_view app_secret) {
  const std::string payload = EncodeBase64Url(payload_json);
  return EncodeBase64Url(BytesOfHex(HmacSha256Hex(app_secret, payload))) + "." + payload;
}

std::string DeletionCode(std::string_view signed_request, std::string_view app_secret, int64_t issued_at_s) {
  const std::string issued_and_id =
      std::to_string(issued_at_s) + "-" +
      HmacSha256Hex(app_secret, "katy-deletion-request:" + std::string(signed_request)).substr(0, 16);
  return issued_and_id + "-" + CodeTag(app_secret, issued_and_id);
}

std::optional<int64_t> IssuedAtOfDeletionCode(std::string_view code, std::string_view app_secret) {
  const size_t tag_at = code.rfind('-');
  if (tag_at == std::string_view::npos) return std::nullopt;
  const std::string_view issued_and_id = code.substr(0, tag_at);
  if (!ConstantTimeEquals(code.substr(tag_at + 1), CodeTag(app_secret, issued_and_id))) return std::nullopt;
  int64_t issued = 0;
  const auto [end, ec] = std::from_chars(issued_and_id.data(), issued_and_id.data() + issued_and_id.size(), issued);
  if (ec != std::errc() || end == issued_and_id.data() + issued_and_id.size() || *end != '-') return std::nullopt;
  return issued;
}

}  // namespace katy
