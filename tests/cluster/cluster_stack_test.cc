// Katy as real processes on a real Redis Cluster (issue 16): every path on three masters, and
// a master SIGKILLed mid-traffic with no acknowledged webhook lost.
#include <gtest/gtest.h>

#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <thread>

#include "common/http/http_client.h"
#include "common/redis/redis_client.h"
#include "common/redis/streams.h"
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

size_t RepliesReceived(const std::string& emulator_url) {
  size_t total = 0;
  for (const auto& [user, texts] : testing::ReceivedTexts(emulator_url)) total += texts.size();
  return total;
}

// The master serving each shard's streams.
std::map<int, int> MasterOfShard(const testing::RedisCluster& cluster) {
  std::map<int, int> masters;
  for (int shard = 0; shard < kShards; ++shard)
    masters[shard] = cluster.MasterOf(redis::KeySlot(kKeys.InStream(shard)));
  return masters;
}

// The last entry delivered to `group` of `stream` ("" when unknown).
std::string LastDelivered(redis::Client& client, const std::string& stream, const char* group) {
  auto groups = client.Command({"XINFO", "GROUPS", stream});
  if (!groups) return "";
  for (const auto& fields : groups->elements) {
    std::string name, last;
    for (size_t i = 0; i + 1 < fields.elements.size(); i += 2) {
      if (fields.elements[i].str == "name") name = fields.elements[i + 1].str;
      if (fields.elements[i].str == "last-delivered-id") last = fields.elements[i + 1].str;
    }
    if (name == group) return last;
  }
  return "";
}

// When each service was first seen working again on the shards of a killed master.
struct Resumed {
  std::optional<Clock::time_point> ingress;    // a webhook for one of them, sent after the kill, taken
  std::optional<Clock::time_point> responder;  // the responders read one of their inbound streams
  std::optional<Clock::time_point> sender;     // the senders read one of their outbound streams
};

double MsSince(Clock::time_point start, const std::optional<Clock::time_point>& at) {
  return at ? std::chrono::duration<double, std::milli>(*at - start).count() : -1;
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
  EXPECT_TRUE(stack.WaitUntilDrained(seconds(30)));  // a duplicate would have arrived by then
  EXPECT_EQ(testing::UsersNotAnsweredExactlyOnceInOrder(plan, stack.emulator_url()), std::vector<std::string>{});

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

  // A dead letter on the master of its shard: listed and replayed through katyctl.
  redis::Client client(*redis::ParseUrl(cluster.url()));
  ASSERT_TRUE(redis::XAdd(client, kKeys.InStream(5), {{"pb", "not a protobuf"}}).ok());
  const std::string katyctl = testing::BinaryPath("katyctl") + " --json --addr " + stack.GrpcAddress("ingress");
  auto letters = [&] {
    auto listed = testing::RunCommand(katyctl + " dlq list");
    const auto json = nlohmann::json::parse(listed.output, nullptr, false);
    std::vector<std::string> ids;
    if (json.is_object() && json.contains("letters")) {
      for (const auto& letter : json["letters"])
        ids.push_back(letter["dlq_stream"].get<std::string>() + "/" + letter["id"].get<std::string>());
    }
    return ids;
  };
  std::vector<std::string> first;
  ASSERT_TRUE(testing::WaitFor([&] { return (first = letters()).size() == 1; }, seconds(10)));
  EXPECT_EQ(first[0].rfind(kKeys.DeadLetters(5) + "/", 0), 0u) << first[0];
  auto replayed = testing::RunCommand(katyctl + " dlq replay " + first[0]);
  ASSERT_EQ(replayed.status, 0) << replayed.output;
  // Back on its stream, refused again (it still is not an event): a new letter replaces it.
  EXPECT_TRUE(testing::WaitFor(
      [&] {
        auto now = letters();
        return now.size() == 1 && now[0] != first[0];
      },
      seconds(10)));
}

