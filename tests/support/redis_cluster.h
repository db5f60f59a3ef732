#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/redis/cluster_slots.h"
#include "tests/support/test_support.h"

namespace katy::testing {

// A free port for a cluster node whose cluster bus port (port + 10000) is free too and below
// the kernel's ephemeral range (32768), so no outgoing connection can hold it meanwhile.
int FreeNodePort();

// A real Redis Cluster on loopback for one test: 3 masters and 3 replicas (redis-server
// --cluster-enabled yes, joined by `redis-cli --cluster create --cluster-replicas 1`), AOF
// on, cluster-node-timeout 1000 ms so a dead master's replica takes over in about two seconds,
// cluster-require-full-coverage no so the other masters keep serving meanwhile. Every node
// is stopped when the object is destroyed. ready() is false (and the test has failed) when
// the cluster did not form within 20 s.
class RedisCluster {
 public:
  RedisCluster();
  ~RedisCluster();
  RedisCluster(const RedisCluster&) = delete;
  RedisCluster& operator=(const RedisCluster&) = delete;

  bool ready() const { return ready_; }
  // redis://127.0.0.1:<port>,...,127.0.0.1:<port>/0 naming every node as a seed.
  std::string url() const;
  const std::vector<int>& ports() const { return ports_; }
  const std::string& dir() const { return dir_; }

  // The port of the master serving `slot`, asked of a live node (0 when none answers).
  int MasterOf(int slot) const;
  // Every master's port, as the live nodes see it.
  std::vector<int> MasterPorts() const;
  // SIGKILLs the node on `port`.
  void Kill(int port);
  // Starts the killed node on `port` again, on its own files: it rejoins the cluster (as a
  // replica, once its master's replica has taken over). False when it does not listen in 5 s.
  bool Restart(int port);
  // Starts a new node and joins it as a replica of the master on `master_port`
  // (redis-cli --cluster add-node --cluster-slave, as an operator replaces a dead machine);
  // true once the master counts it online.
  bool AttachReplica(int master_port);
  // True once a live node reports cluster_state:ok and every slot is served by a live master.
  bool WaitUntilServing(std::chrono::milliseconds timeout) const;
  // True once every live replica's link to its master is up (it has synced).
  bool WaitUntilReplicasSynced(std::chrono::milliseconds timeout) const;
  // Runs `redis-cli -p <a live node> <args>` and returns what it printed.
  CommandResult Cli(const std::string& args) const;

 private:
  int LivePort() const;
  std::unique_ptr<Process> StartNode(int port) const;
  std::optional<redis::SlotMap> SlotMapNow() const;

  std::string dir_;
  std::vector<int> ports_;
  std::vector<std::unique_ptr<Process>> nodes_;  // in ports_ order; null once killed
  bool ready_ = false;
};

}  // namespace katy::testing
