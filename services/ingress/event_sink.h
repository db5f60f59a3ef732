#pragma once

#include <chrono>
#include <vector>

#include "common/redis/client_pool.h"
#include "common/redis/script.h"
#include "common/result.h"
#include "common/shard.h"
#include "katy/v1/events.pb.h"

namespace katy::ingress {

// Where accepted webhook events go. Implementations must be thread-safe.
class EventSink {
 public:
  virtual ~EventSink() = default;
  // Stores every event durably, skipping redeliveries. On success returns one flag per event
  // (same order): true = newly enqueued, false = duplicate of one already accepted. On Error
  // nothing is known about which events were stored; a retry of the same events is safe
  // (their dedupe marks make it enqueue each at most once).
  virtual Result<std::vector<bool>> Enqueue(const std::vector<katy::v1::InboundEvent>& events) = 0;
};

// Enqueues onto the shards' inbound streams with one Lua call per shard (dedupe mark + XADD,
// atomically), all of a POST's calls pipelined in one round trip. Thread-safe (each call takes
// a connection from the pool).
class RedisEventSink : public EventSink {
 public:
  RedisEventSink(redis::ClientPool& pool, KeySpace keys, std::chrono::seconds dedupe_ttl);

  Result<std::vector<bool>> Enqueue(const std::vector<katy::v1::InboundEvent>& events) override;

 private:
  redis::ClientPool& pool_;
  KeySpace keys_;
  std::string dedupe_ttl_s_;
  redis::Script script_;
};

}  // namespace katy::ingress
