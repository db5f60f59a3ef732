#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/redis/async_connection.h"
#include "common/redis/redis_client.h"

namespace katy::redis {

// AsyncConnection's counterpart of Client: commands sent without blocking to one Redis, or on
// a Redis Cluster to the master of each command's slot, over one AsyncConnection per master.
// A -MOVED reply corrects the slot map and resends the command, an -ASK reply resends it once
// more preceded by ASKING (at most Client::kMaxRedirections times; then the error reply is
// the command's reply). Replies to commands on different masters are not ordered with respect
// to each other; on one connection they are.
//
// Which kind of Redis, and which master serves which slot, is asked (blocking, with
// options.connect_timeout per node) on the first Send and again after a redirection or a lost
// connection, at most once per kRediscoverEvery: while nobody answers, Send fails at once with
// ErrorCode::kIo. A failover therefore costs the loop one short blocking call per interval,
// not a stall per command.
//
// With options.wait_replicas > 0, Flush follows each connection's new commands with one WAIT,
// and their callbacks run once it has answered: with each command's reply when enough replicas
// have the writes, else as the options' WaitPolicy says (JudgeWait). (Callers must Flush after Send, as they must
// anyway to send anything.)
//
// The owner drives connections() as it would one AsyncConnection (fd, wants_write,
// generation, OnEvents), and calls Flush and CheckTimeouts for all of them. One thread.
class AsyncRouter {
 public:
  using Callback = AsyncConnection::Callback;
  using Clock = AsyncConnection::Clock;
  static constexpr std::chrono::milliseconds kRediscoverEvery{100};

  // `setup` runs first on every new connection (see AsyncConnection).
  AsyncRouter(Options options, std::vector<std::vector<std::string>> setup = {});

  void Send(std::vector<std::string> argv, Callback done);
  // Sends `argv` on every open connection, replies ignored (SCRIPT LOAD after a NOSCRIPT).
  void Broadcast(const std::vector<std::string>& argv);
  void Flush();
  void CheckTimeouts(Clock::time_point now);

  // Whether Redis is known to be one node, not a cluster (false until the first Send has
  // found out): then commands may name keys of any slots.
  bool single_node() const { return topology_ && !topology_->cluster; }
  // One per node used so far; addresses are stable for the router's lifetime.
  const std::vector<std::unique_ptr<AsyncConnection>>& connections() const { return connections_; }
  // Commands sent and not yet answered, over all connections.
  size_t waiting() const;

 private:
  struct Pending;
  bool EnsureTopology();
  std::optional<NodeAddress> Route(int slot) const;
  void Dispatch(const NodeAddress& node, const std::shared_ptr<Pending>& pending, bool asking);
  void OnReply(const std::shared_ptr<Pending>& pending, Result<Reply> reply);
  void OnWait(const std::shared_ptr<Pending>& pending, const Result<Reply>& wait, const NodeAddress& node);
  size_t ConnectionIndex(const NodeAddress& node);

  Options options_;
  std::vector<std::vector<std::string>> setup_;
  std::optional<Topology> topology_;
  bool refresh_ = false;
  Clock::time_point last_discovery_{};
  std::vector<NodeAddress> nodes_;  // nodes_[i] is served by connections_[i]
  std::vector<std::unique_ptr<AsyncConnection>> connections_;
  // Per connection: commands sent since its last WAIT (with wait_replicas > 0).
  std::vector<std::vector<std::shared_ptr<Pending>>> unwaited_;
};

}  // namespace katy::redis