// A master SIGKILLed while users are sending: its replica takes over, ingress, responders and
// senders carry on by themselves, and with KATY_REDIS_WAIT_REPLICAS=1 every webhook that got
// a 200 gets exactly one reply, in order. The killed node is started again once its replica has
// taken over (as a supervisor would): with WAIT 1, a master without a replica cannot confirm
// writes.
TEST(ClusterStackTest, AMasterKilledMidTrafficLosesNoAcknowledgedWebhook) {
  testing::RedisCluster cluster;
  ASSERT_TRUE(cluster.ready());
  testing::KatyStack stack({kEchoRules,
                            {{"KATY_LEASE_TTL_MS", "2000"},
                             {"KATY_LOG_LEVEL", "info"},
                             {"KATY_PAGE_RATE", "2000"},
                             {"KATY_REDIS_WAIT_REPLICAS", "1"}},
                            cluster.url()});
  ASSERT_TRUE(stack.ready());
  stack.StartExtra("responder", "katy-responder");
  stack.StartExtra("sender", "katy-sender");

  const auto shard_masters = MasterOfShard(cluster);
  const int victim = shard_masters.at(0);
  std::vector<int> victim_shards;
  for (const auto& [shard, port] : shard_masters) {
    if (port == victim) victim_shards.push_back(shard);
  }
  const testing::TrafficPlan plan{200, 15, 8, 200, "104560000000001", "f"};
  std::mutex mutex;
  std::optional<Clock::time_point> killed_at;
  Resumed resumed;
  testing::WebhookTraffic traffic(stack.ingress_url(), testing::KatyStack::kAppSecret, plan,
                                  [&](int user, int, Clock::time_point first_try, Clock::time_point taken) {
                                    const int shard = ShardOf(plan.page, testing::TrafficUserId(plan, user), kShards);
                                    std::lock_guard lock(mutex);
                                    if (killed_at && first_try > *killed_at && shard_masters.at(shard) == victim) {
                                      if (!resumed.ingress || taken < *resumed.ingress) resumed.ingress = taken;
                                    }
                                  });
  traffic.Start();
  std::this_thread::sleep_for(seconds(4));

  redis::Client observer(*redis::ParseUrl(cluster.url()));
  std::map<std::string, std::string> before;  // stream -> last delivered to its group
  for (int shard : victim_shards) {
    before[kKeys.InStream(shard)] = LastDelivered(observer, kKeys.InStream(shard), KeySpace::kResponderGroup);
    before[kKeys.OutStream(shard)] = LastDelivered(observer, kKeys.OutStream(shard), KeySpace::kSenderGroup);
  }
  const auto kill_time = Clock::now();
  {
    std::lock_guard lock(mutex);
    killed_at = kill_time;
  }
  cluster.Kill(victim);
  ASSERT_TRUE(cluster.WaitUntilServing(seconds(20))) << "no replica took over";
  const auto promoted_at = Clock::now();
  ASSERT_TRUE(cluster.Restart(victim));
  testing::WaitFor(
      [&] {
        for (int shard : victim_shards) {
          if (!resumed.responder && LastDelivered(observer, kKeys.InStream(shard), KeySpace::kResponderGroup) !=
                                        before[kKeys.InStream(shard)]) {
            resumed.responder = Clock::now();
          }
          if (!resumed.sender && LastDelivered(observer, kKeys.OutStream(shard), KeySpace::kSenderGroup) !=
                                     before[kKeys.OutStream(shard)]) {
            resumed.sender = Clock::now();
          }
        }
        return resumed.responder && resumed.sender;
      },
      seconds(30));
  traffic.Join();

  const size_t expected = static_cast<size_t>(plan.users) * plan.messages_per_user;
  EXPECT_TRUE(testing::WaitFor([&] { return RepliesReceived(stack.emulator_url()) >= expected; }, seconds(60)))
      << "logs in " << stack.dir();
  EXPECT_TRUE(stack.WaitUntilDrained(seconds(30)));  // a duplicate would have arrived by then
  const size_t received = RepliesReceived(stack.emulator_url());
  const auto wrong = testing::UsersNotAnsweredExactlyOnceInOrder(plan, stack.emulator_url());
  EXPECT_EQ(wrong, std::vector<std::string>{}) << "logs in " << stack.dir();
  if (!wrong.empty()) {
    auto texts = testing::ReceivedTexts(stack.emulator_url());
    for (const auto& user : wrong)
      std::printf("%s got: %s\n", user.c_str(), nlohmann::json(texts[user]).dump().c_str());
    std::printf("%s\n", testing::RunCommand(testing::BinaryPath("katyctl") + " --addr " + stack.GrpcAddress("ingress") +
                                            " status --all")
                            .output.c_str());
    for (int shard : victim_shards) {
      for (const auto& stream : {kKeys.InStream(shard), kKeys.OutStream(shard)}) {
        const int port = cluster.MasterOf(redis::KeySlot(stream));
        std::printf(
            "%s on %d: XLEN %s GROUPS %s\n", stream.c_str(), port,
            testing::RunCommand("redis-cli -p " + std::to_string(port) + " XLEN " + stream).output.c_str(),
            testing::RunCommand("redis-cli -p " + std::to_string(port) + " XINFO GROUPS " + stream).output.c_str());
      }
    }
    std::printf("%s\n", cluster.Cli("CLUSTER NODES").output.c_str());
    std::printf("victim's view: %s\n",
                testing::RunCommand("redis-cli -p " + std::to_string(victim) + " CLUSTER NODES").output.c_str());
  }
  std::lock_guard lock(mutex);
  std::printf(
      "failover accounting: master %d (%zu shards) killed; replica serving after %.0f ms; resumed on its shards: "
      "ingress %.0f ms, responders %.0f ms, senders %.0f ms; webhooks taken %d (retried %d times), replies %zu of %zu, "
      "users wrong %zu\n",
      victim, victim_shards.size(), MsSince(kill_time, promoted_at), MsSince(kill_time, resumed.ingress),
      MsSince(kill_time, resumed.responder), MsSince(kill_time, resumed.sender), traffic.delivered(), traffic.retries(),
      received, expected, wrong.size());
  EXPECT_TRUE(resumed.ingress && resumed.responder && resumed.sender);
}

