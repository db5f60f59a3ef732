#pragma once

#include <chrono>
#include <deque>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "common/redis/redis_client.h"
#include "common/redis/script.h"
#include "common/result.h"
#include "common/shard.h"

namespace katy::sender {

// GCRA (the generic cell rate algorithm), one step: may a message take a slot at `now_ms`
// when the theoretical arrival time is `tat_ms` and the rate `rate_per_s`, for a send at most
// `reserve_ahead_ms` from now? A slot in the future is a reservation: the sender sends at its
// time without asking again, so a page with many waiting conversations costs one call per
// message, not one per waiting conversation per slot (a thundering herd: with 100
// conversations waiting each slot drew 100 calls, and three senders spent the machine's CPU
// on a 300/s page). Burst tolerance is 1% of the rate, at least half an interval: a sender
// that asks a little late does not lose that time (with no tolerance, scheduling delays alone
// cost ~10% of a 50/s limit), and no 1-second window carries more than rate + 1% + 1 messages
// (a full interval's tolerance allowed rate + 2, which left no margin for delivery jitter under
// a 5% cap at 50/s).
// Pure; the Lua script in page_limiter.cc computes exactly this on Redis's clock.
struct GcraResult {
  bool allowed;
  double new_tat_ms;  // the state to keep when allowed
  double wait_ms;     // allowed: how long until the slot is due (0: now); not allowed: until
                      // one may be reserved
};
GcraResult Gcra(double tat_ms, double now_ms, double rate_per_s, double reserve_ahead_ms = 0);

// What the page's gate says about sending one message now.
struct PageGate {
  enum class Kind { kGo, kWait, kPaused };
  Kind kind = Kind::kGo;
  std::chrono::milliseconds wait{0};  // kWait: ask again after this (a slot reserved for the
                                      // part falls due, the rate, or the throttle's end)
  // kGo on a slot reserved earlier: when it fell due. What the part does after that moment
  // is late, and late sends bunch the page's messages past its limit (the sender measures it).
  std::optional<std::chrono::steady_clock::time_point> reserved_due;
};

// The slots reserved for parts that wait for them without holding a worker: the part's next
// attempt takes its reservation instead of asking Redis again. A reservation whose part never
// comes back (its shard moved to another sender) is a slot unused, never a slot used twice.
// Thread-safe.
class SlotReservations {
 public:
  using Clock = std::chrono::steady_clock;
  void Hold(const std::string& part_key, Clock::time_point due);
  // The part's reservation, taken out; nullopt when it has none.
  std::optional<Clock::time_point> Take(const std::string& part_key);

 private:
  static constexpr size_t kSweepAbove = 10000;  // stale reservations are swept past this many
  static constexpr std::chrono::seconds kStale{60};
  std::mutex mutex_;
  std::unordered_map<std::string, Clock::time_point> due_;  // under mutex_
};

// Slots the limiter took from Redis beyond the one it was asked for, for the same page's next
// messages on this instance: under a steady stream of one page's messages one script call
// serves a run of them instead of one each (bench/RESULTS.md). A lane (a page's messages, or
// its audio/video) asks for as many as it was asked for in the last kWindow (its demand here),
// and the script gives only those due within kWindow of now, so at most a window of the page's
// rate waits here. A slot not taken by kWindow after it fell due is dropped: used later, it
// would bunch the page's sends. A dropped or unused slot is a slot no one uses, never one used
// twice. Thread-safe.
class SlotPool {
 public:
  using Clock = std::chrono::steady_clock;
  static constexpr std::chrono::milliseconds kWindow{20};
  static constexpr int kMost = 32;

  // Counts an ask of `lane` and takes out its earliest slot still usable, if any.
  std::optional<Clock::time_point> Take(const std::string& lane, Clock::time_point now);
  // How many slots an ask of `lane` that found none should take from Redis: the lane's asks
  // in the last whole window (at least 1, at most kMost).
  int Wanted(const std::string& lane, Clock::time_point now);
  void Add(const std::string& lane, const std::vector<Clock::time_point>& slots);
  // Drops the lane's slots (Meta throttled or refused the page), or every lane's (every page
  // paused).
  void Drop(const std::string& lane);
  void Clear();

 private:
  struct Lane {
    std::deque<Clock::time_point> slots;  // in due order
    Clock::time_point window_start{};
    int asks = 0;         // in the window from window_start
    int asks_before = 0;  // in the whole window before it
  };
  // Moves the lane's windows on to `now`.
  static void Roll(Lane& lane, Clock::time_point now);
  std::mutex mutex_;
  std::unordered_map<std::string, Lane> lanes_;  // under mutex_
};

// The shared per-page limits in Redis (katy:rate:<page>, a hash): GCRA state for messages and
// for audio/video, the rate and media rate (set at run time; defaults otherwise), a throttle
// deadline after Meta said 'slow down', and a paused flag. Every sender instance goes through
// the same hash, so together they stay under the page's limit. katy:rate:* pauses every page
// and holds the default rate: every sender reads it at most every kGlobalRefresh (one Redis
// round trip saved per message), so an operator's pause-all or default-rate change reaches every
// sender within that time, and the sender that made it at once. Thread-safe; the Client passed
// in is not.
class PageLimiter {
 public:
  PageLimiter(KeySpace keys, double default_rate, double default_media_rate);

