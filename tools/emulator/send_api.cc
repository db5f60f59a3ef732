#include "tools/emulator/send_api.h"

#include <nlohmann/json.hpp>

namespace katy::emulator {
namespace {

using nlohmann::json;

size_t CodePoints(const std::string& utf8) {
  size_t n = 0;
  for (unsigned char c : utf8) n += (c & 0xC0) != 0x80;
  return n;
}

GraphError Invalid(std::string message, int subcode = 0) {
  return GraphError{400, 100, subcode, "OAuthException", "(#100) " + std::move(message)};
}

}  // namespace

std::string GraphError::Body() const {
  json error{{"message", message}, {"type", type}, {"code", code}, {"fbtrace_id", "AemulatorTrace"}};
  if (subcode != 0) error["error_subcode"] = subcode;
  return json{{"error", error}}.dump();
}

std::variant<AcceptedSend, GraphError> ValidateSend(std::string_view body) {
  json request = json::parse(body, nullptr, false);
  if (!request.is_object()) return Invalid("The request body must be a JSON object");
  AcceptedSend send;
  auto recipient = request.find("recipient");
  if (recipient == request.end() || !recipient->is_object()) {
    return Invalid("param recipient must be non-empty.");
  }
  if (recipient->contains("id") && (*recipient)["id"].is_string()) {
    send.recipient = (*recipient)["id"].get<std::string>();
  } else if (recipient->contains("id") && (*recipient)["id"].is_number()) {
    send.recipient = (*recipient)["id"].dump();
  } else if (recipient->contains("user_ref") && (*recipient)["user_ref"].is_string()) {
    send.recipient = (*recipient)["user_ref"].get<std::string>();
    send.recipient_is_ref = true;
  }
  if (send.recipient.empty()) return Invalid("param recipient must have an id or user_ref.");

  if (auto action = request.find("sender_action"); action != request.end()) {
    if (request.contains("message")) {
      return Invalid("sender_action cannot be sent with message; send it as its own request");
    }
    if (!action->is_string() || (*action != "typing_on" && *action != "typing_off" && *action != "mark_seen")) {
      return Invalid("param sender_action must be one of {typing_on, typing_off, mark_seen}");
    }
    send.sender_action = action->get<std::string>();
    return send;
  }

  auto type = request.find("messaging_type");
  if (type == request.end() || !type->is_string()) return Invalid("param messaging_type is required");
  send.messaging_type = type->get<std::string>();
  if (send.messaging_type == "MESSAGE_TAG") {
    if (!request.contains("tag") || !request["tag"].is_string()) return Invalid("param tag is required");
    send.tag = request["tag"].get<std::string>();
  } else if (send.messaging_type != "RESPONSE" && send.messaging_type != "UPDATE") {
    return Invalid("param messaging_type must be one of {RESPONSE, UPDATE, MESSAGE_TAG}");
  }

  auto message = request.find("message");
  if (message == request.end() || !message->is_object()) return Invalid("param message must be non-empty.");
  bool has_text = message->contains("text");
  bool has_attachment = message->contains("attachment");
  if (has_text == has_attachment) return Invalid("message must have exactly one of text or attachment");
  if (has_text) {
    if (!(*message)["text"].is_string() || (*message)["text"].get<std::string>().empty()) {
      return Invalid("param message[text] must be a non-empty UTF-8 encoded string");
    }
    if (CodePoints((*message)["text"].get<std::string>()) >= 2000) {
      return Invalid("param message[text] must be UTF-8 encoded with a maximum of 2000 characters");
    }
  }
  if (auto quick = message->find("quick_replies"); quick != message->end()) {
    if (!quick->is_array() || quick->empty() || quick->size() > 13) {
      return Invalid("param message[quick_replies] must have between 1 and 13 items");
    }
    for (const auto& item : *quick) {
      std::string content_type = item.value("content_type", "");
      if (content_type != "text") continue;  // user_phone_number, user_email carry no title
      std::string title = item.value("title", "");
      if (title.empty() || CodePoints(title) > 20) {
        return Invalid("param message[quick_replies][title] must be 1 to 20 characters");
      }
      if (item.value("payload", "").size() > 1000) {
        return Invalid("param message[quick_replies][payload] must be at most 1000 characters");
      }
    }
  }
  send.message_json = message->dump();
  return send;
}

}  // namespace katy::emulator