// Dead letters in every shard's stream, asked of the master that holds it now.
long long DeadLetters(redis::Client& client) {
  long long total = 0;
  for (int shard = 0; shard < kShards; ++shard) {
    auto length = client.Command({"XLEN", kKeys.DeadLetters(shard)});
    EXPECT_TRUE(length.ok()) << length.error().message;
    if (length) total += length->integer;
  }
  return total;
}

// A master's machine dies and does not come back (issue 35): its replica is promoted and has
// no replica of its own. Every webhook was taken (with WAIT 1) while both services were paused,
// so the whole backlog meets the degraded master at once when they resume.
struct DeadMaster {
  testing::RedisCluster cluster;
  std::unique_ptr<testing::KatyStack> stack;
  testing::TrafficPlan plan{64, 5, 8, 250, "104560000000001", "d"};

  void Run(const std::string& policy) {
    ASSERT_TRUE(cluster.ready());
    stack = std::make_unique<testing::KatyStack>(testing::KatyStack::Options{
        kEchoRules,
        {{"KATY_LEASE_TTL_MS", "2000"},
         {"KATY_LOG_LEVEL", "info"},
         {"KATY_PAGE_RATE", "2000"},
         {"KATY_MAX_ATTEMPTS", "3"},  // many retry budgets pass while the master has no replica
         {"KATY_REDIS_WAIT_REPLICAS", "1"},
         {"KATY_REDIS_WAIT_POLICY", policy}},
        cluster.url()});
    ASSERT_TRUE(stack->ready());
    ASSERT_EQ(testing::Katyctl(*stack, "responder", "pause").status, 0);
    ASSERT_EQ(testing::Katyctl(*stack, "sender", "pause").status, 0);
    testing::WebhookTraffic traffic(stack->ingress_url(), testing::KatyStack::kAppSecret, plan);
    traffic.Start();
    traffic.Join();

    ASSERT_TRUE(cluster.WaitUntilReplicasSynced(seconds(10)));
    cluster.Kill(MasterOfShard(cluster).at(0));
    ASSERT_TRUE(cluster.WaitUntilServing(seconds(20))) << "no replica took over";
    ASSERT_EQ(testing::Katyctl(*stack, "responder", "resume").status, 0);
    ASSERT_EQ(testing::Katyctl(*stack, "sender", "resume").status, 0);
  }
};

