#include "services/sender/send_request.h"

#include <nlohmann/json.hpp>

#include "common/hmac.h"
#include "common/http/http_client.h"
#include "common/json_text.h"

namespace katy::sender {

std::optional<SendRequest> BuildSendRequest(const katy::v1::OutboundMessage& message, const std::string& graph_url,
                                            const std::string& page_token, const std::string& app_secret) {
  nlohmann::json body;
  if (message.recipient_is_ref())
    body["recipient"]["user_ref"] = message.recipient_id();
  else
    body["recipient"]["id"] = message.recipient_id();
  if (!message.sender_action().empty()) {
    body["sender_action"] = message.sender_action();
  } else {
    auto content = nlohmann::json::parse(message.message_json(), nullptr, false);
    if (!content.is_object()) return std::nullopt;
    body["messaging_type"] = message.messaging_type().empty() ? "RESPONSE" : message.messaging_type();
    if (!message.tag().empty()) body["tag"] = message.tag();
    body["message"] = std::move(content);
  }
  SendRequest request;
  request.url = PageEdgeUrl(graph_url, message.page_id(), "messages", page_token, app_secret);
  request.body = ToJsonText(body);
  return request;
}

std::string PageEdgeUrl(const std::string& graph_url, const std::string& page_id, const std::string& edge,
                        const std::string& page_token, const std::string& app_secret) {
  std::string url = graph_url;
  while (!url.empty() && url.back() == '/') url.pop_back();
  url += "/" + page_id + "/" + edge + "?access_token=" + http::UrlEncode(page_token);
  if (!app_secret.empty()) url += "&appsecret_proof=" + HmacSha256Hex(app_secret, page_token);
  return url;
}

}  // namespace katy::sender
