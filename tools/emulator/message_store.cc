#include "tools/emulator/message_store.h"

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

}  // namespace katy::emulator
