#include "common/redis/shard_leases.h"

#include "common/log.h"

namespace katy::redis {
namespace {

// KEYS[1] members sorted set (score: expiry in Redis server ms). ARGV: instance, ttl ms.
// Uses Redis's clock, so instances on machines with skewed clocks agree on who is alive.
constexpr const char* kHeartbeatLua = R"lua(
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
return redis.call('ZCARD', KEYS[1])
)lua";

// KEYS[1] lease. ARGV: instance, ttl ms. 1 when renewed, 0 when someone else holds it.
constexpr const char* kRenewLua = R"lua(
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
)lua";

// KEYS[1] lease. ARGV[1] instance. Deletes it only if this instance holds it.
constexpr const char* kReleaseLua = R"lua(
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
)lua";

}  // namespace

int FairShare(int shards, int members) {
  if (members < 1) members = 1;
  return (shards + members - 1) / members;
}

ShardLeases::ShardLeases(Client client, KeySpace keys, LeaseConfig config, Clock clock)
    : client_(std::move(client)),
      keys_(std::move(keys)),
      config_(std::move(config)),
      clock_(clock ? std::move(clock) : [] { return std::chrono::steady_clock::now(); }),
      heartbeat_(kHeartbeatLua),
      renew_(kRenewLua),
      release_(kReleaseLua) {}

std::set<int> ShardLeases::owned() const {
  std::set<int> out;
  for (const auto& [shard, until] : valid_until_) out.insert(shard);
  return out;
}

void ShardLeases::DropExpired(std::chrono::steady_clock::time_point now) {
  for (auto it = valid_until_.begin(); it != valid_until_.end();) {
    if (now >= it->second) {
      log::Warn("shard lease expired locally; dropping it", {{"shard", it->first}, {"role", config_.role}});
      it = valid_until_.erase(it);
    } else {
      ++it;
    }
  }
}

std::set<int> ShardLeases::Tick(const std::function<bool(int)>& may_claim,
                                const std::function<bool(int)>& may_release) {
  const auto sent = clock_();
  acquired_.clear();
  // A lease is trusted until ttl minus a margin after the request that set it was sent:
  // Redis may have started its TTL a little later, never earlier.
  const auto validity = config_.ttl - config_.ttl / 10;
  const std::string ttl_ms = std::to_string(config_.ttl.count());

  // Heartbeat (and count the live members), renew what is owned, read every lease's holder.
  auto heartbeat = heartbeat_.Run(client_, {keys_.Members(config_.role)}, {config_.instance, ttl_ms});
  std::vector<int> renewing;
  std::vector<Script::Call> renew_calls;
  for (const auto& [shard, until] : valid_until_) {
    renewing.push_back(shard);
    renew_calls.push_back({{LeaseKey(shard)}, {config_.instance, ttl_ms}});
  }
  Result<std::vector<Reply>> renewed = std::vector<Reply>{};
  if (!renew_calls.empty()) renewed = renew_.RunPipelined(client_, renew_calls);
  std::vector<std::vector<std::string>> reads;
  for (int shard = 0; shard < keys_.shards(); ++shard) reads.push_back({"GET", LeaseKey(shard)});
  Result<std::vector<Reply>> holders = std::vector<Reply>{};
  if (renewed) holders = client_.Pipeline(reads);
  if (!renewed || !holders) {
    DropExpired(clock_());
    return owned();
  }
  // On a cluster the members' key and each lease may live on different masters: without the
  // heartbeat the last count stands, and a lease whose master did not answer (an error reply)
  // runs on its last renewal until it expires locally.
  if (heartbeat) live_members_ = std::max<int>(1, static_cast<int>(heartbeat->integer));
  for (size_t i = 0; i < renewing.size(); ++i) {
    const Reply& reply = (*renewed)[i];
    if (reply.IsError()) continue;
    if (reply.integer == 1) {
      valid_until_[renewing[i]] = sent + validity;
    } else {
      log::Warn("shard lease lost to another instance", {{"shard", renewing[i]}, {"role", config_.role}});
      valid_until_.erase(renewing[i]);
    }
  }
  DropExpired(clock_());

  // Release the surplus over the fair share (highest shards first), then claim free ones.
  const int share = FairShare(keys_.shards(), live_members_);
  std::vector<int> surplus;
  for (auto it = valid_until_.rbegin();
       it != valid_until_.rend() && static_cast<int>(valid_until_.size() - surplus.size()) > share; ++it) {
    surplus.push_back(it->first);
  }
  std::vector<int> releasable;
  for (int shard : surplus) {
    if (!may_release || may_release(shard)) releasable.push_back(shard);
  }
  if (!releasable.empty()) Release(releasable);

  int need = share - static_cast<int>(valid_until_.size());
  if (need <= 0) return owned();
  // Start at an instance-dependent shard so that instances starting together try different ones.
  const int offset = static_cast<int>(Fnv1a64(config_.instance) % static_cast<uint64_t>(keys_.shards()));
  std::vector<int> candidates;
  for (int k = 0; k < keys_.shards() && static_cast<int>(candidates.size()) < need; ++k) {
    int shard = (offset + k) % keys_.shards();
    if ((*holders)[shard].IsNil() && !valid_until_.contains(shard) && (!may_claim || may_claim(shard))) {
      candidates.push_back(shard);
    }
  }
  if (candidates.empty()) return owned();
  std::vector<std::vector<std::string>> claims;
  for (int shard : candidates) claims.push_back({"SET", LeaseKey(shard), config_.instance, "NX", "PX", ttl_ms});
  const auto claim_sent = clock_();
  auto claimed = client_.Pipeline(claims);
  if (!claimed) {
    DropExpired(clock_());
    return owned();
  }
  for (size_t i = 0; i < candidates.size(); ++i) {
    if ((*claimed)[i].type == Reply::Type::kStatus) {
      valid_until_[candidates[i]] = claim_sent + validity;
      acquired_.insert(candidates[i]);
      log::Info("shard lease acquired", {{"shard", candidates[i]}, {"role", config_.role}});
    }
  }
  return owned();
}

void ShardLeases::Release(const std::vector<int>& shards) {
  std::vector<Script::Call> calls;
  for (int shard : shards) {
    calls.push_back({{LeaseKey(shard)}, {config_.instance}});
    valid_until_.erase(shard);
    log::Info("shard lease released", {{"shard", shard}, {"role", config_.role}});
  }
  if (auto released = release_.RunPipelined(client_, calls); !released) {
    // Harmless: the leases expire by themselves after their TTL, and another instance takes
    // the shards then instead of at once.
    log::Warn("cannot release shard leases; they expire by themselves", {{"error", released.error().message}});
  }
}

void ShardLeases::ReleaseAll() {
  std::vector<int> all;
  for (const auto& [shard, until] : valid_until_) all.push_back(shard);
  if (!all.empty()) Release(all);
  if (auto left = client_.Command({"ZREM", keys_.Members(config_.role), config_.instance}); !left) {
    // Harmless: a member that stops renewing drops out of the membership by itself.
    log::Warn("cannot leave the instance membership", {{"error", left.error().message}});
  }
}

}  // namespace katy::redis
