#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <string>
#include <vector>

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/registry.h>

#include "common/redis/redis_client.h"
#include "common/redis/script.h"
#include "common/result.h"
#include "common/shard.h"

namespace katy::responder {

// Puts due reminders (reminders.h) on their conversations' streams, as `timer` events the
// responder then handles in order with the person's messages. It serves the shards this
// instance holds the responder lease of: each turn it reads each shard's due members from
// `katy:{sNN}:timers` (ZRANGEBYSCORE, no scan) and fires each with one script that checks the
// lease is still this instance's, removes the member (and the conversation's field) and XADDs
// the event, atomically. A reminder is therefore put on its stream exactly once: a member
// already removed fires nothing, and a crash before the script leaves it for the next owner.
// Every key of a shard shares its hash tag, so this holds on a Redis Cluster too.
class ReminderPump {
 public:
  using Clock = std::function<int64_t()>;  // epoch ms
  struct Metrics {
    // `reminders`: katy_reminders_total, which the responder's handler counts in too.
    Metrics(prometheus::Registry& registry, prometheus::Family<prometheus::Counter>& reminders);
    prometheus::Counter& fired;      // katy_reminders_total{action="fired"}
    prometheus::Gauge& due;          // katy_reminders_due: due, not yet fired, when a turn began
    prometheus::Gauge& lag_seconds;  // katy_reminders_lag_seconds: how late the oldest of them was
  };

  ReminderPump(KeySpace keys, std::string owner, std::function<std::vector<int>()> owned_shards, Metrics& metrics,
               Clock now_ms);

  // One turn over the owned shards: reads what is due on all of them in one round trip and
  // fires it in one more (again for a shard that had more than kBatch due), and sets the
  // backlog gauges from what the turn found. Returns how many it fired.
  Result<size_t> FireDue(redis::Client& client);
  // Turns every `interval` (at once again while a shard had more than a batch due) until
  // `stop`; a Redis error is logged and the next turn tries again.
  void Run(redis::Client& client, const std::atomic<bool>& stop, std::chrono::milliseconds interval);

  static constexpr size_t kBatch = 500;

 private:
  // One round over `shards`: their due reminders read in one pipeline and fired in one more.
  struct Round {
    size_t fired = 0;
    std::vector<int> full;  // shards that had a whole batch due: more may wait
    long long due = 0;      // due when read (up to a batch a shard)
    int64_t oldest_ms = 0;  // the oldest of them (now when none)
  };
  Result<Round> FireRound(redis::Client& client, const std::vector<int>& shards, int64_t now);

  KeySpace keys_;
  std::string owner_;
  std::function<std::vector<int>()> owned_shards_;
  Metrics& metrics_;
  Clock now_ms_;
  redis::Script fire_script_;
};

}  // namespace katy::responder
