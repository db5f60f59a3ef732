#pragma once

#include <cstdint>
#include <string>

#include "common/message_tags.h"
#include "common/redis/redis_client.h"
#include "common/result.h"
#include "common/shard.h"
#include "katy/v1/control.pb.h"

namespace katy::grpcsvc {

// The event names katyctl puts on a conversation's inbound stream (kind_key of a handover
// event): the responder passes the thread to the Page Inbox, or takes it back for the bot.
inline constexpr const char* kPauseEvent = "katy_pause";
inline constexpr const char* kResumeEvent = "katy_resume";

// Reads one conversation: its hash, owner and windows at `now_ms` (the bot answers within 24
// hours of the user's last message or an ad-started conversation's 7 days, a person with
// HUMAN_AGENT within 7 days: message_tags.h), and its latest `events` events (newest last)
// among the last 1,000 of its shard's inbound stream.
Result<katy::v1::Conversation> ReadConversationState(redis::Client& client, const KeySpace& keys,
                                                     const std::string& page, const std::string& user, int events,
                                                     int64_t now_ms);

// Appends a pause or resume event for the conversation to its shard's inbound stream; returns
// the entry's id.
Result<std::string> AppendOwnerEvent(redis::Client& client, const KeySpace& keys,
                                     const katy::v1::SetConversationOwnerRequest& request, int64_t now_ms);

// Cancels a conversation's pending reminder: its member in the shard's timers and its field in
// the conversation, in one script. False when none by that name was pending (never set,
// cancelled, or fired already).
Result<bool> CancelReminder(redis::Client& client, const KeySpace& keys,
                            const katy::v1::CancelReminderRequest& request);

}  // namespace katy::grpcsvc
