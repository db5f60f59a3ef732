#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "common/reminder_keys.h"
#include "common/result.h"

namespace katy::responder {

// Reminders (docs/rules.md, "Reminders"): a rule sets `remind: {after: 30m, name: NUDGE}`;
// when it falls due a `timer` event named NUDGE enters the conversation's own stream. It is
// cancelled when the person writes again first, unless `keep: true`; `cancel: NUDGE` cancels it.
// Where they are kept: common/reminder_keys.h.

// A reminder as a rule (or a skill) asks for it.
struct ReminderRequest {
  std::string name;
  std::chrono::seconds after{0};
  bool keep = false;  // survives the person's next message
};

// The longest a reminder may wait (the conversation itself is kept 90 days).
inline constexpr std::chrono::hours kLongestReminder{30 * 24};

// "45s", "30m", "2h", "1d": a positive whole number and its unit, at most kLongestReminder.
// Errors say what is wrong. Pure.
Result<std::chrono::seconds> ParseReminderDelay(const std::string& text);

// What one event does to a conversation's reminders.
struct ReminderChanges {
  std::vector<PendingReminder> scheduled;  // to set (a name already pending is replaced)
  std::vector<std::string> cancelled;      // pending names to remove
};

// The changes at `now_ms`: the person writing (`person_wrote`) cancels every pending reminder
// not kept; the rule's `cancel` names cancel theirs; the rule's `remind` requests schedule
// (replacing a pending one of the same name, which is then not also cancelled). Pure.
ReminderChanges PlanReminders(const std::vector<PendingReminder>& pending, bool person_wrote,
                              const std::vector<ReminderRequest>& remind, const std::vector<std::string>& cancel,
                              int64_t now_ms);

}  // namespace katy::responder
