#include "services/responder/reminders.h"

#include <algorithm>
#include <cctype>

namespace katy::responder {

Result<std::chrono::seconds> ParseReminderDelay(const std::string& text) {
  const auto bad = [&](const std::string& why) { return Error{ErrorCode::kConfig, "after '" + text + "': " + why}; };
  if (text.size() < 2 || !std::all_of(text.begin(), text.end() - 1, [](unsigned char c) { return std::isdigit(c); })) {
    return bad("a whole number and a unit: 45s, 30m, 2h, 1d");
  }
  if (text.size() > 8) return bad("too long; at most 30d");
  const long long amount = std::stoll(text.substr(0, text.size() - 1));
  long long unit_s = 0;
  switch (text.back()) {
    case 's':
      unit_s = 1;
      break;
    case 'm':
      unit_s = 60;
      break;
    case 'h':
      unit_s = 3600;
      break;
    case 'd':
      unit_s = 24 * 3600;
      break;
    default:
      return bad("the unit is s, m, h or d");
  }
  const std::chrono::seconds after(amount * unit_s);
  if (after.count() <= 0) return bad("must be more than 0");
  if (after > kLongestReminder) return bad("at most 30d");
  return after;
}

ReminderChanges PlanReminders(const std::vector<PendingReminder>& pending, bool person_wrote,
                              const std::vector<ReminderRequest>& remind, const std::vector<std::string>& cancel,
                              int64_t now_ms) {
  ReminderChanges changes;
  auto named = [](const std::string& name) { return [&name](const auto& item) { return item.name == name; }; };
  for (const auto& request : remind) {
    // The same name twice in one answer: the later wins.
    std::erase_if(changes.scheduled, named(request.name));
    changes.scheduled.push_back({request.name,
                                 now_ms + std::chrono::duration_cast<std::chrono::milliseconds>(request.after).count(),
                                 request.keep});
  }
  for (const auto& reminder : pending) {
    const bool replaced = std::any_of(changes.scheduled.begin(), changes.scheduled.end(), named(reminder.name));
    const bool named_in_cancel = std::find(cancel.begin(), cancel.end(), reminder.name) != cancel.end();
    if (!replaced && (named_in_cancel || (person_wrote && !reminder.keep))) changes.cancelled.push_back(reminder.name);
  }
  return changes;
}

}  // namespace katy::responder