// Each user's replies with a reply sent twice in a row counted once, against the echo of every
// message the plan sent: the users whose replies are not that (lost, reordered).
std::vector<std::string> UsersNotAnsweredInOrder(const testing::TrafficPlan& plan, const std::string& emulator_url,
                                                 size_t* duplicates) {
  auto received = testing::ReceivedTexts(emulator_url);
  std::vector<std::string> wrong;
  *duplicates = 0;
  for (int user = 0; user < plan.users; ++user) {
    const std::string id = testing::TrafficUserId(plan, user);
    std::vector<std::string> distinct;
    for (const auto& text : received[id]) {
      if (!distinct.empty() && distinct.back() == text) {
        ++*duplicates;
      } else {
        distinct.push_back(text);
      }
    }
    std::vector<std::string> expected;
    for (int n = 0; n < plan.messages_per_user; ++n) expected.push_back("echo: " + testing::TrafficText(plan, user, n));
    if (distinct != expected) wrong.push_back(id);
  }
  return wrong;
}

// Issue 35's scenario: 100 users x 10 messages, WAIT 1, strict; 1.5 s in, a master is SIGKILLed
// and never restarted. Its replica takes over with no replica of its own. The users on the
// other masters' shards (their own traffic, so a user held up at ingress holds up nobody else's
// webhooks) get every reply; those on the dead master's shards get nothing new and nothing is
// dead-lettered; once an operator attaches a replica, they get everything, in order.
TEST(ClusterStackTest, AMasterKilledAndNeverRestartedHoldsOnlyItsShardsUntilAReplicaIsAttached) {
  testing::RedisCluster cluster;
  ASSERT_TRUE(cluster.ready());
  testing::KatyStack stack({kEchoRules,
                            {{"KATY_LEASE_TTL_MS", "2000"},
                             {"KATY_LOG_LEVEL", "info"},
                             {"KATY_PAGE_RATE", "2000"},
                             {"KATY_MAX_ATTEMPTS", "3"},
                             {"KATY_REDIS_WAIT_REPLICAS", "1"},
                             {"KATY_REDIS_WAIT_POLICY", "strict"}},
                            cluster.url()});
  ASSERT_TRUE(stack.ready());
  const auto shard_masters = MasterOfShard(cluster);
  const int victim = shard_masters.at(0);
  testing::TrafficPlan plan{100, 10, 4, 200, "104560000000001", "k"};
  auto on_victim = [&](int user) {
    return shard_masters.at(ShardOf(plan.page, testing::TrafficUserId(plan, user), kShards)) == victim;
  };
  testing::TrafficPlan healthy_plan = plan;
  healthy_plan.only = [&](int user) { return !on_victim(user); };
  testing::TrafficPlan victim_plan = plan;
  victim_plan.only = on_victim;
  std::set<std::string> victim_users;
  for (int user = 0; user < plan.users; ++user) {
    if (on_victim(user)) victim_users.insert(testing::TrafficUserId(plan, user));
  }
  ASSERT_FALSE(victim_users.empty());
  testing::WebhookTraffic healthy(stack.ingress_url(), testing::KatyStack::kAppSecret, healthy_plan);
  testing::WebhookTraffic held(stack.ingress_url(), testing::KatyStack::kAppSecret, victim_plan);
  healthy.Start();
  held.Start();
  std::this_thread::sleep_for(milliseconds(1500));
  const auto kill_time = Clock::now();
  cluster.Kill(victim);
  ASSERT_TRUE(cluster.WaitUntilServing(seconds(20))) << "no replica took over";
  const auto promoted_at = Clock::now();

  healthy.Join();
  auto healthy_done = [&] {
    auto received = testing::ReceivedTexts(stack.emulator_url());
    for (int user = 0; user < plan.users; ++user) {
      if (!on_victim(user) &&
          received[testing::TrafficUserId(plan, user)].size() < static_cast<size_t>(plan.messages_per_user)) {
        return false;
      }
    }
    return true;
  };
  EXPECT_TRUE(testing::WaitFor(healthy_done, seconds(30)))
      << "the healthy masters' shards stalled; logs in " << stack.dir();
  const auto healthy_at = Clock::now();
  auto victim_replies = [&] {
    size_t total = 0;
    for (const auto& [user, texts] : testing::ReceivedTexts(stack.emulator_url())) {
      if (victim_users.contains(user)) total += texts.size();
    }
    return total;
  };
  const size_t held_replies = victim_replies();
  std::this_thread::sleep_for(seconds(3));  // many retry budgets (3 attempts): nothing goes, or is given up
  EXPECT_EQ(victim_replies(), held_replies) << "a shard of the master without replicas sent something";
  redis::Client observer(*redis::ParseUrl(cluster.url()));
  EXPECT_EQ(DeadLetters(observer), 0);
  const auto status = testing::Katyctl(stack, "sender", "status");
  const bool shows_held = status.output.find("HELD shard") != std::string::npos ||
                          testing::Katyctl(stack, "responder", "status").output.find("HELD shard") != std::string::npos;
  EXPECT_TRUE(shows_held) << status.output;

  const int promoted = cluster.MasterOf(redis::KeySlot(kKeys.InStream(0)));
  ASSERT_TRUE(cluster.AttachReplica(promoted));
  const auto attached_at = Clock::now();
  held.Join();
  const size_t expected = static_cast<size_t>(plan.users) * plan.messages_per_user;
  size_t duplicates = 0;
  EXPECT_TRUE(testing::WaitFor([&] { return UsersNotAnsweredInOrder(plan, stack.emulator_url(), &duplicates).empty(); },
                               seconds(60)))
      << "logs in " << stack.dir();
  const auto whole_at = Clock::now();
  EXPECT_EQ(DeadLetters(observer), 0);
  EXPECT_LE(static_cast<double>(duplicates), stack.MetricSum("sender", "katy_sender_possible_duplicates_total"))
      << "a duplicate the sender did not count";
  EXPECT_EQ(stack.AllLogs().find("dead-lettered"), std::string::npos);
  std::printf(
      "dead master accounting: master %d killed, never restarted; replica serving after %.0f ms; users on healthy "
      "masters %zu answered in full %.0f ms after the kill; users on the dead master's shards %zu, replies held at "
      "%zu; replica attached %.0f ms after the kill, all %zu replies in order %.0f ms later; duplicates %zu; dead "
      "letters 0; webhooks retried %d times\n",
      victim, MsSince(kill_time, promoted_at), static_cast<size_t>(plan.users) - victim_users.size(),
      MsSince(kill_time, healthy_at), victim_users.size(), held_replies, MsSince(kill_time, attached_at), expected,
      std::chrono::duration<double, std::milli>(whole_at - attached_at).count(), duplicates,
      healthy.retries() + held.retries());
}

