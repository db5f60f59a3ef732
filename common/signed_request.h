#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "common/result.h"

namespace katy {

// Meta's signed_request (the data deletion callback's form field, docs/messenger-platform.md
// "Data deletion callback"): base64url(HMAC-SHA256(app secret, payload part)) "." base64url(JSON
// payload), the payload naming the app-scoped user, the algorithm and when it was issued.
struct SignedRequest {
  std::string user_id;  // the app-scoped id of the person asking
  int64_t issued_at_s = 0;
};

// How old (or how far ahead of this clock) a signed request may be.
struct SignedRequestBounds {
  int64_t max_age_s = 3600;  // older: refused as a replay
  int64_t max_skew_s = 300;  // issued further in the future: refused
};

// Verifies and reads a signed request: the signature (constant-time), `algorithm` HMAC-SHA256,
// `issued_at` within `bounds` of `now_s`, a numeric `user_id`. Errors are kRejected with a
// reason (bad_format, bad_signature, bad_algorithm, expired, from_the_future, bad_payload).
// Pure, thread-safe.
Result<SignedRequest> ParseSignedRequest(std::string_view signed_request, std::string_view app_secret, int64_t now_s,
                                         SignedRequestBounds bounds = {});

// Signs `payload_json` as Meta does (the emulator plays Meta with it). Pure.
std::string SignRequest(std::string_view payload_json, std::string_view app_secret);

// A deletion request's confirmation code: "<issued_at>-<request id>-<tag>", where the request id
// is derived from the signed request (the same request gives the same code, so Meta's retry is
// one deletion) and the tag lets the status page tell Katy's codes from made-up ones without
// storing anything. Neither part reveals an id. Pure.
std::string DeletionCode(std::string_view signed_request, std::string_view app_secret, int64_t issued_at_s);
// When a code Katy gave was issued (seconds), or nullopt for a code it never gave. Pure.
std::optional<int64_t> IssuedAtOfDeletionCode(std::string_view code, std::string_view app_secret);

}  // namespace katy
