#include "common/redis/pause_flag.h"

namespace katy::redis {

PauseFlag::PauseFlag(Options redis, std::string key, std::chrono::milliseconds refresh)
    : client_(std::move(redis)), key_(std::move(key)), refresh_(refresh) {}

bool PauseFlag::IsSet() {
  std::lock_guard lock(mutex_);
  const auto now = std::chrono::steady_clock::now();
  if (now >= next_read_) {
    next_read_ = now + refresh_;
    if (auto exists = client_.Command({"EXISTS", key_})) value_ = exists->integer == 1;
  }
  return value_;
}

Status PauseFlag::Set(bool paused) {
  std::lock_guard lock(mutex_);
  auto reply = paused ? client_.Command({"SET", key_, "1"}) : client_.Command({"DEL", key_});
  if (!reply) return reply.error();
  value_ = paused;
  next_read_ = std::chrono::steady_clock::now() + refresh_;
  return Ok{};
}

}  // namespace katy::redis