TEST(ClusterStackTest, UnderDegradeAMasterWithoutReplicasDeliversEverythingAndSaysSo) {
  DeadMaster scenario;
  ASSERT_NO_FATAL_FAILURE(scenario.Run("degrade"));
  EXPECT_TRUE(testing::WaitFor(
      [&] { return UsersNotAnsweredExactlyOnceInOrder(scenario.plan, scenario.stack->emulator_url()).empty(); },
      seconds(60)))
      << "logs in " << scenario.stack->dir();
  redis::Client observer(*redis::ParseUrl(scenario.cluster.url()));
  EXPECT_EQ(DeadLetters(observer), 0);
  EXPECT_GE(scenario.stack->MetricSum("sender", "katy_redis_under_replicated"), 1);
  EXPECT_EQ(scenario.stack->MetricSum("responder", "katy_shards_held"), 0);
}

// Slots move from one master to another (redis-cli --cluster reshard, as an operator adds
// capacity) while users are sending: the services follow ASK and MOVED, nothing is lost,
// nothing repeated, each user's replies in order.
TEST(ClusterStackTest, ReshardingDuringTrafficLosesNothing) {
  testing::RedisCluster cluster;
  ASSERT_TRUE(cluster.ready());
  testing::KatyStack stack({kEchoRules, {{"KATY_LEASE_TTL_MS", "2000"}, {"KATY_LOG_LEVEL", "info"}}, cluster.url()});
  ASSERT_TRUE(stack.ready());

  // The master serving slot 0 gives away its slots up to and including its first shard's.
  const int source = cluster.MasterOf(0);
  int last_slot = redis::kClusterSlots;
  int moved_shard = -1;
  for (int shard = 0; shard < kShards; ++shard) {
    const int slot = redis::KeySlot(kKeys.InStream(shard));
    if (cluster.MasterOf(slot) == source && slot < last_slot) {
      last_slot = slot;
      moved_shard = shard;
    }
  }
  ASSERT_GE(moved_shard, 0);
  int target = 0;
  for (int port : cluster.MasterPorts()) {
    if (port != source) target = port;
  }
  auto id_of = [](int port) {
    std::string id = testing::RunCommand("redis-cli -p " + std::to_string(port) + " CLUSTER MYID").output;
    return id.substr(0, id.find_first_of("\r\n"));
  };

  const testing::TrafficPlan plan{100, 10, 8, 200, "104560000000001", "r"};
  testing::WebhookTraffic traffic(stack.ingress_url(), testing::KatyStack::kAppSecret, plan);
  traffic.Start();
  std::this_thread::sleep_for(milliseconds(1500));
  const auto resharded = testing::RunCommand("redis-cli --cluster reshard 127.0.0.1:" + std::to_string(source) +
                                             " --cluster-from " + id_of(source) + " --cluster-to " + id_of(target) +
                                             " --cluster-slots " + std::to_string(last_slot + 1) + " --cluster-yes");
  traffic.Join();
  ASSERT_EQ(resharded.status, 0) << resharded.output;
  EXPECT_EQ(cluster.MasterOf(redis::KeySlot(kKeys.InStream(moved_shard))), target);

  const size_t expected = static_cast<size_t>(plan.users) * plan.messages_per_user;
  EXPECT_TRUE(testing::WaitFor([&] { return RepliesReceived(stack.emulator_url()) >= expected; }, seconds(60)))
      << "logs in " << stack.dir();
  EXPECT_TRUE(stack.WaitUntilDrained(seconds(30)));  // a duplicate would have arrived by then
  EXPECT_EQ(testing::UsersNotAnsweredExactlyOnceInOrder(plan, stack.emulator_url()), std::vector<std::string>{})
      << "logs in " << stack.dir();
  std::printf(
      "reshard accounting: %d slots (shard %d among them) moved from %d to %d during traffic; webhooks "
      "taken %d (retried %d times)\n",
      last_slot + 1, moved_shard, source, target, traffic.delivered(), traffic.retries());
}

