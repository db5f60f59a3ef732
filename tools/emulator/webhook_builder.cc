#include "tools/emulator/webhook_builder.h"

#include <nlohmann/json.hpp>

#include "common/hmac.h"
#include "common/json_escape.h"
#include "tools/emulator/webhook_delivery.h"

namespace katy::emulator {

nlohmann::json UserEventItem(const UserEvent& event) {
  using nlohmann::json;
  json item{
      {"sender", {{"id", event.psid}}}, {"recipient", {{"id", event.page_id}}}, {"timestamp", event.timestamp_ms}};
  json referral{{"ref", event.ref}, {"source", "SHORTLINK"}, {"type", "OPEN_THREAD"}};
  if (event.from_ad) {
    // Meta's ad referral (messaging_referrals reference, "Ad Referral").
    referral["source"] = "ADS";
    referral["ad_id"] = "6045246247433";
    referral["ads_context_data"] = {{"ad_title", "Emulator ad"}, {"post_id", event.page_id + "_900000000000001"}};
  }
  const bool referred = !event.ref.empty() || event.from_ad;
  if (!event.postback_payload.empty()) {
    item["postback"] = {{"mid", event.mid}, {"title", event.postback_title}, {"payload", event.postback_payload}};
    if (referred) item["postback"]["referral"] = referral;
  } else if (event.text.empty() && referred) {
    item["referral"] = referral;
  } else {
    item["message"] = {{"mid", event.mid}, {"text", event.text}};
    if (!event.quick_reply_payload.empty()) {
      item["message"]["quick_reply"] = {{"payload", event.quick_reply_payload}};
    }
    if (referred) item["message"]["referral"] = referral;
  }
  return item;
}

std::string BuildWebhookBody(const UserEvent& event) {
  return BuildBatchBody({{event.page_id, UserEventItem(event)}}, event.timestamp_ms);
}

std::string SignBody(const std::string& app_secret, const std::string& body) {
  return "sha256=" + HmacSha256Hex(app_secret, body);
}

}  // namespace katy::emulator
