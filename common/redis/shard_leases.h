#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <set>
#include <string>

#include "common/redis/redis_client.h"
#include "common/redis/script.h"
#include "common/shard.h"

namespace katy::redis {

// ceil(shards / members): the most shards one live instance may own. members < 1 counts as 1.
int FairShare(int shards, int members);

struct LeaseConfig {
  std::string role;      // "responder" or "sender": one owner per shard per role
  std::string instance;  // this process's unique name
  std::chrono::milliseconds ttl{10000};
};

// Shard ownership, like Kafka partitions (architecture.md "Ownership"): each live instance
// registers in katy:members:<role> (heartbeat), claims free shards with
// SET katy:{sNN}:lease:<role> <instance> NX PX <ttl> up to its fair share, renews them, and
// releases its surplus when members join. A lease whose renewal fails, or whose local expiry
// has passed, is dropped at once.
//
// Not thread-safe: one thread calls Tick(), every ttl/3.
class ShardLeases {
 public:
  using Clock = std::function<std::chrono::steady_clock::time_point()>;

  ShardLeases(Client client, KeySpace keys, LeaseConfig config, Clock clock = {});

  // One round: heartbeat, renew, count members, release surplus (only the shards
  // `may_release` allows now; the others are kept and renewed, and asked about again next
  // round), claim free shards (only those `may_claim` allows). Empty functions allow all. A
  // few pipelined Redis round trips. Returns the shards owned afterwards. When Redis fails it
  // keeps only the leases that are still valid by the local clock (sent time + ttl - a safety
  // margin).
  std::set<int> Tick(const std::function<bool(int)>& may_claim = {}, const std::function<bool(int)>& may_release = {});

  // The shards the last Tick() acquired. One may have been owned before that Tick too: its
  // lease was lost (Redis restarted, say) and taken again in the same round, and meanwhile
  // another instance may have claimed its pending entries.
  const std::set<int>& acquired() const { return acquired_; }
  // Until when each owned lease is certainly this instance's (local clock): Redis cannot have
  // expired it earlier.
  const std::map<int, std::chrono::steady_clock::time_point>& valid_until() const { return valid_until_; }

  // Gives every owned lease back (only where this instance still holds it), so that another
  // instance can take over at once; and leaves the member set.
  void ReleaseAll();

  std::set<int> owned() const;
  int live_members() const { return live_members_; }
  const LeaseConfig& config() const { return config_; }
  std::string LeaseKey(int shard) const { return keys_.Lease(shard, config_.role); }

 private:
  void DropExpired(std::chrono::steady_clock::time_point now);
  void Release(const std::vector<int>& shards);

  Client client_;
  KeySpace keys_;
  LeaseConfig config_;
  Clock clock_;
  std::map<int, std::chrono::steady_clock::time_point> valid_until_;  // owned shard -> local expiry
  std::set<int> acquired_;
  int live_members_ = 1;
  Script heartbeat_;
  Script renew_;
  Script release_;
};

}  // namespace katy::redis
