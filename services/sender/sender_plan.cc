// The sender's first stage: what a message becomes on the wire.
#include <nlohmann/json.hpp>

#include "common/instagram_limits.h"
#include "common/json_text.h"
#include "services/sender/send_request.h"
#include "services/sender/sender_handler.h"
#include "services/sender/sender_internal.h"
#include "services/sender/text_split.h"

namespace katy::sender {
namespace {

bool IsMedia(const nlohmann::json& message) {
  if (!message.is_object() || !message.contains("attachment")) return false;
  const auto& type = message["attachment"].value("type", "");
  return type == "audio" || type == "video";
}

}  // namespace

namespace internal {

std::optional<ReusableMedia> ReusableMediaFor(const katy::v1::OutboundMessage& message, const std::string& body) {
  return message.platform() == "instagram" ? std::nullopt : ReusableMediaOf(body);
}

}  // namespace internal

std::optional<PlannedParts> PlanParts(const katy::v1::OutboundMessage& message) {
  PlannedParts plan;
  if (!message.sender_action().empty() || !message.thread_control().empty()) {
    plan.bodies.emplace_back("");
    return plan;
  }
  auto content = nlohmann::json::parse(message.message_json(), nullptr, false);
  if (!content.is_object()) return std::nullopt;
  plan.media = IsMedia(content);
  const bool instagram = message.platform() == "instagram";
  // A comment takes one private reply, ever: a text too long for one message is not split
  // into a second that Meta would refuse; it goes whole, and Meta's answer decides.
  if (content.contains("text") && content["text"].is_string() && !IsAboutAComment(message)) {
    auto parts = SplitMessageText(content["text"].get<std::string>(), instagram);
    for (size_t i = 0; i < parts.size(); ++i) {
      nlohmann::json part = content;
      part["text"] = parts[i];
      if (i + 1 < parts.size()) part.erase("quick_replies");
      plan.bodies.push_back(ToJsonText(part));
    }
  }
  if (plan.bodies.empty()) plan.bodies.push_back(message.message_json());
  // Checked on what goes out, so text that the split brought under the limit passes.
  if (instagram) {
    for (const auto& body : plan.bodies) {
      if (auto error = InstagramMessageError(nlohmann::json::parse(body, nullptr, false))) {
        plan.refusal = *error;
        break;
      }
    }
  }
  return plan;
}

}  // namespace katy::sender
