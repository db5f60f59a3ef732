#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace katy {

// Where reminders live (docs/rules.md, "Reminders"): the conversation hash holds
// `timer:<NAME>` = "<due ms>" (or "<due ms>:keep") for the conversation's view (katyctl conv
// show, cancelling without a scan), and the shard's sorted set `katy:{sNN}:timers`
// (KeySpace::Timers) holds member "<page>:<user>:<NAME>" scored by the due time, so the shard's
// owner finds what is due without scanning (services/responder/reminder_pump.h). Both change
// together, in one script.

// One reminder waiting in a conversation.
struct PendingReminder {
  std::string name;
  int64_t due_ms = 0;
  bool keep = false;  // survives the person's next message
};

// Whether `name` may name a reminder: 1 to 64 of A-Z a-z 0-9 _ -. Pure.
bool IsReminderName(const std::string& name);

// The conversation hash's field for reminder `name`, its value, and the reminders a hash's
// fields hold (fields that are not reminders are skipped). Pure.
std::string ReminderField(const std::string& name);
std::string ReminderFieldValue(const PendingReminder& reminder);
std::vector<PendingReminder> PendingReminders(const std::map<std::string, std::string>& hash_fields);

// The sorted set's member of a conversation's reminder, and back (nullopt when `member` is not
// one: page and name hold no ':', so the user id between them may). Pure.
std::string ReminderMember(const std::string& page, const std::string& user, const std::string& name);
struct ReminderOwner {
  std::string page;
  std::string user;
  std::string name;
};
std::optional<ReminderOwner> ParseReminderMember(const std::string& member);

}  // namespace katy
