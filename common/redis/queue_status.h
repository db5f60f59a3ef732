#pragma once

#include <chrono>
#include <string>
#include <vector>

#include "common/redis/redis_client.h"
#include "common/result.h"
#include "common/shard.h"
#include "katy/v1/control.pb.h"

namespace katy::redis {

// A shard a consumer holds back because Redis could not serve its entries, and why.
struct HeldShard {
  int shard = 0;
  std::string reason;  // the handler's, e.g. "redis_under_replicated", "redis_io"
  std::chrono::seconds held_for{0};
};

// Everything operators want to see of Katy's queues and ownership, read from Redis: the
// in/out streams with their groups (length, pending, lag, consumers), the dead-letter streams,
// every shard lease of both roles, every page's sending state and the count of conversations
// with others. Three round trips, O(shards + pages) commands whatever else the keyspace holds.
// Fills `status` (the fields other than these are left alone).
Status ReadQueueStatus(Client& client, const KeySpace& keys, katy::v1::Status* status);

// The same status, read from Redis by one caller per `max_age` across every process that shares
// it (every instance's /metrics): the first call past max_age reads it (ReadQueueStatus) and
// leaves it in katy:status for max_age; the others take it from there with one GET and a PTTL,
// its throttles' time left counted from now. So N instances scraped each interval cost Redis
// one read per max_age, not N. The status may be up to max_age old. max_age 0: every call reads.
Status ReadSharedQueueStatus(Client& client, const KeySpace& keys, std::chrono::milliseconds max_age,
                             katy::v1::Status* status);

}  // namespace katy::redis
