// The Redis layer on a real Redis Cluster (issue 16): routing by slot, pipelines over several
// masters, MOVED and ASK during a slot's migration, scripts, blocking reads across shards,
// SCAN over every master.
#include <gtest/gtest.h>

#include <set>

#include "common/redis/redis_client.h"
#include "common/redis/script.h"
#include "common/redis/streams.h"
#include "tests/support/redis_cluster.h"

namespace katy::redis {
namespace {

std::string ShardKey(int shard, const std::string& what) {
  char key[64];
  std::snprintf(key, sizeof key, "t:{s%02d}:%s", shard, what.c_str());
  return key;
}

// The node id of the node on `port`.
std::string NodeId(int port) {
  auto id = testing::RunCommand("redis-cli -p " + std::to_string(port) + " CLUSTER MYID");
  std::string text = id.output;
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
  return text;
}

TEST(ClusterClientTest, CommandsGoToTheirSlotsMasterAndPipelinesSpanMasters) {
  testing::RedisCluster cluster;
  ASSERT_TRUE(cluster.ready());
  Client client(*ParseUrl(cluster.url()));
  auto is_cluster = client.IsCluster();
  ASSERT_TRUE(is_cluster.ok()) << is_cluster.error().message;
  EXPECT_TRUE(*is_cluster);

  std::vector<std::vector<std::string>> writes;
  std::vector<std::vector<std::string>> reads;
  std::set<int> masters;
  for (int shard = 0; shard < 16; ++shard) {
    writes.push_back({"SET", ShardKey(shard, "k"), "v" + std::to_string(shard)});
    reads.push_back({"GET", ShardKey(shard, "k")});
    masters.insert(cluster.MasterOf(KeySlot(ShardKey(shard, "k"))));
  }
  EXPECT_EQ(masters.size(), 3u) << "the 16 shard tags should spread over all three masters";
  auto written = client.Pipeline(writes);
  ASSERT_TRUE(written.ok()) << written.error().message;
  for (const Reply& reply : *written) EXPECT_EQ(reply.str, "OK") << reply.str;
  auto read = client.Pipeline(reads);
  ASSERT_TRUE(read.ok());
  for (int shard = 0; shard < 16; ++shard) EXPECT_EQ((*read)[shard].str, "v" + std::to_string(shard));

  // Each key is on its master, nowhere else: asked directly, another master redirects.
  for (int shard = 0; shard < 16; ++shard) {
    const int port = cluster.MasterOf(KeySlot(ShardKey(shard, "k")));
    auto direct = testing::RunCommand("redis-cli -p " + std::to_string(port) + " GET " + ShardKey(shard, "k"));
    EXPECT_EQ(direct.output, "v" + std::to_string(shard) + "\n");
  }

  auto cross = client.Command({"DEL", ShardKey(0, "k"), ShardKey(1, "k")});
  ASSERT_FALSE(cross.ok());
  EXPECT_EQ(cross.error().message.rfind("CROSSSLOT", 0), 0u) << cross.error().message;
}

TEST(ClusterClientTest, FollowsAskAndMovedThroughASlotMigration) {
  testing::RedisCluster cluster;
  ASSERT_TRUE(cluster.ready());
  Client client(*ParseUrl(cluster.url()));
  const std::string old_key = ShardKey(3, "old");
  const std::string new_key = ShardKey(3, "new");
  const int slot = KeySlot(old_key);
  ASSERT_TRUE(client.Command({"SET", old_key, "before"}).ok());

  const int source = cluster.MasterOf(slot);
  int target = 0;
  for (int port : cluster.MasterPorts()) {
    if (port != source) target = port;
  }
  ASSERT_NE(target, 0);
  const std::string s = std::to_string(slot);
  auto on = [](int port, const std::string& args) {
    return testing::RunCommand("redis-cli -p " + std::to_string(port) + " " + args).output;
  };
  ASSERT_EQ(on(target, "CLUSTER SETSLOT " + s + " IMPORTING " + NodeId(source)), "OK\n");
  ASSERT_EQ(on(source, "CLUSTER SETSLOT " + s + " MIGRATING " + NodeId(target)), "OK\n");

  // Migrating: the key still at the source is served there; a new one is ASKed to the target.
  auto old_value = client.Command({"GET", old_key});
  ASSERT_TRUE(old_value.ok()) << old_value.error().message;
  EXPECT_EQ(old_value->str, "before");
  auto created = client.Command({"SET", new_key, "during"});
  ASSERT_TRUE(created.ok()) << created.error().message;
  auto new_value = client.Command({"GET", new_key});
  ASSERT_TRUE(new_value.ok()) << new_value.error().message;
  EXPECT_EQ(new_value->str, "during");

  // Migrated: the slot belongs to the target; the client's map is stale and MOVED corrects it.
  ASSERT_EQ(on(source, "MIGRATE 127.0.0.1 " + std::to_string(target) + " \"\" 0 5000 KEYS " + old_key), "OK\n");
  for (int port : cluster.MasterPorts()) {
    ASSERT_EQ(on(port, "CLUSTER SETSLOT " + s + " NODE " + NodeId(target)), "OK\n");
  }
  auto moved = client.Pipeline({{"GET", old_key}, {"GET", new_key}});
  ASSERT_TRUE(moved.ok()) << moved.error().message;
  EXPECT_EQ((*moved)[0].str, "before");
  EXPECT_EQ((*moved)[1].str, "during");
  EXPECT_EQ(cluster.MasterOf(slot), target);
}

TEST(ClusterClientTest, ScriptsReadsAndScansWorkOnEveryMaster) {
  testing::RedisCluster cluster;
  ASSERT_TRUE(cluster.ready());
  Client client(*ParseUrl(cluster.url()));
  // A script nobody loaded: NOSCRIPT on each master, then EVAL caches it there.
  const Script incr("return redis.call('INCR', KEYS[1])");
  std::vector<Script::Call> calls;
  for (int shard = 0; shard < 16; ++shard) calls.push_back({{ShardKey(shard, "n")}, {}});
  for (int round = 1; round <= 2; ++round) {
    auto ran = incr.RunPipelined(client, calls);
    ASSERT_TRUE(ran.ok()) << ran.error().message;
    for (const Reply& reply : *ran) EXPECT_EQ(reply.integer, round) << reply.str;
  }

  // One read over streams on every master, each in its own slot.
  std::vector<std::string> streams;
  for (int shard = 0; shard < 16; ++shard) {
    streams.push_back(ShardKey(shard, "in"));
    ASSERT_TRUE(EnsureGroup(client, streams.back(), "g").ok());
  }
  auto empty =
      XReadGroup(client, "g", "c", streams, std::vector<std::string>(16, ">"), 10, std::chrono::milliseconds(100));
  ASSERT_TRUE(empty.ok()) << empty.error().message;
  EXPECT_TRUE(empty->empty());
  for (int shard : {0, 5, 15}) ASSERT_TRUE(XAdd(client, streams[shard], {{"pb", std::to_string(shard)}}).ok());
  auto read =
      XReadGroup(client, "g", "c", streams, std::vector<std::string>(16, ">"), 10, std::chrono::milliseconds(1000));
  ASSERT_TRUE(read.ok()) << read.error().message;
  std::set<std::string> got;
  for (const auto& entry : *read) got.insert(*entry.Field("pb"));
  EXPECT_EQ(got, (std::set<std::string>{"0", "5", "15"}));

  auto keys = client.ScanKeys("t:*:n");
  ASSERT_TRUE(keys.ok()) << keys.error().message;
  EXPECT_EQ(keys->size(), 16u);
}

TEST(ClusterClientTest, CarriesOnAfterAMasterFailsOverAndComesBackAsAReplica) {
  testing::RedisCluster cluster;
  ASSERT_TRUE(cluster.ready());
  Client client(*ParseUrl(cluster.url()));
  std::vector<std::vector<std::string>> writes;
  std::vector<std::vector<std::string>> reads;
  for (int shard = 0; shard < 16; ++shard) {
    writes.push_back({"SET", ShardKey(shard, "k"), "v"});
    reads.push_back({"GET", ShardKey(shard, "k")});
  }
  ASSERT_TRUE(client.Pipeline(writes).ok());
  const int victim = cluster.MasterOf(KeySlot(ShardKey(0, "k")));
  cluster.Kill(victim);

  // While the master is down its shards fail alone; the others' commands go on.
  auto partial = client.Pipeline(reads);
  ASSERT_TRUE(partial.ok()) << partial.error().message;
  int failed = 0;
  for (int shard = 0; shard < 16; ++shard) {
    const bool on_victim = cluster.MasterOf(KeySlot(ShardKey(shard, "k"))) == victim;
    if ((*partial)[shard].IsError()) ++failed;
    if (!on_victim) {
      EXPECT_EQ((*partial)[shard].str, "v") << "shard " << shard;
    }
  }
  EXPECT_GT(failed, 0);

  ASSERT_TRUE(cluster.WaitUntilServing(std::chrono::seconds(20))) << cluster.Cli("CLUSTER NODES").output;
  ASSERT_TRUE(cluster.Restart(victim));
  std::string last;
  const bool healed = testing::WaitFor(
      [&] {
        auto read = client.Pipeline(reads);
        if (!read) {
          last = read.error().message;
          return false;
        }
        for (const Reply& reply : *read) {
          if (reply.str != "v") {
            last = reply.str;
            return false;
          }
        }
        return true;
      },
      std::chrono::seconds(15));
  EXPECT_TRUE(healed) << "last: " << last;
}

}  // namespace
}  // namespace katy::redis
