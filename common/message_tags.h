#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace katy {

// Meta's message tags (docs/messenger-platform.md, "Message tags"), in one table: the ones a
// message may carry today, and the ones Meta retired (refused before anything is sent).
struct MessageTag {
  std::string_view name;
  bool retired;
  bool instagram;  // available on Instagram too
};
inline constexpr MessageTag kMessageTags[] = {
    {"CONFIRMED_EVENT_UPDATE", false, false},
    {"POST_PURCHASE_UPDATE", false, true},
    {"ACCOUNT_UPDATE", false, true},
    {"HUMAN_AGENT", false, true},
    // Retired on March 4, 2020.
    {"APPLICATION_UPDATE", true, false},
    {"APPOINTMENT_UPDATE", true, false},
    {"COMMUNITY_ALERT", true, false},
    {"CONFIRMED_EVENT_REMINDER", true, false},
    {"FEATURE_FUNCTIONALITY_UPDATE", true, false},
    {"GAME_EVENT", true, false},
    {"ISSUE_RESOLUTION", true, false},
    {"NON_PROMOTIONAL_SUBSCRIPTION", true, false},
    {"PAIRING_UPDATE", true, false},
    {"PAYMENT_UPDATE", true, false},
    {"PERSONAL_FINANCE_UPDATE", true, false},
    {"RESERVATION_UPDATE", true, false},
    {"SHIPPING_UPDATE", true, false},
    {"TICKET_UPDATE", true, false},
    {"TRANSPORTATION_UPDATE", true, false},
};

// The standard messaging window after the user's last message, and HUMAN_AGENT's.
inline constexpr int64_t kStandardWindowMs = 24LL * 3600 * 1000;
// The standard window a person's first message after clicking a Click-to-Messenger or
// Click-to-Direct ad opens (docs/messenger-platform.md, "The standard messaging window").
inline constexpr int64_t kAdWindowMs = 7LL * 24 * 3600 * 1000;
inline constexpr int64_t kHumanAgentWindowMs = 7LL * 24 * 3600 * 1000;
// A private reply must go within 7 days of the comment or post (docs/messenger-platform.md,
// "Comments").
inline constexpr int64_t kPrivateReplyWindowMs = 7LL * 24 * 3600 * 1000;

// What a conversation's hash says about its windows.
struct UserWindow {
  int64_t last_user_ms = 0;        // the user's last message; 0 when the user never wrote
  int64_t ad_window_until_ms = 0;  // the end of an ad-started conversation's 7 days; 0: none
  // Read with the windows, from the same hash: when the person opted out of messages (0: they
  // have not). From then on only answers to their own later messages go (docs/privacy.md).
  int64_t opted_out_ms = 0;
};

// When the standard window closes (ms): the later of `standard_ms` after the user's last
// message and the end of an ad's 7 days; 0 when the user never wrote. Pure.
int64_t StandardWindowEnd(const UserWindow& window, int64_t standard_ms = kStandardWindowMs);

// A message Katy is asked to send outside a user event (the outbound API).
struct TaggedSend {
  std::string tag;           // empty: an untagged message
  bool from_person = false;  // a person wrote it
  bool instagram = false;
  UserWindow window;
};

// Why the message may not be sent at `now_ms`, in one sentence; nullopt when it may. Untagged:
// only inside the standard window (StandardWindowEnd). A tag must exist and not be retired (nor
// be Messenger-only on Instagram); HUMAN_AGENT only from a person and within 7 days of the
// user's last message. Pure.
std::optional<std::string> TagRefusal(const TaggedSend& send, int64_t now_ms);

}  // namespace katy
