#pragma once

#include <cstddef>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

namespace katy {

// What Instagram's Send API takes that Messenger's does not, or takes differently
// (docs/messenger-platform.md, "Instagram"). Written once: the responder refuses Instagram rules
// that break them at load, the sender checks skill and outbound messages before calling Meta, and
// the emulator answers Meta's error with them.

// Message text is UTF-8 of at most 1000 bytes (Messenger counts 2000 characters).
inline constexpr size_t kInstagramMaxTextBytes = 1000;
// Quick replies: at most 13, of these content types only.
inline constexpr size_t kInstagramMaxQuickReplies = 13;
inline constexpr const char* kInstagramQuickReplyTypes[] = {"text", "user_phone_number", "user_email"};
// The templates Instagram has; Messenger's others (media, receipt, coupon, ...) do not exist there.
inline constexpr const char* kInstagramTemplates[] = {"generic", "button", "product"};

// The first Instagram limit the Send API `message` object breaks, as a sentence naming the place
// ("message.text: at most 1000 bytes on Instagram, got 1204"), or nullopt when it keeps them all.
// Only what differs from Messenger is checked here. Pure.
std::optional<std::string> InstagramMessageError(const nlohmann::json& message);

}  // namespace katy
