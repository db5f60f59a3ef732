#include "tools/emulator/message_store.h"

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

}  // namespace katy::emulator
