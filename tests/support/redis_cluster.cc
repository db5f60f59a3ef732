#include "tests/support/redis_cluster.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <sstream>

#include "common/redis/redis_client.h"

namespace katy::testing {
namespace {

constexpr int kNodes = 6;
constexpr int kClusterBusOffset = 10000;  // each node also listens on port + 10000

}  // namespace

int FreeNodePort() {
  for (int attempt = 0; attempt < 200; ++attempt) {
    const int port = FreePort();
    if (port + kClusterBusOffset < 32768 && PortIsFree(port + kClusterBusOffset)) return port;
  }
  ADD_FAILURE() << "no free port pair for a cluster node";
  return 0;
}

namespace {

std::vector<std::string> NodeArgs(int port, const std::string& dir) {
  const std::string p = std::to_string(port);
  return {"--port", p, "--bind", "127.0.0.1", "--dir", dir, "--save", "", "--appendonly", "yes", "--appendfilename",
          "appendonly-" + p + ".aof", "--appenddirname", "aof-" + p, "--cluster-enabled", "yes",
          "--cluster-config-file", "nodes-" + p + ".conf", "--cluster-node-timeout", "1000",
          "--cluster-require-full-coverage", "no",
          // A replica coming back syncs at once, not after the default 5 s wait for others.
          "--repl-diskless-sync-delay", "0"};
}

}  // namespace

RedisCluster::RedisCluster() : dir_(MakeTempDir("cluster")) {
  std::string addresses;
  for (int i = 0; i < kNodes; ++i) {
    const int port = FreeNodePort();
    ports_.push_back(port);
    nodes_.push_back(StartNode(port));
    addresses += " 127.0.0.1:" + std::to_string(port);
  }
  for (int port : ports_) {
    if (!WaitForPort(port, std::chrono::seconds(5))) {
      ADD_FAILURE() << "cluster node did not start on " << port;
      return;
    }
  }
  const auto created = RunCommand("redis-cli --cluster create" + addresses + " --cluster-replicas 1 --cluster-yes");
  if (created.status != 0) {
    ADD_FAILURE() << "redis-cli --cluster create failed:\n" << created.output;
    return;
  }
  ready_ = WaitUntilServing(std::chrono::seconds(20)) && WaitUntilReplicasSynced(std::chrono::seconds(20));
  EXPECT_TRUE(ready_) << "the cluster did not reach cluster_state:ok with every replica in sync";
}

RedisCluster::~RedisCluster() {
  nodes_.clear();  // each Process stops its node
  RunCommand("rm -rf '" + dir_ + "'");
}

std::string RedisCluster::url() const {
  std::string url = "redis://";
  for (size_t i = 0; i < ports_.size(); ++i)
    url += (i == 0 ? "" : ",") + std::string("127.0.0.1:") + std::to_string(ports_[i]);
  return url + "/0";
}

int RedisCluster::LivePort() const {
  for (size_t i = 0; i < ports_.size(); ++i) {
    if (nodes_[i] != nullptr) return ports_[i];
  }
  return 0;
}

CommandResult RedisCluster::Cli(const std::string& args) const {
  return RunCommand("redis-cli -p " + std::to_string(LivePort()) + " " + args);
}

void RedisCluster::Kill(int port) {
  for (size_t i = 0; i < ports_.size(); ++i) {
    if (ports_[i] == port && nodes_[i] != nullptr) {
      nodes_[i]->Kill();
      nodes_[i].reset();
    }
  }
}

bool RedisCluster::Restart(int port) {
  for (size_t i = 0; i < ports_.size(); ++i) {
    if (ports_[i] == port && nodes_[i] == nullptr) nodes_[i] = StartNode(port);
  }
  return WaitForPort(port, std::chrono::seconds(5));
}

bool RedisCluster::AttachReplica(int master_port) {
  const int port = FreeNodePort();
  ports_.push_back(port);
  nodes_.push_back(StartNode(port));
  if (!WaitForPort(port, std::chrono::seconds(5))) return false;
  const std::string master = "127.0.0.1:" + std::to_string(master_port);
  std::string id = RunCommand("redis-cli -p " + std::to_string(master_port) + " CLUSTER MYID").output;
  id.erase(id.find_last_not_of(" \n") + 1);
  const auto added = RunCommand("redis-cli --cluster add-node 127.0.0.1:" + std::to_string(port) + " " + master +
                                " --cluster-slave --cluster-master-id " + id);
  if (added.status != 0) {
    ADD_FAILURE() << "redis-cli --cluster add-node failed:\n" << added.output;
    return false;
  }
  return WaitFor(
      [&] {
        return RunCommand("redis-cli -p " + std::to_string(master_port) + " INFO replication")
                   .output.find("state=online") != std::string::npos;
      },
      std::chrono::seconds(20));
}

std::unique_ptr<Process> RedisCluster::StartNode(int port) const {
  return std::make_unique<Process>("/usr/bin/redis-server", NodeArgs(port, dir_), std::map<std::string, std::string>{},
                                   dir_ + "/node-" + std::to_string(port) + ".log");
}

std::vector<int> RedisCluster::MasterPorts() const {
  // "<id> <ip:port@bus> <flags> ..." per node; a failed master keeps its flags with ",fail".
  std::vector<int> masters;
  std::istringstream lines(Cli("CLUSTER NODES").output);
  for (std::string line; std::getline(lines, line);) {
    std::istringstream fields(line);
    std::string id, address, flags;
    fields >> id >> address >> flags;
    if (flags.find("master") == std::string::npos || flags.find("fail") != std::string::npos) continue;
    const size_t colon = address.find(':');
    const size_t at = address.find('@');
    if (colon != std::string::npos && at != std::string::npos) {
      masters.push_back(std::stoi(address.substr(colon + 1, at - colon - 1)));
    }
  }
  return masters;
}

std::optional<redis::SlotMap> RedisCluster::SlotMapNow() const {
  redis::Options options;
  options.port = LivePort();
  redis::NodeConnection node(options);
  const std::vector<std::string> slots{"CLUSTER", "SLOTS"};
  auto reply = node.Pipeline({&slots});
  if (!reply) return std::nullopt;
  auto map = redis::SlotMap::FromClusterSlots(reply->front());
  if (!map) return std::nullopt;
  return std::move(*map);
}

int RedisCluster::MasterOf(int slot) const {
  auto map = SlotMapNow();
  auto master = map ? map->MasterOf(slot) : std::nullopt;
  return master ? master->port : 0;
}

bool RedisCluster::WaitUntilReplicasSynced(std::chrono::milliseconds timeout) const {
  // A replica that has not synced with its master yet would refuse to take over from it.
  return WaitFor(
      [&] {
        for (size_t i = 0; i < ports_.size(); ++i) {
          if (nodes_[i] == nullptr) continue;
          const std::string info = RunCommand("redis-cli -p " + std::to_string(ports_[i]) + " INFO replication").output;
          if (info.find("role:slave") != std::string::npos && info.find("master_link_status:up") == std::string::npos) {
            return false;
          }
        }
        return true;
      },
      timeout);
}

bool RedisCluster::WaitUntilServing(std::chrono::milliseconds timeout) const {
  auto alive = [&](int port) {
    for (size_t i = 0; i < ports_.size(); ++i) {
      if (ports_[i] == port) return nodes_[i] != nullptr;
    }
    return false;
  };
  return WaitFor(
      [&] {
        if (Cli("CLUSTER INFO").output.find("cluster_state:ok") == std::string::npos) return false;
        auto map = SlotMapNow();
        if (!map) return false;
        for (int slot = 0; slot < redis::kClusterSlots; ++slot) {
          auto master = map->MasterOf(slot);
          if (!master || !alive(master->port)) return false;
        }
        return true;
      },
      timeout);
}

}  // namespace katy::testing