  // A slot for `part_key` (one Send API call) on `page`: kGo when it may go now. A slot due
  // later, within kReserveAhead, is reserved for the part, which asks again when kWait says
  // and then goes without another Redis call (even if the page was paused or throttled in
  // between: at most kReserveAhead late; pausing every page drops reservations). Error only
  // on Redis failure.
  Result<PageGate> Acquire(redis::Client& client, const std::string& page, bool media,
                           const std::string& part_key) const;

  // Acquire in two steps, for a caller that sends the limiter's script in a pipeline of its
  // own (one round trip for the slot and the caller's other commands). Prepare decides what it
  // can without the page's hash (every page paused, the part's reservation): then `decided` is
  // set; otherwise Command(ask) is the script call to send, and Finish reads its reply.
  struct Ask {
    std::optional<PageGate> decided;
    redis::Script::Call call;
    std::string lane;  // whose pool the slots beyond the first go to
  };
  Result<Ask> Prepare(redis::Client& client, const std::string& page, bool media, const std::string& part_key) const;
  std::vector<std::string> Command(const Ask& ask) const;
  // The gate from the reply to Command(ask). A reply saying Redis did not hold the script
  // (NOSCRIPT: the call did not run) is followed by the call run again, loading it.
  Result<PageGate> Finish(redis::Client& client, const redis::Reply& reply, const Ask& ask,
                          const std::string& part_key) const;

  // Nobody sends for this page before now + `duration` (longer throttles win).
  Status Throttle(redis::Client& client, const std::string& page, std::chrono::milliseconds duration) const;
  // Stops (or resumes) sending for `page`; "*" means every page. Messages stay queued.
  // Returns true when this call paused it, false when it was paused already.
  Result<bool> Pause(redis::Client& client, const std::string& page, const std::string& reason) const;
  Status Resume(redis::Client& client, const std::string& page) const;
  // Messages per second for `page` ("*": the default for pages without their own).
  Status SetRate(redis::Client& client, const std::string& page, double per_second) const;
  // Lists in katy:pages the pages whose katy:rate:<page> hashes an older sender left without
  // listing them: one SCAN, once, when katy:pages does not exist yet (at start-up).
  Status AdoptUnlistedPages(redis::Client& client) const;

  static constexpr const char* kAllPages = "*";
  static constexpr std::chrono::milliseconds kGlobalRefresh{250};
  // Long enough that the conversations waiting on a busy page spread over distinct slots
  // (300/s: 300 of them), short enough that a pause or Meta's 'slow down' stops sending soon.
  static constexpr std::chrono::milliseconds kReserveAhead{1000};

 private:
  // katy:rate:* as last read.
  struct Global {
    bool paused = false;
    std::string rate;        // the default rate set at run time ("" when none)
    std::string media_rate;  // the same for audio/video
    std::chrono::steady_clock::time_point read_at;
    bool valid = false;
  };
  // katy:rate:*, from Redis when the copy is older than kGlobalRefresh.
  Result<Global> ReadGlobal(redis::Client& client) const;
  // Lists `page` in katy:pages (for status and metrics), at most every kRelistEvery per page
  // and process: a list lost with a failover is whole again within that. Best effort.
  void List(redis::Client& client, const std::string& page) const;
  static constexpr std::chrono::seconds kRelistEvery{60};
  // The gate from the script's reply (a slot due later is held for `part_key`; the slots
  // beyond the first go to `lane`'s pool).
  Result<PageGate> GateOf(const redis::Reply& reply, const std::string& part_key, const std::string& lane) const;
  // The gate of a slot due at `due`: go now, or wait for it, held for `part_key`.
  PageGate GateOfSlot(SlotReservations::Clock::time_point due, SlotReservations::Clock::time_point now,
                      const std::string& part_key) const;
  void ForgetGlobal() const;
  // Drops the slots pooled for `page` ("*": every page), which Meta throttled or refused or an
  // operator paused.
  void DropPooledSlots(const std::string& page) const;

  KeySpace keys_;
  std::string default_rate_;
  std::string default_media_rate_;
  redis::Script acquire_;
  redis::Script throttle_;
  mutable std::mutex global_mutex_;
  mutable Global global_;  // under global_mutex_
  mutable SlotReservations reservations_;
  mutable SlotPool pool_;
  mutable std::mutex listed_mutex_;
  mutable std::unordered_map<std::string, std::chrono::steady_clock::time_point> listed_;  // under listed_mutex_
};

}  // namespace katy::sender
