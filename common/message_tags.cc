#include "common/message_tags.h"

#include <algorithm>
#include <iterator>

namespace katy {

int64_t StandardWindowEnd(const UserWindow& window, int64_t standard_ms) {
  if (window.last_user_ms <= 0) return 0;
  return std::max(window.last_user_ms + standard_ms, window.ad_window_until_ms);
}

std::optional<std::string> TagRefusal(const TaggedSend& send, int64_t now_ms) {
  const int64_t last_user_ms = send.window.last_user_ms;
  const int64_t since_user = last_user_ms > 0 ? now_ms - last_user_ms : INT64_MAX;
  if (send.tag.empty()) {
    if (last_user_ms > 0 && now_ms <= StandardWindowEnd(send.window)) return std::nullopt;
    const char* why = last_user_ms <= 0                    ? "the user has never written"
                      : send.window.ad_window_until_ms > 0 ? "the user last wrote more than 24 hours ago "
                                                             "and the ad-started conversation's 7 days are over"
                                                           : "the user last wrote more than 24 hours ago";
    return std::string(why) +
           ": outside the standard messaging window a message needs a tag (HUMAN_AGENT for a person)";
  }
  const auto* found = std::find_if(std::begin(kMessageTags), std::end(kMessageTags),
                                   [&](const MessageTag& tag) { return tag.name == send.tag; });
  if (found == std::end(kMessageTags)) return "unknown message tag " + send.tag;
  if (found->retired) return "message tag " + send.tag + " was retired by Meta (March 4, 2020)";
  if (send.instagram && !found->instagram) return "message tag " + send.tag + " does not exist on Instagram";
  if (send.tag == "HUMAN_AGENT") {
    if (!send.from_person) return "HUMAN_AGENT is only for messages a person wrote";
    if (since_user > kHumanAgentWindowMs) {
      return std::string("HUMAN_AGENT is allowed within 7 days of the user's last message; ") +
             (last_user_ms > 0 ? "it was longer ago" : "the user has never written");
    }
  }
  return std::nullopt;
}

}  // namespace katy
