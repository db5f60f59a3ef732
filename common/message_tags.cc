#include "common/message_tags.h"

#include <algorithm>
#include <iterator>

namespace katy {

std::optional<std::string> TagRefusal(const TaggedSend& send, int64_t now_ms) {
  const int64_t since_user = send.last_user_ms > 0 ? now_ms - send.last_user_ms : INT64_MAX;
  if (send.tag.empty()) {
    if (since_user <= kStandardWindowMs) return std::nullopt;
    return std::string(send.last_user_ms > 0 ? "the user last wrote more than 24 hours ago"
                                             : "the user has never written") +
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
             (send.last_user_ms > 0 ? "it was longer ago" : "the user has never written");
    }
  }
  return std::nullopt;
}

}  // namespace katy
