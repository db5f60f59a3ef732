#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <random>
#include <string>

#include "common/result.h"
#include "tools/emulator/send_api.h"

namespace katy::emulator {

// The faults the emulated Send API injects, as JSON (all keys optional):
// {"seed": 1,
//  "rate_limit": {"<page id>" | "*": calls per rolling second},   -> code 613 beyond it
//  "error": {"http_status": 500, "code": 1200, "subcode": 0, "message": "..."},
//  "error_rate": 0.1,          fraction of calls answered with "error"
//  "fail_next": 3,             the next 3 calls answered with "error"
//  "latency_ms": [min, max],   added to every call (uniform)
//  "timeout_rate": 0.0,        fraction of calls that hang for "hang_ms" (default 30000)
//  "invalid_token": false}     every call answered with code 190
struct FaultConfig {
  uint64_t seed = 1;
  std::map<std::string, double> rate_limits;
  GraphError error{500, 1200, 0, "OAuthException", "(#1200) Temporary send message failure. Please try again later."};
  double error_rate = 0;
  int fail_next = 0;
  int latency_min_ms = 0;
  int latency_max_ms = 0;
  double timeout_rate = 0;
  int hang_ms = 30000;
  bool invalid_token = false;
};

// Error "invalid" with the reason when the JSON does not fit. Pure.
Result<FaultConfig> ParseFaults(const std::string& text);
std::string FaultsToJson(const FaultConfig& config);

// Decides each Send API call's fate. With the same seed and the same sequence of calls, the
// same calls fail. Thread-safe.
class FaultInjector {
 public:
  struct Verdict {
    int delay_ms = 0;                 // wait this long before answering
    std::optional<GraphError> error;  // answer with this instead of processing the call
  };

  void Set(FaultConfig config);
  FaultConfig Get() const;
  Verdict Next(const std::string& page, int64_t now_ms);
  // Calls answered with an injected error, by Graph code.
  std::map<int, int64_t> InjectedCounts() const;
  // Calls held back kSlowCallMs or more by an injected latency or hang: proof that a latency
  // spike really met the traffic.
  int64_t SlowCalls() const;
  // Calls a latency holds back right now (+1 when one is held, -1 when answered or its client
  // left), and the most ever held at once: the emulator holds them on timers, not threads.
  void HeldChanged(int delta);
  int64_t MostHeld() const;
  static constexpr int kSlowCallMs = 100;
  // The page's Send API calls in the second before `now_ms`, and its limit (the configured
  // rate_limit, else Meta's 300/s): what the usage headers report.
  double CallsLastSecond(const std::string& page, int64_t now_ms);
  double LimitFor(const std::string& page) const;

 private:
  mutable std::mutex mutex_;
  FaultConfig config_;
  std::mt19937_64 random_{1};
  std::map<std::string, std::deque<int64_t>> recent_;  // page -> call times in the last second (ms)
  std::map<int, int64_t> injected_;
  int64_t slow_calls_ = 0;
  int64_t held_ = 0;
  int64_t most_held_ = 0;
};

}  // namespace katy::emulator
