#pragma once

#include <string>
#include <string_view>
#include <variant>

#include "common/result.h"

namespace katy::emulator {

// A Send API call the emulator accepted.
struct AcceptedSend {
  std::string recipient;       // PSID, or the user_ref
  bool recipient_is_ref = false;
  std::string messaging_type;  // empty for sender actions
  std::string tag;
  std::string message_json;    // the `message` object, or empty
  std::string sender_action;   // typing_on, typing_off, mark_seen, or empty
};

// A Meta-shaped failure: HTTP status plus the Graph error object's fields.
struct GraphError {
  int http_status = 400;
  int code = 100;
  int subcode = 0;
  std::string type = "OAuthException";
  std::string message;
  // {"error":{"message","type","code","error_subcode","fbtrace_id"}}
  std::string Body() const;
};

// Validates a Send API JSON body the way Meta does (messenger-platform.md §5): recipient with
// id or user_ref; either sender_action alone or a message with messaging_type RESPONSE, UPDATE
// or MESSAGE_TAG (+tag); text under 2000 characters; at most 13 quick replies with titles of at
// most 20 characters and payloads of at most 1000. Pure, thread-safe.
std::variant<AcceptedSend, GraphError> ValidateSend(std::string_view body);

}  // namespace katy::emulator
