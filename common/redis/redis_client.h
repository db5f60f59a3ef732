#pragma once

#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "common/redis/cluster_slots.h"
#include "common/redis/node_connection.h"
#include "common/redis/options.h"
#include "common/redis/reply.h"
#include "common/result.h"

namespace katy::redis {

// What a node says of the Redis it belongs to: one Redis, or a cluster and its slot map.
struct Topology {
  bool cluster = false;
  NodeAddress home;  // the node that answered
  SlotMap slots;     // on a cluster
};
// Asks `node` (over `connection`, which talks to it): INFO cluster, then CLUSTER SLOTS.
Result<Topology> AskTopology(NodeConnection& connection, const NodeAddress& node);
// Whom to ask, in order: the masters known so far (after a failover a survivor knows the
// news), then the seeds not among them.
std::vector<NodeAddress> DiscoveryCandidates(const SlotMap& known, const std::vector<NodeAddress>& seeds);
// Asks the candidates in turn. One Redis: the first answer. A cluster: the slot map most of the
// first kDiscoveryVotes nodes that answer agree on, since a node just restarted after a
// failover claims its old slots until the others' news reach it (about a second). kIo with
// every node's failure when none answers.
inline constexpr int kDiscoveryVotes = 3;
Result<Topology> DiscoverTopology(const std::vector<NodeAddress>& candidates,
                                  const std::function<NodeConnection&(const NodeAddress&)>& connection_to);

// Katy's blocking Redis client: one Redis or a Redis Cluster, the same to its callers.
// Long-lived, movable, not copyable, not thread-safe (one owner thread at a time; share
// through ClientPool).
//
// On its first call it asks the URL's nodes, in turn, whether Redis runs as a cluster
// (INFO cluster). On one Redis it keeps one connection. On a cluster it reads CLUSTER SLOTS
// and sends each command to the master of its keys' slot, over one connection per master;
// a -MOVED reply corrects the map and the command is sent again, an -ASK reply sends it once
// more to the node named, preceded by ASKING, and -TRYAGAIN is retried after a pause: at most
// kMaxRedirections times, after which the last error reply is the command's reply. After a
// redirection or a lost connection the whole map is read again before the next call, so a
// failover heals by itself once the cluster has promoted a replica. Commands whose keys lie in
// different slots get Redis's CROSSSLOT error reply without being sent.
//
// With options.wait_replicas > 0 every node's share of a call is followed by WAIT; fewer
// replicas than asked within options.wait_timeout fail the call with ErrorCode::kTimeout.
class Client {
 public:
  static constexpr int kMaxRedirections = 5;

  explicit Client(Options options);
  Client(Client&&) noexcept = default;
  Client& operator=(Client&&) noexcept = default;
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  // Sends one command and waits for its reply. Error codes: kIo (cannot connect, connection
  // lost), kTimeout (socket timeout, or WAIT short of replicas), kReply (Redis answered with
  // an error; message is its text).
  Result<Reply> Command(const std::vector<std::string>& argv);

  // Sends the commands pipelined (one round trip per node they go to) and returns their
  // replies in order. Redis error replies come back as Reply{kError} in their place; only I/O
  // failures make the whole call fail (then it is unknown which commands ran: callers must be
  // idempotent). On a cluster, when some masters answer and others cannot be reached, the
  // unreachable ones' commands get error replies "IOERR <why>" and the call succeeds: one
  // master down does not stop the shards of the others. Commands to different masters are not
  // ordered with respect to each other.
  Result<std::vector<Reply>> Pipeline(const std::vector<std::vector<std::string>>& commands);

  // Every key matching `pattern`, from every master (SCAN MATCH ... COUNT 200).
  Result<std::vector<std::string>> ScanKeys(const std::string& pattern);

  // PING; Ok when Redis answered PONG, else why not (Redis's own answer, or the I/O error).
  Status Ping();

  // Whether the nodes form a cluster (asked on the first call, kept from then on).
  Result<bool> IsCluster();
  const Options& options() const { return options_; }

 private:
  enum class Mode { kUnknown, kSingle, kCluster };
  using Commands = std::vector<std::vector<std::string>>;
  // The commands of one call bound for one node, by index; `asking` marks ASK retries.
  struct NodeBatch {
    NodeAddress node;
    std::vector<size_t> indexes;
    std::vector<bool> asking;
  };

  // One Pipeline call on a cluster: each command's reply so far, slot and ASK target.
  struct ClusterCall {
    std::vector<Reply> replies;
    std::vector<int> slots;
    std::vector<std::optional<NodeAddress>> ask;
    std::optional<Error> failure;  // the first node that could not be reached
    bool answered = false;         // some node could
  };

  Status EnsureTopology();
  Result<std::vector<Reply>> ClusterPipeline(const Commands& commands);
  // Sends one node its share of `call` and records the replies; returns the commands to send
  // again (redirected, or TRYAGAIN: then `try_again` is set).
  std::vector<size_t> RunBatch(const Commands& commands, const NodeBatch& batch, ClusterCall& call, bool& try_again);
  std::vector<NodeBatch> PlanBatches(const std::vector<int>& slots, const std::vector<std::optional<NodeAddress>>& ask,
                                     const std::vector<size_t>& pending) const;
  // Whether `reply` sends its command elsewhere (or again): MOVED corrects the map, ASK sets
  // `ask`, TRYAGAIN sets `try_again`.
  bool FollowRedirection(const Reply& reply, std::optional<NodeAddress>& ask, bool& try_again);
  Result<std::vector<Reply>> SendBatch(const NodeAddress& node,
                                       const std::vector<const std::vector<std::string>*>& batch,
                                       const std::vector<bool>& asking);
  NodeConnection& Node(const NodeAddress& node);

  Options options_;
  std::vector<std::string> wait_command_;  // WAIT <replicas> <timeout>, sent when wait_replicas > 0
  Mode mode_ = Mode::kUnknown;
  bool refresh_ = false;  // read the slot map again before the next call
  NodeAddress home_;      // the node that answered discovery: the one Redis, or keyless commands' fallback
  SlotMap slots_;
  std::vector<std::pair<NodeAddress, NodeConnection>> nodes_;
};

}  // namespace katy::redis
