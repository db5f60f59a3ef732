#include "common/redis/redis_client.h"

#include <algorithm>
#include <numeric>
#include <optional>
#include <thread>

#include "common/redis/replication_health.h"

namespace katy::redis {
namespace {

// A slot being migrated answers -TRYAGAIN to a multi-key command until its keys have moved.
constexpr auto kTryAgainPause = std::chrono::milliseconds(20);

const std::vector<std::string> kAsking{"ASKING"};
const std::vector<std::string> kInfoCluster{"INFO", "cluster"};
const std::vector<std::string> kClusterSlotsCommand{"CLUSTER", "SLOTS"};

bool StartsWith(std::string_view text, std::string_view prefix) { return text.substr(0, prefix.size()) == prefix; }

}  // namespace

Client::Client(Options options)
    : options_(std::move(options)),
      wait_command_{"WAIT", std::to_string(options_.wait_replicas), std::to_string(options_.wait_timeout.count())} {
  if (options_.seeds.empty()) options_.seeds.push_back({options_.host, options_.port});
}

NodeConnection& Client::Node(const NodeAddress& node) {
  for (auto& [address, connection] : nodes_) {
    if (address == node) return connection;
  }
  nodes_.emplace_back(node, NodeConnection(options_.ForNode(node)));
  ReplicationHealth::Process().Know(node);
  return nodes_.back().second;
}

Result<Topology> AskTopology(NodeConnection& connection, const NodeAddress& node) {
  auto info = connection.Pipeline({&kInfoCluster});
  if (!info) return info.error();
  Topology topology;
  topology.home = node;
  if (info->front().str.find("cluster_enabled:1") == std::string::npos) return topology;
  auto slots = connection.Pipeline({&kClusterSlotsCommand});
  if (!slots) return slots.error();
  auto map = SlotMap::FromClusterSlots(slots->front());
  if (!map) return map.error();
  topology.cluster = true;
  topology.slots = std::move(*map);
  return topology;
}

std::vector<NodeAddress> DiscoveryCandidates(const SlotMap& known, const std::vector<NodeAddress>& seeds) {
  std::vector<NodeAddress> candidates = known.Masters();
  for (const auto& seed : seeds) {
    if (std::find(candidates.begin(), candidates.end(), seed) == candidates.end()) candidates.push_back(seed);
  }
  return candidates;
}

Result<Topology> DiscoverTopology(const std::vector<NodeAddress>& candidates,
                                  const std::function<NodeConnection&(const NodeAddress&)>& connection_to) {
  std::vector<Topology> answers;
  std::vector<int> votes;
  std::string failures;
  for (const auto& node : candidates) {
    auto found = AskTopology(connection_to(node), node);
    if (!found) {
      failures += (failures.empty() ? "" : "; ") + found.error().message;
      continue;
    }
    if (!found->cluster) return found;
    auto same = std::find_if(answers.begin(), answers.end(),
                             [&](const Topology& answer) { return answer.slots.SameAs(found->slots); });
    if (same == answers.end()) {
      answers.push_back(std::move(*found));
      votes.push_back(1);
    } else {
      ++votes[static_cast<size_t>(same - answers.begin())];
    }
    if (std::accumulate(votes.begin(), votes.end(), 0) == kDiscoveryVotes) break;
  }
  if (answers.empty()) return Error{ErrorCode::kIo, "no Redis node answered: " + failures};
  return answers[static_cast<size_t>(std::max_element(votes.begin(), votes.end()) - votes.begin())];
}

Status Client::EnsureTopology() {
  if (mode_ == Mode::kSingle || (mode_ == Mode::kCluster && !refresh_)) return Ok{};
  auto found = DiscoverTopology(DiscoveryCandidates(slots_, options_.seeds),
                                [this](const NodeAddress& node) -> NodeConnection& { return Node(node); });
  if (!found) return found.error();
  home_ = found->home;
  mode_ = found->cluster ? Mode::kCluster : Mode::kSingle;
  slots_ = std::move(found->slots);
  refresh_ = false;
  return Ok{};
}

Result<Reply> Client::Command(const std::vector<std::string>& argv) {
  auto replies = Pipeline({argv});
  if (!replies) return replies.error();
  Reply& reply = replies->front();
  if (reply.IsError()) return ReplyError(reply.str);
  return std::move(reply);
}

Result<std::vector<Reply>> Client::Pipeline(const Commands& commands) {
  if (commands.empty()) return std::vector<Reply>{};
  if (auto ready = EnsureTopology(); !ready) return ready.error();
  if (mode_ == Mode::kCluster) return ClusterPipeline(commands);
  std::vector<const std::vector<std::string>*> batch;
  batch.reserve(commands.size());
  for (const auto& argv : commands) batch.push_back(&argv);
  return SendBatch(home_, batch, std::vector<bool>(commands.size(), false));
}

Result<std::vector<Reply>> Client::SendBatch(const NodeAddress& node,
                                             const std::vector<const std::vector<std::string>*>& batch,
                                             const std::vector<bool>& asking) {
  std::vector<const std::vector<std::string>*> wire;
  wire.reserve(batch.size() * 2 + 1);
  for (size_t i = 0; i < batch.size(); ++i) {
    if (asking[i]) wire.push_back(&kAsking);
    wire.push_back(batch[i]);
  }
  const bool wait = std::any_of(batch.begin(), batch.end(),
                                [this](const std::vector<std::string>* argv) { return options_.NeedsReplicas(*argv); });
  if (wait) wire.push_back(&wait_command_);
  auto replies = Node(node).Pipeline(wire);
  if (!replies) {
    refresh_ = mode_ == Mode::kCluster;
    return replies.error();
  }
  if (wait) {
    // WAIT confirms the commands this node ran; commands it redirected (a replica, or a master
    // that gave the slot away, answers only MOVED) are confirmed where they run next.
    const Reply wait = std::move(replies->back());
    replies->pop_back();
    const bool ran_any = std::any_of(replies->begin(), replies->end(), [](const Reply& reply) {
      return !reply.IsError() || !ParseRedirection(reply.str);
    });
    if (ran_any) {
      if (auto waited = JudgeWait(wait, options_, node); !waited) return waited.error();
    }
  }
  if (std::find(asking.begin(), asking.end(), true) == asking.end()) return replies;
  std::vector<Reply> out;
  out.reserve(batch.size());
  for (size_t i = 0, k = 0; i < batch.size(); ++i, ++k) {
    if (asking[i]) ++k;  // ASKING's own +OK
    out.push_back(std::move((*replies)[k]));
  }
  return out;
}

Result<std::vector<Reply>> Client::ClusterPipeline(const Commands& commands) {
  ClusterCall call{std::vector<Reply>(commands.size()), std::vector<int>(commands.size()),
                   std::vector<std::optional<NodeAddress>>(commands.size()), std::nullopt, false};
  std::vector<size_t> pending;
  for (size_t i = 0; i < commands.size(); ++i) {
    call.slots[i] = CommandSlot(commands[i]);
    if (call.slots[i] == kCrossSlot) {
      call.replies[i] = Reply::ErrorReply("CROSSSLOT Keys in request don't hash to the same slot");
    } else {
      pending.push_back(i);
    }
  }
  for (int round = 0; !pending.empty(); ++round) {
    bool try_again = false;
    std::vector<size_t> again;
    for (const NodeBatch& batch : PlanBatches(call.slots, call.ask, pending)) {
      for (size_t i : RunBatch(commands, batch, call, try_again)) {
        if (round + 1 < kMaxRedirections) again.push_back(i);
      }
    }
    if (try_again) std::this_thread::sleep_for(kTryAgainPause);
    pending = std::move(again);
  }
  if (call.failure && !call.answered) return *call.failure;
  return std::move(call.replies);
}

std::vector<size_t> Client::RunBatch(const Commands& commands, const NodeBatch& batch, ClusterCall& call,
                                     bool& try_again) {
  if (batch.node.port == 0) {  // a slot no master serves: the cluster is (partly) down
    refresh_ = true;
    for (size_t i : batch.indexes) call.replies[i] = Reply::ErrorReply("CLUSTERDOWN Hash slot not served");
    return {};
  }
  std::vector<const std::vector<std::string>*> argvs;
  argvs.reserve(batch.indexes.size());
  for (size_t i : batch.indexes) argvs.push_back(&commands[i]);
  auto got = SendBatch(batch.node, argvs, batch.asking);
  if (!got) {
    // One master down must not stop the others' work: its commands fail, theirs go on.
    if (!call.failure) call.failure = got.error();
    // A master short of replicas says so in its commands' replies, as Redis itself would.
    const char* kind = got.error().reason == "under_replicated" ? "NOREPLICAS " : "IOERR ";
    for (size_t i : batch.indexes) call.replies[i] = Reply::ErrorReply(kind + got.error().message);
    return {};
  }
  call.answered = true;
  std::vector<size_t> again;
  for (size_t k = 0; k < batch.indexes.size(); ++k) {
    const size_t i = batch.indexes[k];
    call.replies[i] = std::move((*got)[k]);
    call.ask[i].reset();
    if (FollowRedirection(call.replies[i], call.ask[i], try_again)) again.push_back(i);
  }
  return again;
}

std::vector<Client::NodeBatch> Client::PlanBatches(const std::vector<int>& slots,
                                                   const std::vector<std::optional<NodeAddress>>& ask,
                                                   const std::vector<size_t>& pending) const {
  std::vector<NodeBatch> batches;
  std::optional<NodeAddress> any_master;  // for keyless commands; found only when one comes
  for (size_t i : pending) {
    NodeAddress node;  // port 0: nobody serves the slot
    if (ask[i]) {
      node = *ask[i];
    } else if (slots[i] == kNoKey) {
      if (!any_master) {
        const std::vector<NodeAddress> masters = slots_.Masters();
        any_master = masters.empty() ? home_ : masters.front();
      }
      node = *any_master;
    } else if (auto master = slots_.MasterOf(slots[i])) {
      node = *master;
    }
    auto batch = std::find_if(batches.begin(), batches.end(), [&](const NodeBatch& b) { return b.node == node; });
    if (batch == batches.end()) batch = batches.insert(batches.end(), NodeBatch{node, {}, {}});
    batch->indexes.push_back(i);
    batch->asking.push_back(ask[i].has_value());
  }
  return batches;
}

bool Client::FollowRedirection(const Reply& reply, std::optional<NodeAddress>& ask, bool& try_again) {
  if (!reply.IsError()) return false;
  if (auto redirection = ParseRedirection(reply.str)) {
    if (redirection->kind == Redirection::Kind::kAsk) {
      ask = redirection->node;
    } else {
      slots_.Moved(redirection->slot, redirection->node);
      refresh_ = true;  // a MOVED seldom comes alone: read the whole map before the next call
    }
    return true;
  }
  if (StartsWith(reply.str, "TRYAGAIN")) {
    try_again = true;
    return true;
  }
  return false;
}

Result<std::vector<std::string>> Client::ScanKeys(const std::string& pattern) {
  if (auto ready = EnsureTopology(); !ready) return ready.error();
  const std::vector<NodeAddress> nodes = mode_ == Mode::kCluster ? slots_.Masters() : std::vector{home_};
  std::vector<std::string> keys;
  for (const NodeAddress& node : nodes) {
    std::string cursor = "0";
    do {
      const std::vector<std::string> scan{"SCAN", cursor, "MATCH", pattern, "COUNT", "200"};
      auto replies = SendBatch(node, {&scan}, {false});
      if (!replies) return replies.error();
      const Reply& reply = replies->front();
      if (reply.IsError()) return ReplyError(reply.str);
      if (!reply.IsArray() || reply.elements.size() != 2) return Error{ErrorCode::kReply, "unexpected SCAN reply"};
      cursor = reply.elements[0].str;
      for (const Reply& key : reply.elements[1].elements) keys.push_back(key.str);
    } while (cursor != "0");
  }
  return keys;
}

Result<bool> Client::IsCluster() {
  if (auto ready = EnsureTopology(); !ready) return ready.error();
  return mode_ == Mode::kCluster;
}

Status Client::Ping() {
  auto reply = Command({"PING"});
  if (!reply) return reply.error();
  if (reply->str != "PONG") return Error{ErrorCode::kReply, reply->str};
  return Ok{};
}

}  // namespace katy::redis