// Reminders set on the shards of one master (the responder's commit waits for a replica:
// KATY_REDIS_WAIT_REPLICAS), which is killed before they fall due: a replica takes over, and
// each reminder still fires once, after the reply that set it.
// Privacy on a cluster (docs/privacy.md): katyctl forget and Meta's data deletion callback
// each leave no trace of their person on any master, and the other person's data stays.
TEST(ClusterStackTest, ForgetAndTheDataDeletionCallbackEraseAPersonOnACluster) {
  testing::RedisCluster cluster;
  ASSERT_TRUE(cluster.ready());
  testing::KatyStack stack({"fallback:\n  reply: \"echo: {{text}}\"\n",
                            {{"KATY_PUBLIC_URL", "https://bot.example.com"}, {"KATY_APP_ID", "1517776481860111"}},
                            cluster.url()});
  ASSERT_TRUE(stack.ready());
  const std::vector<std::string> people = {"7712340000000001", "7712340000000002", "7712340000000003"};
  for (const auto& psid : people) {
    testing::Say(stack, psid, "hello");
    testing::Say(stack, psid, "again");
  }
  for (const auto& psid : people) {
    ASSERT_TRUE(testing::WaitFor([&] { return testing::RepliesTo(stack, psid) >= 2; }, seconds(20)))
        << psid << "; logs in " << stack.dir();
  }
  const auto forgotten = testing::Katyctl(stack, "responder", "forget 1045 " + people[0]);
  ASSERT_EQ(forgotten.status, 0) << forgotten.output;
  EXPECT_NE(forgotten.output.find("conversation: 1"), std::string::npos) << forgotten.output;
  http::Client http;
  auto deletion =
      http.Post(stack.emulator_url() + "/_emulator/delete-user", nlohmann::json{{"psid", people[1]}}.dump());
  ASSERT_TRUE(deletion.ok() && deletion->status == 200);
  const auto answer = nlohmann::json::parse(deletion->body);
  ASSERT_EQ(answer["status"], 200) << deletion->body;
  const std::string url = answer["answer"]["url"];
  const std::string status_url = stack.ingress_url().substr(0, stack.ingress_url().rfind('/')) +
                                 url.substr(std::string("https://bot.example.com").size());
  ASSERT_TRUE(testing::WaitFor(
      [&] {
        auto page = http.Get(status_url);
        return page.ok() && page->body.find(": done.") != std::string::npos;
      },
      seconds(20)))
      << "logs in " << stack.dir();
  ASSERT_TRUE(stack.WaitUntilDrained(seconds(20)));
  redis::Client redis(*redis::ParseUrl(cluster.url()));
  EXPECT_EQ(testing::TracesOf(redis, people[0]), std::vector<std::string>{});
  EXPECT_EQ(testing::TracesOf(redis, people[1]), std::vector<std::string>{});
  EXPECT_FALSE(testing::TracesOf(redis, people[2]).empty());
}

