#pragma once

#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

namespace katy::emulator {

// A user's action to turn into a webhook.
struct UserEvent {
  std::string page_id;
  std::string psid;
  std::string mid;
  int64_t timestamp_ms = 0;
  std::string text;  // a text message (with quick_reply_payload when tapped)
  std::string quick_reply_payload;
  std::string postback_payload;  // a postback instead of a message when non-empty
  std::string postback_title;
  // Where the person came from (an m.me link's ?ref=): on the postback (Get Started in a new
  // thread), on the message, or alone as a referral event (an existing thread) when the event
  // has neither text nor postback.
  std::string ref;
  // The person came from a Click-to-Messenger ad: the referral says source ADS (with an ad id),
  // alone when the event has neither text nor postback.
  bool from_ad = false;
};

// The messaging item Meta would send for `event` (a message, a postback, or a referral). Pure.
nlohmann::json UserEventItem(const UserEvent& event);

// The POST body Meta would send for `event` alone, byte for byte in Meta's wire form: ASCII JSON
// with non-ASCII escaped as \uXXXX (lowercase) and '/' as "\/". Pure.
std::string BuildWebhookBody(const UserEvent& event);

// "sha256=" + hex HMAC-SHA256(app_secret, body): the X-Hub-Signature-256 header value.
std::string SignBody(const std::string& app_secret, const std::string& body);

}  // namespace katy::emulator
