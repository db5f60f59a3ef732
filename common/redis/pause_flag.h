#pragma once

#include <chrono>
#include <mutex>
#include <string>

#include "common/redis/redis_client.h"
#include "common/result.h"

namespace katy::redis {

// A flag shared by every instance of a service through one Redis key (set = paused). Reads are
// cached for `refresh` so hot loops can ask freely; while Redis does not answer, the last known
// value stands. Thread-safe.
class PauseFlag {
 public:
  PauseFlag(Options redis, std::string key, std::chrono::milliseconds refresh = std::chrono::milliseconds(500));

  bool IsSet();
  Status Set(bool paused);

 private:
  std::mutex mutex_;
  Client client_;
  std::string key_;
  std::chrono::milliseconds refresh_;
  std::chrono::steady_clock::time_point next_read_{};
  bool value_ = false;
};

}  // namespace katy::redis
