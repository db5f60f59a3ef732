#pragma once

#include "common/metrics/metrics.h"
#include "common/redis/redis_client.h"
#include "common/shard.h"

namespace katy::metrics {

// Adds the queue-depth gauges every service exports, read from Redis at scrape time:
// katy_stream_length, katy_stream_pending, katy_stream_lag (labels stream, group),
// katy_dlq_length (labels stream, group=""), and katy_redis_up (0 when Redis did not answer).
// The collector owns one Redis connection, used under a lock.
void AddQueueDepthCollector(Registry& registry, const redis::Options& redis, const KeySpace& keys);

}  // namespace katy::metrics
