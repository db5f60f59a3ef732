#include "common/redis/async_router.h"

#include <algorithm>
#include <deque>
#include <utility>

#include "common/redis/replication_health.h"

namespace katy::redis {

// One command on its way: what to send again on a redirection, whom to tell, and (with WAIT)
// its reply until WAIT has answered.
struct AsyncRouter::Pending {
  std::vector<std::string> argv;
  Callback done;
  int attempts = 0;
  bool finished = false;  // done ran, or the command went elsewhere
  std::optional<Reply> reply = std::nullopt;
};

AsyncRouter::AsyncRouter(Options options, std::vector<std::vector<std::string>> setup)
    : options_(std::move(options)), setup_(std::move(setup)) {
  if (options_.seeds.empty()) options_.seeds.push_back({options_.host, options_.port});
}

bool AsyncRouter::EnsureTopology() {
  if (topology_ && !refresh_) return true;
  const auto now = Clock::now();
  if (now - last_discovery_ < kRediscoverEvery) return topology_.has_value();
  last_discovery_ = now;
  const SlotMap known = topology_ ? topology_->slots : SlotMap{};
  std::deque<NodeConnection> asked;  // blocking connections for this discovery only (stable addresses)
  auto found = DiscoverTopology(
      DiscoveryCandidates(known, options_.seeds),
      [&](const NodeAddress& node) -> NodeConnection& { return asked.emplace_back(options_.ForNode(node)); });
  if (found) {
    topology_ = std::move(*found);
    refresh_ = false;
  }
  return topology_.has_value();
}

std::optional<NodeAddress> AsyncRouter::Route(int slot) const {
  if (!topology_->cluster) return topology_->home;
  if (slot == kNoKey) {
    const auto masters = topology_->slots.Masters();
    return masters.empty() ? topology_->home : masters.front();
  }
  return topology_->slots.MasterOf(slot);
}

size_t AsyncRouter::ConnectionIndex(const NodeAddress& node) {
  auto found = std::find(nodes_.begin(), nodes_.end(), node);
  if (found != nodes_.end()) return static_cast<size_t>(found - nodes_.begin());
  nodes_.push_back(node);
  ReplicationHealth::Process().Know(node);
  connections_.push_back(std::make_unique<AsyncConnection>(options_.ForNode(node), setup_));
  unwaited_.emplace_back();
  return connections_.size() - 1;
}

void AsyncRouter::Send(std::vector<std::string> argv, Callback done) {
  if (!EnsureTopology()) {
    done(
        Error{ErrorCode::kIo, "no Redis node answered (asked " + options_.seeds.front().ToString() + " and the rest)"});
    return;
  }
  const int slot = topology_->cluster ? CommandSlot(argv) : kNoKey;
  if (slot == kCrossSlot) return done(Reply::ErrorReply("CROSSSLOT Keys in request don't hash to the same slot"));
  auto node = Route(slot);
  if (!node) {
    refresh_ = true;
    return done(Reply::ErrorReply("CLUSTERDOWN Hash slot not served"));
  }
  Dispatch(*node, std::make_shared<Pending>(Pending{std::move(argv), std::move(done), 0, false}), false);
}

void AsyncRouter::Dispatch(const NodeAddress& node, const std::shared_ptr<Pending>& pending, bool asking) {
  const size_t index = ConnectionIndex(node);
  AsyncConnection& connection = *connections_[index];
  if (asking) connection.Send({"ASKING"}, [](const Result<Reply>&) {});
  connection.Send(pending->argv, [this, pending](Result<Reply> reply) { OnReply(pending, std::move(reply)); });
  if (options_.wait_replicas > 0) unwaited_[index].push_back(pending);
}

void AsyncRouter::OnReply(const std::shared_ptr<Pending>& pending, Result<Reply> reply) {
  if (pending->finished) return;
  if (!reply) {
    refresh_ = topology_ && topology_->cluster;
    pending->finished = true;
    return pending->done(std::move(reply));
  }
  auto redirection = reply->IsError() ? ParseRedirection(reply->str) : std::nullopt;
  if (redirection && ++pending->attempts < Client::kMaxRedirections) {
    // The command goes elsewhere; this connection's WAIT for it, if any, is ignored.
    pending->finished = true;
    auto again = std::make_shared<Pending>(
        Pending{std::move(pending->argv), std::move(pending->done), pending->attempts, false});
    if (redirection->kind == Redirection::Kind::kMoved) {
      topology_->slots.Moved(redirection->slot, redirection->node);
      refresh_ = true;
    }
    return Dispatch(redirection->node, again, redirection->kind == Redirection::Kind::kAsk);
  }
  if (options_.wait_replicas > 0) {
    pending->reply = std::move(*reply);
    return;
  }
  pending->finished = true;
  pending->done(std::move(reply));
}

void AsyncRouter::OnWait(const std::shared_ptr<Pending>& pending, const Result<Reply>& wait, const NodeAddress& node) {
  if (pending->finished) return;
  pending->finished = true;
  if (!wait) return pending->done(Error{wait.error().code, "WAIT: " + wait.error().message});
  if (!pending->reply) return pending->done(Error{ErrorCode::kIo, "no reply before WAIT"});
  if (auto waited = JudgeWait(wait, options_, node); !waited) return pending->done(waited.error());
  pending->done(std::move(*pending->reply));
}

void AsyncRouter::Broadcast(const std::vector<std::string>& argv) {
  for (auto& connection : connections_) {
    if (connection->fd() >= 0) connection->Send(argv, [](const Result<Reply>&) {});
  }
}

void AsyncRouter::Flush() {
  for (size_t i = 0; i < connections_.size(); ++i) {
    if (!unwaited_[i].empty()) {
      // One WAIT after all of this flush's commands on the connection: it confirms every write
      // before it, so the pipeline stays one round trip (a WAIT per command would serialise it).
      connections_[i]->Send(
          {"WAIT", std::to_string(options_.wait_replicas), std::to_string(options_.wait_timeout.count())},
          [this, node = nodes_[i], waiting = std::exchange(unwaited_[i], {})](const Result<Reply>& wait) {
            for (const auto& pending : waiting) OnWait(pending, wait, node);
          });
    }
    connections_[i]->Flush();
  }
}

void AsyncRouter::CheckTimeouts(Clock::time_point now) {
  for (auto& connection : connections_) connection->CheckTimeouts(now);
}

size_t AsyncRouter::waiting() const {
  size_t total = 0;
  for (const auto& connection : connections_) total += connection->waiting();
  return total;
}

}  // namespace katy::redis
