#include "tools/emulator/send_api.h"

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>

#include "common/http/http_client.h"
#include "common/page_setup.h"
#include "common/utf8.h"

namespace katy::emulator {
namespace {

using nlohmann::json;

GraphError Invalid(std::string message, int subcode = 0) {
  return GraphError{400, 100, subcode, "OAuthException", "(#100) " + std::move(message)};
}

std::optional<GraphError> ValidateButtons(const json& buttons) {
  if (!buttons.is_array() || buttons.empty() || buttons.size() > 3) {
    return Invalid("param buttons must have between 1 and 3 items");
  }
  for (const auto& button : buttons) {
    const std::string type = button.value("type", "");
    const std::string title = button.value("title", "");
    if (title.empty() || CodePoints(title) > 20) return Invalid("param title of a button must be 1 to 20 characters");
    if (type == "web_url" && !button.contains("url")) return Invalid("a web_url button needs a url");
    if (type == "postback" && !button.contains("payload")) return Invalid("a postback button needs a payload");
    if (type != "web_url" && type != "postback" && type != "phone_number" && type != "account_link" &&
        type != "account_unlink" && type != "game_play") {
      return Invalid("unknown button type '" + type + "'");
    }
  }
  return std::nullopt;
}

std::optional<GraphError> ValidateAttachment(const json& attachment) {
  if (!attachment.is_object() || !attachment.contains("type"))
    return Invalid("param message[attachment][type] is required");
  const std::string type = attachment.value("type", "");
  const json payload = attachment.value("payload", json::object());
  if (type == "image" || type == "audio" || type == "video" || type == "file") {
    if (!payload.contains("url") && !payload.contains("attachment_id")) {
      return Invalid("param message[attachment][payload] needs a url or an attachment_id");
    }
    return std::nullopt;
  }
  if (type != "template")
    return Invalid("param message[attachment][type] must be image, audio, video, file or template");
  const std::string template_type = payload.value("template_type", "");
  if (template_type == "button") {
    const std::string text = payload.value("text", "");
    if (text.empty() || CodePoints(text) > 640)
      return Invalid("param text of a button template must be 1 to 640 characters");
    return ValidateButtons(payload.value("buttons", json()));
  }
  if (template_type == "generic") {
    const json elements = payload.value("elements", json());
    if (!elements.is_array() || elements.empty() || elements.size() > 10) {
      return Invalid("param elements must have between 1 and 10 items");
    }
    for (const auto& element : elements) {
      const std::string title = element.value("title", "");
      if (title.empty() || CodePoints(title) > 80)
        return Invalid("param title of an element must be 1 to 80 characters");
      if (element.contains("buttons")) {
        if (auto error = ValidateButtons(element["buttons"])) return error;
      }
    }
    return std::nullopt;
  }
  if (template_type == "media" || template_type == "receipt" || template_type == "customer_feedback")
    return std::nullopt;
  return Invalid("unknown template_type '" + template_type + "'");
}

int Percent(double used, double limit) {
  if (limit <= 0) return 0;
  return static_cast<int>(std::min(100.0, std::round(used / limit * 100.0)));
}

}  // namespace

std::string FormToJson(std::string_view form) {
  json out = json::object();
  size_t start = 0;
  while (start <= form.size()) {
    size_t end = form.find('&', start);
    if (end == std::string_view::npos) end = form.size();
    std::string_view pair = form.substr(start, end - start);
    if (!pair.empty()) {
      size_t eq = pair.find('=');
      std::string key = http::UrlDecode(pair.substr(0, eq));
      std::string value = eq == std::string_view::npos ? "" : http::UrlDecode(pair.substr(eq + 1));
      json parsed = json::parse(value, nullptr, false);
      out[key] = parsed.is_object() ? parsed : json(value);
    }
    start = end + 1;
  }
  return out.dump();
}

UsageHeaders MakeUsageHeaders(const std::string& page_id, double calls_last_second, double limit_per_second,
                              bool throttled) {
  // The page's (business use case) figure is 100 while throttled; the emulator's limits are per
  // second, so access comes back within the minute (estimate 0). The app-level figure, an hourly
  // one at Meta, stays below 100: a per-second limit says nothing about the hour.
  const int percent = throttled ? 100 : std::min(99, Percent(calls_last_second, limit_per_second));
  const int app_percent = std::min(99, percent);
  json app{{"call_count", app_percent}, {"total_cputime", app_percent / 2}, {"total_time", app_percent / 2}};
  json business{{page_id, json::array({{{"type", "messenger"},
                                        {"call_count", percent},
                                        {"total_cputime", percent / 2},
                                        {"total_time", percent / 2},
                                        {"estimated_time_to_regain_access", 0}}})}};
  return {app.dump(), business.dump()};
}

std::optional<GraphError> ValidateMessengerProfile(const json& body) {
  if (auto error = MessengerProfileError(body)) return Invalid(*error);
  return std::nullopt;
}

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
  for (const char* key : {"comment_id", "post_id"}) {
    if (recipient->contains(key) && (*recipient)[key].is_string()) send.comment_id = (*recipient)[key];
  }
  if (send.recipient.empty() && send.comment_id.empty()) {
    return Invalid("param recipient must have an id, user_ref, comment_id or post_id.");
  }

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
  if (!send.comment_id.empty() && type == request.end()) {
    send.messaging_type = "RESPONSE";  // Meta's private replies are sent without one
  } else if (type == request.end() || !type->is_string()) {
    return Invalid("param messaging_type is required");
  } else {
    send.messaging_type = type->get<std::string>();
  }
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
  if (has_attachment) {
    if (auto error = ValidateAttachment((*message)["attachment"])) return *error;
  }
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
