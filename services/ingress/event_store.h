#pragma once

#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/bucketed_marks.h"
#include "common/redis/async_router.h"
#include "common/redis/script.h"
#include "common/result.h"
#include "common/shard.h"
#include "katy/v1/events.pb.h"

namespace katy::ingress {

// One call of the enqueue script (EnqueueScript): a shard's events of one batch, or on one
// Redis (not a cluster) several shards' events.
struct EnqueueCall {
  redis::Script::Call call;
  std::vector<size_t> events;         // indexes into the batch, in the order the script returns flags
  std::vector<std::string> expiring;  // the buckets whose expiry the call sets
};

// Most events one script call stores. Redis runs a script to its end while every other
// client waits, so a call's size bounds how long any batch can block Redis (a 100,000-event
// call took 458 ms; 128 events take well under a millisecond).
inline constexpr size_t kMaxEventsPerCall = 128;

// Dedupe marks are members of per-shard buckets of the events' own timestamps (Meta's
// redeliveries repeat them), each mark MarkDigest(page, dedupe key) (common/bucketed_marks.h):
// up to 512 a bucket stay an intset, 100/s on one shard.
inline constexpr int64_t kSeenBucketMs = 5000;

// The times a plan's marks depend on.
struct MarkTimes {
  std::chrono::seconds ttl;  // how long a mark is kept, from its bucket's end or now, the later
  int64_t now_ms = 0;
  // Events older than this (epoch ms) may have a mark of their own from before buckets (the
  // process's start: an older ingress wrote only those); theirs is checked too.
  int64_t legacy_before_ms = 0;
  // Whether a bucket's expiry goes with its marks (BucketExpiries::Due); unset: always.
  std::function<bool(const std::string& bucket_key)> expiry_due;
};

// The calls that store `events`, each with at most kMaxEventsPerCall events, the events'
// inbound streams and mark keys (buckets, and older marks to check) as keys. Inside a shard,
// events are ordered by timestamp (Meta may deliver out of order after failures), body order
// kept for equal timestamps, and the shard's calls follow that order.
//  - On a cluster (`one_node` false), a call holds one shard's events: all its keys are under
//    the shard's hash tag, as a script's keys must be there (one slot).
//  - On one Redis (`one_node`), the shards' events share calls, the next shard's stream named
//    before its events (shape "s"): one call per pass where the events fit, since each script
//    call costs Redis far more than the commands inside it.
// Pure.
std::vector<EnqueueCall> PlanEnqueue(const std::vector<katy::v1::InboundEvent>& events, const KeySpace& keys,
                                     const MarkTimes& times, bool one_node = false);

// What became of one event given to RedisEventStore::Store.
enum class Stored : uint8_t {
  kEnqueued,   // newly on its shard's stream
  kDuplicate,  // its dedupe mark was there: an event already accepted
  kFailed,     // unknown: its call failed or timed out (storing it again is safe)
};

struct StoreResult {
  std::vector<Stored> events;  // one per event given, in order
  std::optional<Error> error;  // the first failure, when any event is kFailed
};

// The Lua script behind PlanEnqueue's calls: for each event, add its mark if absent and then
// XADD it; one flag per event (1 enqueued, 0 duplicate). An XADD that fails removes its mark
// and fails the call, so a retry stores that event.
const redis::Script& EnqueueScript();

struct StoreOptions {
  redis::Options redis;  // socket_timeout bounds each batch; connect_timeout each connection
  KeySpace keys;
  std::chrono::seconds dedupe_ttl{86400};
  // MarkTimes::legacy_before_ms: ingress's start, so marks an older ingress wrote are honoured.
  int64_t legacy_marks_before_ms = 0;
};

// Stores batches of events in Redis without ever blocking: each batch is one pipelined write
// of PlanEnqueue's calls, and any number of batches may be in flight on the connection.
// Driven by its owner's event loop through redis(). One thread.
class RedisEventStore {
 public:
  // Each event's outcome. A failed call fails only its own events: a request whose events
  // were all in calls that succeeded is stored, whatever happened to its neighbours'.
  using Done = std::function<void(StoreResult)>;

  explicit RedisEventStore(StoreOptions options);

  // Queues the batch (call redis().Flush() to send it). `done` runs exactly once, from
  // the connection's callbacks; batches complete in the order they were stored.
  void Store(const std::vector<katy::v1::InboundEvent>& events, Done done);

  redis::AsyncRouter& redis() { return redis_; }

 private:
  StoreOptions options_;
  redis::AsyncRouter redis_;
  BucketExpiries expiries_;  // when the dedupe buckets' EXPIREAT goes
};

}  // namespace katy::ingress
