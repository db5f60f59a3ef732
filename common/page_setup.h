#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace katy {

// Page setup as Meta defines it (docs/messenger-platform.md, "Page setup"): the Messenger
// Profile and the page's webhook subscriptions. katyctl checks against it before calling the
// Graph API; the emulator answers with it as Meta does.

// The Page webhook fields of the Messenger Platform that a page can subscribe an app to.
inline constexpr std::string_view kMessengerWebhookFields[] = {"messages",
                                                               "messaging_postbacks",
                                                               "messaging_optins",
                                                               "message_deliveries",
                                                               "message_reads",
                                                               "messaging_referrals",
                                                               "message_echoes",
                                                               "messaging_handovers",
                                                               "standby",
                                                               "message_reactions",
                                                               "messaging_account_linking",
                                                               "messaging_policy_enforcement",
                                                               "messaging_game_plays",
                                                               "message_edits",
                                                               "response_feedback"};
// The fields Katy handles: `katyctl subscriptions check` wants the page subscribed to each,
// and to `feed` (kCommentWebhookField) when the rules answer comments.
inline constexpr std::string_view kHandledWebhookFields[] = {
    "messages",      "messaging_postbacks", "messaging_optins", "message_deliveries",
    "message_reads", "messaging_referrals", "message_echoes",   "messaging_handovers",
    "standby",       "message_reactions",   "message_edits"};
// A Page's comments and visitors' posts come in the Page's `feed` field (not a Messenger one).
inline constexpr std::string_view kCommentWebhookField = "feed";

// An Instagram account's webhook fields (docs/messenger-platform.md, "Comments"), and those Katy
// handles; `comments` and `live_comments` are wanted when the rules answer comments.
inline constexpr std::string_view kInstagramWebhookFields[] = {
    "messages",           "messaging_postbacks", "messaging_seen",     "message_reactions",
    "messaging_referral", "messaging_optins",    "messaging_handover", "standby",
    "comments",           "live_comments",       "mentions",           "story_insights"};
inline constexpr std::string_view kInstagramHandledFields[] = {"messages", "messaging_postbacks", "messaging_seen",
                                                               "message_reactions", "messaging_referral"};
inline constexpr std::string_view kInstagramCommentFields[] = {"comments", "live_comments"};

bool IsMessengerWebhookField(std::string_view field);
bool IsInstagramWebhookField(std::string_view field);

// The webhook fields Katy wants a page (or an Instagram account) to send: the handled ones, and
// the comments' when `comments` (the rules answer comments there). Pure.
std::vector<std::string> WantedWebhookFields(bool instagram, bool comments);

// The Messenger Profile fields an Instagram account has (Meta's Instagram Messaging "Ice
// Breakers" and "Persistent Menu"), set with ?platform=instagram.
inline constexpr const char* kInstagramProfileFields[] = {"ice_breakers", "persistent_menu"};

// The Messenger Profile fields Katy sets (docs/messenger-platform.md, "Page setup"): get_started,
// greeting, persistent_menu, ice_breakers, whitelisted_domains.
inline constexpr const char* kMessengerProfileFields[] = {"get_started", "greeting", "persistent_menu", "ice_breakers",
                                                          "whitelisted_domains"};

// The first of Meta's Messenger Profile limits that `profile` (a POST body) breaks, as one
// sentence that names the place ("persistent_menu[0].call_to_actions[2].title: at most 20
// characters"), or nullopt when it keeps them all. katyctl checks a file with it before any
// call; the emulator answers Meta's error with it. Pure.
std::optional<std::string> MessengerProfileError(const nlohmann::json& profile);
// The same for an Instagram account's profile, which has only kInstagramProfileFields. Pure.
std::optional<std::string> InstagramProfileError(const nlohmann::json& profile);

}  // namespace katy
