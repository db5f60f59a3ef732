#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <variant>

#include <nlohmann/json.hpp>

#include "common/result.h"

namespace katy::emulator {

// A Send API call the emulator accepted.
struct AcceptedSend {
  std::string recipient;  // PSID, or the user_ref
  bool recipient_is_ref = false;
  std::string comment_id;      // a private reply: recipient.comment_id (or post_id); recipient is then empty
  std::string messaging_type;  // empty for sender actions
  std::string tag;
  std::string message_json;   // the `message` object, or empty
  std::string sender_action;  // typing_on, typing_off, mark_seen, or empty
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

// Validates a Send API JSON body the way Meta does (docs/messenger-platform.md, "Send API requests"): recipient with
// id, user_ref, or comment_id / post_id (a private reply, for which messaging_type may be left out); either
// sender_action alone or a message with messaging_type RESPONSE, UPDATE or MESSAGE_TAG (+tag); text under 2000
// characters; at most 13 quick replies with titles of at most 20 characters and payloads of at most 1000. Pure,
// thread-safe.
std::variant<AcceptedSend, GraphError> ValidateSend(std::string_view body);

// A form-encoded Send API body (recipient={"id":"..."}&message={...}&messaging_type=RESPONSE)
// as the JSON body ValidateSend takes: JSON-valued fields (recipient, message) are parsed,
// the others kept as strings. Pure.
std::string FormToJson(std::string_view form);

// The usage headers Meta sends with Graph answers, for a page that made `calls_last_second`
// calls against a limit of `limit_per_second`: X-App-Usage and X-Business-Use-Case-Usage
// (percentages; the page's figure is 100 only while throttled, with access back within the
// minute; the app-level figure stays below 100). Pure.
struct UsageHeaders {
  std::string app_usage;
  std::string business_use_case_usage;
};
UsageHeaders MakeUsageHeaders(const std::string& page_id, double calls_last_second, double limit_per_second,
                              bool throttled);

// Validates a Messenger Profile POST body (get_started, greeting, persistent_menu, ice_breakers,
// whitelisted_domains). Returns the error to answer, or nullopt. Pure.
std::optional<GraphError> ValidateMessengerProfile(const nlohmann::json& body);

}  // namespace katy::emulator
