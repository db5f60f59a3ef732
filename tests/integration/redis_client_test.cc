#include "common/redis/redis_client.h"

#include <gtest/gtest.h>
#include <sys/epoll.h>

#include <map>
#include <sstream>
#include <thread>

#include "common/metrics/queue_metrics.h"
#include "common/redis/async_router.h"
#include "common/redis/cluster_slots.h"
#include "common/redis/queue_status.h"
#include "common/redis/replication_health.h"
#include "common/redis/script.h"
#include "common/redis/streams.h"
#include "tests/support/redis_cluster.h"
#include "tests/support/test_support.h"

namespace katy::redis {
namespace {

TEST(RedisClientTest, CommandsNilErrorsAndPipelines) {
  Client client(testing::TestRedisOptions());
  const std::string key = testing::UniquePrefix("client") + ":k";
  ASSERT_TRUE(client.Ping());
  ASSERT_TRUE(client.Command({"SET", key, "v"}).ok());
  EXPECT_EQ(client.Command({"GET", key})->str, "v");
  EXPECT_TRUE(client.Command({"GET", key + ":absent"})->IsNil());
  auto wrong = client.Command({"INCR", key});
  ASSERT_FALSE(wrong.ok());
  EXPECT_EQ(wrong.error().code, ErrorCode::kReply);
  auto replies = client.Pipeline({{"INCR", key + ":n"}, {"INCR", key + ":n"}, {"LPUSH", key, "x"}});
  ASSERT_TRUE(replies.ok());
  EXPECT_EQ((*replies)[1].integer, 2);
  EXPECT_TRUE((*replies)[2].IsError());  // WRONGTYPE, in its place
  std::string binary("a\0b", 3);
  ASSERT_TRUE(client.Command({"SET", key + ":bin", binary}).ok());
  EXPECT_EQ(client.Command({"GET", key + ":bin"})->str, binary);
}

TEST(RedisClientTest, UnreachableRedisIsAnIoError) {
  Options options;
  options.port = testing::FreePort();
  Client client(options);
  auto reply = client.Command({"PING"});
  ASSERT_FALSE(reply.ok());
  EXPECT_EQ(reply.error().code, ErrorCode::kIo);
  EXPECT_FALSE(client.Ping());
}

TEST(RedisClientTest, ReconnectsAfterTheConnectionIsKilled) {
  Client client(testing::TestRedisOptions());
  Client admin(testing::TestRedisOptions());
  auto id = client.Command({"CLIENT", "ID"});
  ASSERT_TRUE(id.ok());
  ASSERT_TRUE(admin.Command({"CLIENT", "KILL", "ID", std::to_string(id->integer)}).ok());
  auto first = client.Command({"PING"});  // may fail: the connection is gone
  if (!first.ok()) {
    EXPECT_EQ(first.error().code, ErrorCode::kIo);
  }
  EXPECT_TRUE(client.Ping());
}

TEST(RedisClientTest, ScriptsSurviveScriptFlush) {
  // A Redis of its own: a flush on the shared one fails the scripts of tests running beside it.
  const int port = testing::FreePort();
  auto redis = testing::StartPrivateRedis(port, testing::MakeTempDir("script-flush"));
  Options options;
  options.port = port;
  Client client(options);
  Script script("return redis.call('INCRBY', KEYS[1], ARGV[1])");
  const std::string key = testing::UniquePrefix("script") + ":n";
  EXPECT_EQ(script.Run(client, {key}, {"2"})->integer, 2);
  ASSERT_TRUE(client.Command({"SCRIPT", "FLUSH"}).ok());
  EXPECT_EQ(script.Run(client, {key}, {"3"})->integer, 5);
  ASSERT_TRUE(client.Command({"SCRIPT", "FLUSH"}).ok());
  auto many = script.RunPipelined(client, {{{key}, {"1"}}, {{key}, {"1"}}});
  ASSERT_TRUE(many.ok());
  EXPECT_EQ((*many)[1].integer, 7);
  Script broken("return redis.call('NOPE')");
  auto failed = broken.Run(client, {}, {});
  ASSERT_FALSE(failed.ok());
  EXPECT_EQ(failed.error().code, ErrorCode::kReply);
}

// Katy's slot arithmetic agrees with a real cluster node's, for every shard's tag and for keys
// with and without tags.
TEST(RedisClientTest, KeySlotsAgreeWithAClusterNode) {
  // Its cluster bus listens on port + 10000: a plain free port could find that one taken.
  const int port = testing::FreeNodePort();
  auto node = testing::StartPrivateRedis(port, testing::MakeTempDir("cluster-node"), {"--cluster-enabled", "yes"});
  Options options;
  options.port = port;
  Client client(options);
  std::vector<std::string> keys = {"somekey", "foo{hash_tag}", "foo{}{bar}", "foo{{bar}}zap", "katy:members:sender"};
  for (int shard = 0; shard < 64; ++shard) {
    keys.push_back("katy:{s" + std::string(shard < 10 ? "0" : "") + std::to_string(shard) + "}:in");
  }
  for (const auto& key : keys) {
    auto slot = client.Command({"CLUSTER", "KEYSLOT", key});
    ASSERT_TRUE(slot.ok()) << slot.error().message;
    EXPECT_EQ(KeySlot(key), slot->integer) << key;
  }
}

// KATY_REDIS_WAIT_REPLICAS: a write counts only once a replica has it. Without a replica it
// fails with a timeout; with one, both clients (blocking and ingress's) get their replies.
TEST(RedisClientTest, WaitForReplicasConfirmsWritesOrFailsThem) {
  const std::string dir = testing::MakeTempDir("wait");
  const int master_port = testing::FreePort();
  auto master =
      testing::StartPrivateRedis(master_port, testing::MakeTempDir("wait-master"), {"--repl-diskless-sync-delay", "0"});
  Options options;
  options.port = master_port;
  options.wait_replicas = 1;
  options.wait_timeout = std::chrono::milliseconds(200);
  Client alone(options);
  auto unconfirmed = alone.Command({"SET", "w", "1"});
  ASSERT_FALSE(unconfirmed.ok());
  EXPECT_EQ(unconfirmed.error().code, ErrorCode::kTimeout) << unconfirmed.error().message;

  const int replica_port = testing::FreePort();
  auto replica =
      testing::StartPrivateRedis(replica_port, dir, {"--replicaof", "127.0.0.1", std::to_string(master_port)});
  // Online as the master sees it (synced and acknowledging), not only connected.
  ASSERT_TRUE(testing::WaitFor(
      [&] {
        return testing::RunCommand("redis-cli -p " + std::to_string(master_port) + " INFO replication")
                   .output.find("state=online") != std::string::npos;
      },
      std::chrono::seconds(10)));
  options.wait_timeout = std::chrono::milliseconds(5000);  // a busy machine may take a while
  Client confirmed(options);
  auto set = confirmed.Pipeline({{"SET", "w", "2"}, {"INCR", "n"}});
  ASSERT_TRUE(set.ok()) << set.error().message;
  EXPECT_EQ((*set)[1].integer, 1);

  AsyncRouter router(options);
  std::vector<Result<Reply>> replies;
  for (int i = 0; i < 3; ++i)
    router.Send({"INCR", "n"}, [&](Result<Reply> reply) { replies.push_back(std::move(reply)); });
  router.Flush();
  ASSERT_TRUE(testing::WaitFor(
      [&] {
        for (const auto& connection : router.connections()) connection->OnEvents(EPOLLIN | EPOLLOUT);
        router.Flush();
        return replies.size() == 3;
      },
      std::chrono::seconds(5)));
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(replies[i].ok()) << replies[i].error().message;
    EXPECT_EQ(replies[i]->integer, i + 2);
  }
}

// With no replica to confirm it (issue 35): under strict, a durable write fails and says it was
// applied; a bookkeeping key's write (Options::unwaited_key_prefixes) sends no WAIT at all, so a
// master short of replicas does not hold up what needs none; under degrade the write stands.
TEST(RedisClientTest, AWriteNoReplicaConfirmsFollowsThePolicyAndBookkeepingNeedsNone) {
  const int port = testing::FreePort();
  auto master = testing::StartPrivateRedis(port, testing::MakeTempDir("unwaited"));
  Options options;
  options.port = port;
  options.wait_replicas = 1;
  options.wait_timeout = std::chrono::milliseconds(100);
  options.unwaited_key_prefixes = {"katy:rate:"};
  Client strict(options);
  auto rate = strict.Command({"HSET", "katy:rate:1045", "tat", "1"});
  EXPECT_TRUE(rate.ok()) << rate.error().message;
  auto durable = strict.Command({"SET", "katy:{s01}:sent:m1", "1"});
  ASSERT_FALSE(durable.ok());
  EXPECT_EQ(durable.error().reason, "under_replicated");
  EXPECT_NE(durable.error().message.find("the master applied it"), std::string::npos);
  EXPECT_EQ(Client(options.WithoutWait()).Command({"GET", "katy:{s01}:sent:m1"})->str, "1");
  // A read changes nothing a replica must hold: it sends no WAIT, and a master short of
  // replicas still serves it.
  auto read = strict.Pipeline({{"GET", "katy:{s01}:sent:m1"}, {"EXISTS", "katy:{s01}:sent:m1"}});
  ASSERT_TRUE(read.ok()) << read.error().message;
  EXPECT_EQ((*read)[0].str, "1");
  auto mixed = strict.Pipeline({{"HSET", "katy:rate:1045", "tat", "2"}, {"INCR", "katy:{s01}:n"}});
  EXPECT_FALSE(mixed.ok()) << "one node's share with a durable write waits for it";

  options.wait_policy = WaitPolicy::kDegrade;
  Client degrade(options);
  auto stands = degrade.Command({"SET", "katy:{s01}:sent:m2", "1"});
  EXPECT_TRUE(stands.ok());
  EXPECT_TRUE(ReplicationHealth::Process().UnderReplicated().at("127.0.0.1:" + std::to_string(port)));
}

TEST(StreamsTest, GroupReadAckAndAutoClaim) {
  Client client(testing::TestRedisOptions());
  const std::string stream = testing::UniquePrefix("streams") + ":in";
  ASSERT_TRUE(EnsureGroup(client, stream, "g").ok());
  ASSERT_TRUE(EnsureGroup(client, stream, "g").ok());  // idempotent
  auto first = XAdd(client, stream, {{"pb", "one"}});
  auto second = XAdd(client, stream, {{"pb", "two"}});
  ASSERT_TRUE(first.ok() && second.ok());

  auto read = XReadGroup(client, "g", "dead", {stream}, {">"}, 10, std::chrono::milliseconds(100));
  ASSERT_TRUE(read.ok());
  ASSERT_EQ(read->size(), 2u);
  EXPECT_EQ((*read)[0].id, *first);
  EXPECT_EQ((*read)[0].Field("pb"), "one");
  EXPECT_EQ((*read)[0].stream, stream);
  EXPECT_FALSE((*read)[0].Field("missing"));
  EXPECT_EQ(*XAck(client, stream, "g", {*first}), 1);

  auto empty = XReadGroup(client, "g", "dead", {stream}, {">"}, 10, std::chrono::milliseconds(50));
  ASSERT_TRUE(empty.ok());
  EXPECT_TRUE(empty->empty());

  auto claimed = XAutoClaim(client, stream, "g", "alive", std::chrono::milliseconds(0), "0-0", 10);
  ASSERT_TRUE(claimed.ok());
  ASSERT_EQ(claimed->entries.size(), 1u);
  EXPECT_EQ(claimed->entries[0].id, *second);
  auto own = XReadGroup(client, "g", "alive", {stream}, {"0"}, 10, std::chrono::milliseconds(0));
  ASSERT_EQ(own->size(), 1u);
}

// The lag is what waits for the group's consumers. Before any consumer created the group (a
// responder or sender not started yet, or scaled to zero) every entry waits: the lag is the
// length, never 0, or a scaler from zero and a "drained" wait would both see nothing to do.
TEST(QueueStatusTest, AStreamWithoutItsGroupLagsByItsLength) {
  Client client(testing::TestRedisOptions());
  const KeySpace keys(testing::UniquePrefix("queues"), 2);
  ASSERT_TRUE(XAdd(client, keys.InStream(0), {{"pb", "one"}}).ok());
  ASSERT_TRUE(XAdd(client, keys.InStream(0), {{"pb", "two"}}).ok());
  ASSERT_TRUE(EnsureGroup(client, keys.InStream(1), KeySpace::kResponderGroup).ok());
  ASSERT_TRUE(XAdd(client, keys.InStream(1), {{"pb", "three"}}).ok());
  ASSERT_EQ(
      XReadGroup(client, KeySpace::kResponderGroup, "c", {keys.InStream(1)}, {">"}, 1, std::chrono::milliseconds(0))
          ->size(),
      1u);
  katy::v1::Status status;
  ASSERT_TRUE(ReadQueueStatus(client, keys, &status).ok());
  std::map<std::string, katy::v1::StreamStatus> by_stream;
  for (const auto& stream : status.streams()) by_stream[stream.stream()] = stream;
  EXPECT_EQ(by_stream[keys.InStream(0)].length(), 2);
  EXPECT_EQ(by_stream[keys.InStream(0)].lag(), 2) << "no group yet: both entries wait";
  EXPECT_EQ(by_stream[keys.InStream(1)].lag(), 0);
  EXPECT_EQ(by_stream[keys.InStream(1)].pending(), 1);
  EXPECT_EQ(by_stream[keys.OutStream(0)].lag(), 0) << "no stream, nothing waits";
}

// Redis's count of the commands it ran, by name (INFO commandstats), the INFO itself included.
std::map<std::string, int64_t> CommandCounts(Client& client) {
  std::map<std::string, int64_t> counts;
  auto info = client.Command({"INFO", "commandstats"});
  std::istringstream lines(info.ok() ? info->str : "");
  for (std::string line; std::getline(lines, line);) {
    const auto colon = line.find(':');
    const auto calls = line.find("calls=");
    if (line.rfind("cmdstat_", 0) != 0 || colon == std::string::npos || calls == std::string::npos) continue;
    counts[line.substr(8, colon - 8)] = std::atoll(line.c_str() + calls + 6);
  }
  return counts;
}

// The redis commands run since `before` (CommandCounts), INFO itself left out.
int64_t CommandsSince(Client& client, const std::map<std::string, int64_t>& before) {
  int64_t total = 0;
  for (const auto& [name, calls] : CommandCounts(client)) {
    if (name != "info") total += calls - (before.contains(name) ? before.at(name) : 0);
  }
  return total;
}

// A Redis of the test's own, so that its command counts are the test's alone, and the options
// that reach it.
struct OwnRedis {
  std::unique_ptr<testing::Process> process;
  Options options;
};
OwnRedis StartOwnRedis(const std::string& name) {
  const int port = testing::FreePort();
  OwnRedis redis{testing::StartPrivateRedis(port, testing::MakeTempDir(name)), {}};
  redis.options.host = "127.0.0.1";
  redis.options.port = port;
  return redis;
}

// What a status read (every /metrics scrape, katyctl status) costs Redis does not grow with
// the keyspace: with 300,000 marks it runs exactly the commands it ran with none, and never a
// SCAN. A page's sending state is listed from katy:pages; a page whose hash expired is left out.
TEST(QueueStatusTest, AStatusReadCostsTheSameWhateverTheKeyspaceHolds) {
  auto redis = StartOwnRedis("scrape-cost");
  Options& options = redis.options;
  // Filling the keyspace is one script of 300,000 SETs: past the default 2 s under ASan with a
  // neighbour test's load (it failed so once in three runs).
  options.socket_timeout = std::chrono::seconds(30);
  Client client(options);
  const KeySpace keys("katy", 4);
  ASSERT_TRUE(client.Command({"HSET", keys.Rate("1045"), "rate", "10", "paused", "1"}).ok());
  ASSERT_TRUE(client.Command({"HSET", keys.Rate("3135"), "tat", "1"}).ok());         // only its limiter's state
  ASSERT_TRUE(client.Command({"SADD", keys.Pages(), "1045", "2090", "3135"}).ok());  // 2090's hash expired
  auto cost_of_a_read = [&] {
    katy::v1::Status status;
    const auto before = CommandCounts(client);
    EXPECT_TRUE(ReadQueueStatus(client, keys, &status).ok());
    const int64_t total = CommandsSince(client, before);
    EXPECT_FALSE(CommandCounts(client).contains("scan"));
    std::map<std::string, bool> paused;
    for (const auto& page : status.pages()) paused[page.page_id()] = page.paused();
    EXPECT_EQ(paused, (std::map<std::string, bool>{{"1045", true}, {"3135", false}}));
    return total;
  };
  const int64_t empty = cost_of_a_read();
  auto filled = client.Command(
      {"EVAL", "for i = 1, tonumber(ARGV[1]) do redis.call('SET', 'katy:{s01}:sent:' .. i, 'x', 'EX', 3600) end", "0",
       "300000"});
  ASSERT_TRUE(filled.ok() && !filled->IsError()) << (filled.ok() ? filled->str : filled.error().message);
  EXPECT_EQ(cost_of_a_read(), empty) << "a status read's Redis work grew with the keyspace";
}

double GaugeOf(const std::vector<prometheus::MetricFamily>& families, const std::string& name,
               const std::string& stream) {
  for (const auto& family : families) {
    if (family.name != name) continue;
    for (const auto& sample : family.metric) {
      for (const auto& label : sample.label) {
        if (label.name == "stream" && label.value == stream) return sample.gauge.value;
      }
    }
  }
  return -1;
}

// Every instance's /metrics reports the same queue gauges: within KATY_STATUS_MAX_AGE_MS of a
// scrape that read them, another instance's scrape takes that read from katy:status (a GET and
// a PTTL) instead of reading every stream, lease and page again; past it, a scrape reads afresh.
TEST(QueueStatusTest, InstancesScrapesShareOneStatusReadPerMaxAge) {
  auto redis = StartOwnRedis("scrape-share");
  const Options& options = redis.options;
  Client client(options);
  const KeySpace keys("katy", 4);
  ASSERT_TRUE(XAdd(client, keys.InStream(0), {{"pb", "one"}}).ok());
  const auto max_age = std::chrono::seconds(60);
  metrics::QueueDepthCollector one(options, keys, max_age);
  metrics::QueueDepthCollector other(options, keys, max_age);

  auto before = CommandCounts(client);
  EXPECT_EQ(GaugeOf(one.Collect(), "katy_stream_length", keys.InStream(0)), 1);
  const int64_t full_read = CommandsSince(client, before);
  EXPECT_GT(full_read, 20) << "4 shards' streams, dead letters and leases";

  ASSERT_TRUE(XAdd(client, keys.InStream(0), {{"pb", "two"}}).ok());
  before = CommandCounts(client);
  EXPECT_EQ(GaugeOf(other.Collect(), "katy_stream_length", keys.InStream(0)), 1) << "not the shared read";
  EXPECT_EQ(CommandsSince(client, before), 2) << "the shared read costs a GET and a PTTL";

  // Past its max age the shared read is gone, and the next scrape reads afresh.
  ASSERT_TRUE(client.Command({"PEXPIRE", keys.SharedStatus(), "1"}).ok());
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  before = CommandCounts(client);
  EXPECT_EQ(GaugeOf(other.Collect(), "katy_stream_length", keys.InStream(0)), 2);
  EXPECT_EQ(CommandsSince(client, before), full_read) << "the shared read tried, then a full read shared again";

  // Without a max age, every scrape reads.
  metrics::QueueDepthCollector unshared(options, keys, std::chrono::milliseconds(0));
  ASSERT_TRUE(XAdd(client, keys.InStream(0), {{"pb", "three"}}).ok());
  EXPECT_EQ(GaugeOf(unshared.Collect(), "katy_stream_length", keys.InStream(0)), 3);
}

// A throttle's time left in a shared read counts from when it was read, not from its scrape.
TEST(QueueStatusTest, ASharedReadsThrottleIsToldTheTimeSinceItWasRead) {
  auto redis = StartOwnRedis("scrape-throttle");
  const Options& options = redis.options;
  Client client(options);
  const KeySpace keys("katy", 2);
  auto now = client.Command({"TIME"});
  ASSERT_TRUE(now.ok() && now->elements.size() == 2);
  const int64_t now_ms = std::atoll(now->elements[0].str.c_str()) * 1000;
  ASSERT_TRUE(client.Command({"HSET", keys.Rate("1045"), "blocked_until", std::to_string(now_ms + 100'000)}).ok());
  ASSERT_TRUE(client.Command({"SADD", keys.Pages(), "1045"}).ok());
  const auto max_age = std::chrono::seconds(60);
  auto throttled_ms = [&] {
    katy::v1::Status status;
    EXPECT_TRUE(ReadSharedQueueStatus(client, keys, max_age, &status).ok());
    return status.pages_size() == 1 ? status.pages(0).throttled_for_ms() : -1;
  };
  EXPECT_NEAR(throttled_ms(), 100'000, 2'000);
  // As if it had been read 40 s ago: 20 s of its 60 left.
  ASSERT_TRUE(client.Command({"PEXPIRE", keys.SharedStatus(), "20000"}).ok());
  EXPECT_NEAR(throttled_ms(), 60'000, 2'000);
}

}  // namespace
}  // namespace katy::redis
