#include "common/instagram_limits.h"

#include <algorithm>
#include <iterator>
#include <string_view>

namespace katy {
namespace {

template <size_t N>
bool OneOf(const std::string& value, const char* const (&allowed)[N]) {
  return std::any_of(std::begin(allowed), std::end(allowed), [&](const char* item) { return value == item; });
}

std::optional<std::string> QuickRepliesError(const nlohmann::json& replies) {
  if (!replies.is_array()) return "message.quick_replies: must be a list";
  if (replies.size() > kInstagramMaxQuickReplies) {
    return "message.quick_replies: at most 13 on Instagram, got " + std::to_string(replies.size());
  }
  for (size_t i = 0; i < replies.size(); ++i) {
    const std::string type = replies[i].is_object() ? replies[i].value("content_type", "") : "";
    if (!OneOf(type, kInstagramQuickReplyTypes)) {
      return "message.quick_replies[" + std::to_string(i) + "].content_type: '" + type +
             "' does not exist on Instagram (text, user_phone_number, user_email)";
    }
  }
  return std::nullopt;
}

std::optional<std::string> AttachmentError(const nlohmann::json& attachment) {
  if (!attachment.is_object() || attachment.value("type", "") != "template") return std::nullopt;
  const nlohmann::json payload = attachment.value("payload", nlohmann::json::object());
  const std::string kind = payload.is_object() ? payload.value("template_type", "") : "";
  if (!OneOf(kind, kInstagramTemplates)) {
    return "message.attachment.payload.template_type: '" + kind +
           "' does not exist on Instagram (generic, button, product)";
  }
  return std::nullopt;
}

}  // namespace

std::optional<std::string> InstagramMessageError(const nlohmann::json& message) {
  if (!message.is_object()) return "message: must be an object";
  if (auto text = message.find("text"); text != message.end() && text->is_string()) {
    const size_t bytes = text->get_ref<const std::string&>().size();
    if (bytes > kInstagramMaxTextBytes) {
      return "message.text: at most 1000 bytes on Instagram, got " + std::to_string(bytes);
    }
  }
  if (auto replies = message.find("quick_replies"); replies != message.end()) {
    if (auto error = QuickRepliesError(*replies)) return error;
  }
  if (auto attachment = message.find("attachment"); attachment != message.end()) return AttachmentError(*attachment);
  return std::nullopt;
}

}  // namespace katy
