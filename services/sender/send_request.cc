#include "services/sender/send_request.h"

#include <nlohmann/json.hpp>

#include "common/hmac.h"
#include "common/http/http_client.h"
#include "common/json_text.h"

namespace katy::sender {

namespace {

// POST /{comment}/comments (a Page) or /{comment}/replies (Instagram), {"message": text}.
std::optional<SendRequest> BuildPublicReply(const katy::v1::OutboundMessage& message, const std::string& graph_url,
                                            const std::string& page_token, const std::string& app_secret) {
  auto content = nlohmann::json::parse(message.message_json(), nullptr, false);
  if (message.recipient_comment_id().empty() || !content.is_object() || !content.contains("text") ||
      !content["text"].is_string()) {
    return std::nullopt;
  }
  const char* edge = message.platform() == "instagram" ? "replies" : "comments";
  SendRequest request;
  request.url = PageEdgeUrl(graph_url, message.recipient_comment_id(), edge, page_token, app_secret);
  request.body = ToJsonText(nlohmann::json{{"message", content["text"]}});
  return request;
}

}  // namespace

const std::string& CommentOf(const katy::v1::OutboundMessage& message) {
  return message.recipient_comment_id().empty() ? message.recipient_post_id() : message.recipient_comment_id();
}

bool IsPrivateReply(const katy::v1::OutboundMessage& message) {
  return !message.public_reply() && IsAboutAComment(message);
}

bool IsAboutAComment(const katy::v1::OutboundMessage& message) { return !CommentOf(message).empty(); }

std::optional<SendRequest> BuildSendRequest(const katy::v1::OutboundMessage& message, const std::string& graph_url,
                                            const std::string& page_token, const std::string& app_secret) {
  if (message.public_reply()) return BuildPublicReply(message, graph_url, page_token, app_secret);
  nlohmann::json body;
  if (!message.recipient_comment_id().empty()) {
    body["recipient"]["comment_id"] = message.recipient_comment_id();
  } else if (!message.recipient_post_id().empty()) {
    body["recipient"]["post_id"] = message.recipient_post_id();
  } else if (message.recipient_is_ref()) {
    body["recipient"]["user_ref"] = message.recipient_id();
  } else {
    body["recipient"]["id"] = message.recipient_id();
  }
  std::string edge = "messages";
  if (!message.thread_control().empty()) {
    // Handover (docs/handover.md): the same recipient, on the page's thread-control edge.
    if (message.thread_control() != "pass_thread_control" && message.thread_control() != "take_thread_control") {
      return std::nullopt;
    }
    if (message.thread_control() == "pass_thread_control") body["target_app_id"] = message.target_app_id();
    if (!message.thread_metadata().empty()) body["metadata"] = message.thread_metadata();
    edge = message.thread_control();
  } else if (!message.sender_action().empty()) {
    body["sender_action"] = message.sender_action();
  } else {
    auto content = nlohmann::json::parse(message.message_json(), nullptr, false);
    if (!content.is_object()) return std::nullopt;
    // A private reply is answered as Meta's Private Replies guide shows it: recipient and message.
    if (!IsPrivateReply(message)) {
      body["messaging_type"] = message.messaging_type().empty() ? "RESPONSE" : message.messaging_type();
    }
    if (!message.tag().empty()) body["tag"] = message.tag();
    body["message"] = std::move(content);
  }
  SendRequest request;
  request.url = PageEdgeUrl(graph_url, message.page_id(), edge, page_token, app_secret);
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
