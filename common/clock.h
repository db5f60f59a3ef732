#pragma once

#include <chrono>
#include <cstdint>

namespace katy {

// Wall-clock time in epoch milliseconds: what Meta's timestamps and Katy's stream payloads use.
// Code under test takes a clock function instead of calling this, so tests can fix time.
inline int64_t WallClockMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace katy
