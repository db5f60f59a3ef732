#include "tools/emulator/message_store.h"

#include <algorithm>

#include "common/shard.h"

namespace katy::emulator {

RecordedMessage MessageStore::Add(RecordedMessage message) {
  std::lock_guard lock(mutex_);
  message.seq = next_seq_++;
  message.message_id = "m_emu_" + std::to_string(message.seq);
  messages_.push_back(message);
  return message;
}

std::vector<RecordedMessage> MessageStore::For(const std::string& recipient) const {
  std::lock_guard lock(mutex_);
  if (recipient.empty()) return messages_;
  std::vector<RecordedMessage> out;
  for (const auto& message : messages_) {
    if (message.recipient == recipient) out.push_back(message);
  }
  return out;
}

size_t MessageStore::size() const {
  std::lock_guard lock(mutex_);
  return messages_.size();
}

void MessageStore::Clear() {
  std::lock_guard lock(mutex_);
  messages_.clear();
}

void ProfileBook::Set(const std::string& psid, Profile profile) {
  std::lock_guard lock(mutex_);
  profiles_[psid] = std::move(profile);
}

ProfileBook::Profile ProfileBook::Get(const std::string& psid) const {
  {
    std::lock_guard lock(mutex_);
    if (auto it = profiles_.find(psid); it != profiles_.end()) return it->second;
  }
  static const char* const kFirst[] = {"Alex", "Sam", "Robin", "Kim", "Noor", "Jules", "Mika", "Lou"};
  static const char* const kLast[] = {"Martin", "Garcia", "Rossi", "Nguyen", "Novak", "Silva"};
  const uint64_t hash = Fnv1a64(psid);
  return {kFirst[hash % 8], kLast[(hash / 8) % 6]};
}

void MessengerProfiles::Merge(const std::string& page, const nlohmann::json& fields) {
  std::lock_guard lock(mutex_);
  auto& profile = profiles_[page];
  if (!profile.is_object()) profile = nlohmann::json::object();
  for (const auto& [field, value] : fields.items()) profile[field] = value;
}

nlohmann::json MessengerProfiles::Get(const std::string& page, const std::vector<std::string>& fields) const {
  std::lock_guard lock(mutex_);
  nlohmann::json out = nlohmann::json::object();
  auto found = profiles_.find(page);
  if (found == profiles_.end()) return out;
  for (const auto& [field, value] : found->second.items()) {
    if (fields.empty() || std::find(fields.begin(), fields.end(), field) != fields.end()) out[field] = value;
  }
  return out;
}

void MessengerProfiles::Delete(const std::string& page, const std::vector<std::string>& fields) {
  std::lock_guard lock(mutex_);
  auto found = profiles_.find(page);
  if (found == profiles_.end()) return;
  for (const auto& field : fields) found->second.erase(field);
}

std::vector<std::string> PageSubscriptions::Get(const std::string& page) const {
  std::lock_guard lock(mutex_);
  auto found = fields_.find(page);
  return found == fields_.end() ? std::vector<std::string>{"messages", "messaging_postbacks"} : found->second;
}

void PageSubscriptions::Set(const std::string& page, std::vector<std::string> fields) {
  std::lock_guard lock(mutex_);
  fields_[page] = std::move(fields);
}

std::string AttachmentStore::Add(const std::string& page, const std::string& type, const std::string& url) {
  std::lock_guard lock(mutex_);
  // Meta's ids are long decimal numbers.
  std::string id = std::to_string(1850000000000000ULL + uploads_.size() + 1);
  uploads_.push_back({id, page, type, url});
  return id;
}

bool AttachmentStore::Known(const std::string& attachment_id) const {
  std::lock_guard lock(mutex_);
  return std::any_of(uploads_.begin(), uploads_.end(),
                     [&](const Upload& upload) { return upload.attachment_id == attachment_id; });
}

std::vector<AttachmentStore::Upload> AttachmentStore::All() const {
  std::lock_guard lock(mutex_);
  return uploads_;
}

std::string ThreadOwners::Get(const std::string& page, const std::string& psid) const {
  std::lock_guard lock(mutex_);
  auto found = owners_.find({page, psid});
  return found == owners_.end() ? "" : found->second;
}

void ThreadOwners::Set(const std::string& page, const std::string& psid, std::string app_id) {
  std::lock_guard lock(mutex_);
  if (app_id.empty()) {
    owners_.erase({page, psid});
  } else {
    owners_[{page, psid}] = std::move(app_id);
  }
}

void InstagramAccounts::Add(const std::string& account_id) {
  std::lock_guard lock(mutex_);
  ids_.insert(account_id);
}

bool InstagramAccounts::Contains(const std::string& account_id) const {
  std::lock_guard lock(mutex_);
  return ids_.contains(account_id);
}

void AppScopedUsers::Wrote(const std::string& page, const std::string& psid) {
  std::lock_guard lock(mutex_);
  auto& pages = pages_[IdOf(psid)];
  const std::pair<std::string, std::string> pair{page, psid};
  if (std::find(pages.begin(), pages.end(), pair) == pages.end()) pages.push_back(pair);
}

std::string AppScopedUsers::IdOf(const std::string& psid) {
  // 16 digits from the PSID's hash, so that no part of the PSID shows in it.
  constexpr uint64_t kDigits = 1'000'000'000'000'000ULL;
  return std::to_string(kDigits + Fnv1a64("app-scoped:" + psid) % (9 * kDigits));
}

std::vector<std::pair<std::string, std::string>> AppScopedUsers::PagesOf(const std::string& app_scoped_id) const {
  std::lock_guard lock(mutex_);
  auto it = pages_.find(app_scoped_id);
  return it == pages_.end() ? std::vector<std::pair<std::string, std::string>>{} : it->second;
}

}  // namespace katy::emulator
