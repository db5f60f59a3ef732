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
// every shard lease of both roles, and every page's sending state. Two round trips plus one
// per SCAN page. Fills `status` (the fields other than these are left alone).
Status ReadQueueStatus(Client& client, const KeySpace& keys, katy::v1::Status* status);

}  // namespace katy::redis