TEST(ClusterStackTest, RemindersSetBeforeAMasterFailsOverFireOnce) {
  constexpr const char* kReminderRules = R"(
rules:
  - when: { keywords: [price] }
    reply: "20 EUR"
    remind: { after: 4s, name: NUDGE }
  - when: { timer: NUDGE }
    reply: "Still interested?"
)";
  testing::RedisCluster cluster;
  ASSERT_TRUE(cluster.ready());
  testing::KatyStack stack(
      {kReminderRules, {{"KATY_LEASE_TTL_MS", "2000"}, {"KATY_REDIS_WAIT_REPLICAS", "1"}}, cluster.url()});
  ASSERT_TRUE(stack.ready());
  const auto shard_masters = MasterOfShard(cluster);
  const int victim = shard_masters.at(0);
  std::vector<std::string> users;
  for (int n = 0; users.size() < 5; ++n) {
    const std::string user = "c" + std::to_string(n);
    if (shard_masters.at(ShardOf("1045", user, kShards)) == victim) users.push_back(user);
  }
  for (const auto& user : users) testing::Say(stack, user, "the price?");
  for (const auto& user : users) {
    ASSERT_TRUE(testing::WaitFor([&] { return testing::RepliesTo(stack, user) >= 1; }, seconds(15)))
        << user << "; logs in " << stack.dir();
  }
  cluster.Kill(victim);
  ASSERT_TRUE(cluster.WaitUntilServing(seconds(20))) << "no replica took over";
  ASSERT_TRUE(cluster.Restart(victim));
  for (const auto& user : users) {
    ASSERT_TRUE(testing::WaitFor([&] { return testing::RepliesTo(stack, user) >= 2; }, seconds(30)))
        << user << "; logs in " << stack.dir();
  }
  std::this_thread::sleep_for(seconds(2));
  for (const auto& user : users) {
    EXPECT_EQ(testing::ReplyTexts(stack, user), (std::vector<std::string>{"20 EUR", "Still interested?"})) << user;
  }
}

}  // namespace
}  // namespace katy
