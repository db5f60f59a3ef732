#pragma once

#include <prometheus/collectable.h>
#include <prometheus/metric_family.h>

#include <chrono>
#include <mutex>
#include <vector>

#include "common/redis/redis_client.h"
#include "common/shard.h"

namespace katy::metrics {

// The queue-depth gauges every service exports, read from Redis at scrape time:
// katy_stream_length, katy_stream_pending, katy_stream_lag (labels stream, group);
// katy_dlq_length (labels stream, group=""); katy_page_paused (labels page, reason) and
// katy_page_throttled_seconds (label page) for the pages the senders have state for;
// katy_conversations_with_others (threads a person or another app has, every shard); and
// katy_redis_up (0 when Redis did not answer, and then it is the only family). Every instance
// reports the same values: aggregate them with max by (stream) or (page). The values are read
// from Redis by one scrape per `status_max_age` across all instances and may be that old
// (redis::ReadSharedQueueStatus, KATY_STATUS_MAX_AGE_MS; 0: every scrape reads). Owns one Redis
// connection, used under a lock, with a short socket timeout so a scrape does not hang on Redis.
class QueueDepthCollector : public prometheus::Collectable {
 public:
  QueueDepthCollector(const redis::Options& redis, KeySpace keys, std::chrono::milliseconds status_max_age);
  std::vector<prometheus::MetricFamily> Collect() const override;

 private:
  mutable std::mutex mutex_;
  mutable redis::Client client_;
  const KeySpace keys_;
  const std::chrono::milliseconds status_max_age_;
};

// katy_redis_under_replicated{node}: 1 while the last WAIT this process sent to that master
// came back short of replicas (redis::ReplicationHealth), 0 otherwise, for every node this
// process has talked to (always 0 without KATY_REDIS_WAIT_REPLICAS: nothing is WAITed for).
class ReplicationCollector : public prometheus::Collectable {
 public:
  std::vector<prometheus::MetricFamily> Collect() const override;
};

}  // namespace katy::metrics
