#include "common/reminder_keys.h"

#include <algorithm>
#include <cctype>
#include <cstdlib>

namespace katy {

namespace {

constexpr std::string_view kFieldPrefix = "timer:";
constexpr std::string_view kKeepSuffix = ":keep";

}  // namespace

bool IsReminderName(const std::string& name) {
  return !name.empty() && name.size() <= 64 &&
         std::all_of(name.begin(), name.end(), [](unsigned char c) { return std::isalnum(c) || c == '_' || c == '-'; });
}

std::string ReminderField(const std::string& name) { return std::string(kFieldPrefix) + name; }

std::string ReminderFieldValue(const PendingReminder& reminder) {
  return std::to_string(reminder.due_ms) + (reminder.keep ? std::string(kKeepSuffix) : "");
}

std::vector<PendingReminder> PendingReminders(const std::map<std::string, std::string>& hash_fields) {
  std::vector<PendingReminder> pending;
  for (auto it = hash_fields.lower_bound(std::string(kFieldPrefix));
       it != hash_fields.end() && it->first.rfind(kFieldPrefix, 0) == 0; ++it) {
    PendingReminder reminder;
    reminder.name = it->first.substr(kFieldPrefix.size());
    reminder.due_ms = std::atoll(it->second.c_str());
    reminder.keep = it->second.ends_with(kKeepSuffix);
    pending.push_back(std::move(reminder));
  }
  return pending;
}

std::string ReminderMember(const std::string& page, const std::string& user, const std::string& name) {
  return page + ":" + user + ":" + name;
}

std::optional<ReminderOwner> ParseReminderMember(const std::string& member) {
  const auto first = member.find(':');
  const auto last = member.rfind(':');
  if (first == std::string::npos || last == first || first == 0 || last + 1 == member.size()) return std::nullopt;
  return ReminderOwner{member.substr(0, first), member.substr(first + 1, last - first - 1), member.substr(last + 1)};
}

}  // namespace katy
