// A Redis master that loses its replica (issue 35), on one Redis and its replica so that the
// failure is exact: with KATY_REDIS_WAIT_REPLICAS=1, what the policy does when no replica
// confirms a write. strict: ingress refuses (Meta retries), the consumers hold the master's
// shards — no dead letter, however long — and resume by themselves once a replica is attached.
// degrade: everything goes on, and katy_redis_under_replicated says the writes are unconfirmed.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <thread>

#include "common/http/http_client.h"
#include "common/redis/redis_client.h"
#include "common/shard.h"
#include "tests/support/katy_stack.h"

namespace katy {
namespace {

using testing::Katyctl;
using testing::ReplyTexts;
using testing::Say;

constexpr const char* kRules = R"(
rules:
  - when: { keywords: [hello] }
    reply: "hi there"
fallback:
  reply: "echo: {{text}}"
)";

// A master on a port of its own, and a replica of it that can die and be replaced.
class MasterAndReplica {
 public:
  MasterAndReplica() {
    master_ = testing::StartPrivateRedis(master_port_, testing::MakeTempDir("degraded-redis-master"));
  }
  std::string url() const { return "redis://127.0.0.1:" + std::to_string(master_port_) + "/0"; }

  // Starts a replica and waits until the master counts it.
  void AttachReplica() {
    replica_ = testing::StartPrivateRedis(replica_port_, testing::MakeTempDir("degraded-redis-replica"),
                                          {"--replicaof", "127.0.0.1", std::to_string(master_port_)});
    ASSERT_TRUE(testing::WaitFor([this] { return ConnectedReplicas() == 1; }, std::chrono::seconds(15)));
  }
  // SIGKILL: a machine that died.
  void KillReplica() {
    replica_->Kill();
    ASSERT_TRUE(testing::WaitFor([this] { return ConnectedReplicas() == 0; }, std::chrono::seconds(15)));
  }

  // Entries in every shard's dead-letter stream.
  long long DeadLetters() {
    redis::Client client(*redis::ParseUrl(url()));
    const KeySpace keys("katy", 16);
    long long total = 0;
    for (int shard = 0; shard < keys.shards(); ++shard) {
      auto length = client.Command({"XLEN", keys.DeadLetters(shard)});
      EXPECT_TRUE(length.ok());
      if (length) total += length->integer;
    }
    return total;
  }

 private:
  int ConnectedReplicas() {
    redis::Client client(*redis::ParseUrl(url()));
    auto info = client.Command({"INFO", "replication"});
    if (!info) return -1;
    const std::string& text = info->str;
    const auto at = text.find("connected_slaves:");
    if (at == std::string::npos) return -1;
    return std::atoi(text.c_str() + at + 17);
  }

  int master_port_ = testing::FreePort();
  int replica_port_ = testing::FreePort();
  std::unique_ptr<testing::Process> master_;
  std::unique_ptr<testing::Process> replica_;
};

std::map<std::string, std::string> WaitSettings(const std::string& policy) {
  return {{"KATY_REDIS_WAIT_REPLICAS", "1"},
          {"KATY_REDIS_WAIT_TIMEOUT_MS", "300"},
          {"KATY_REDIS_WAIT_POLICY", policy},
          // A retry budget an outage of a few seconds outlasts many times over.
          {"KATY_MAX_ATTEMPTS", "2"}};
}

// One signed Messenger text message from `psid` to page 1045, straight to ingress: its status.
int PostWebhook(const testing::KatyStack& stack, const std::string& psid, const std::string& text) {
  const auto now =
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
          .count();
  const nlohmann::json body{
      {"object", "page"},
      {"entry",
       {{{"id", "1045"},
         {"time", now},
         {"messaging",
          {{{"sender", {{"id", psid}}},
            {"recipient", {{"id", "1045"}}},
            {"timestamp", now},
            {"message", {{"mid", "m-" + psid + "-" + std::to_string(now)}, {"text", text}}}}}}}}}};
  const std::string raw = body.dump();
  http::Client http;
  auto posted = http.Post(stack.ingress_url(), raw, testing::SignedWebhookHeaders(testing::KatyStack::kAppSecret, raw));
  return posted ? posted->status : 0;
}

bool RepliesAre(const testing::KatyStack& stack, const std::string& psid, const std::vector<std::string>& expected) {
  return testing::WaitFor([&] { return ReplyTexts(stack, psid) == expected; }, std::chrono::seconds(20));
}

TEST(DegradedRedisTest, StrictHoldsAMasterWithoutReplicasAndResumesWhenOneIsAttached) {
  MasterAndReplica redis;
  ASSERT_NO_FATAL_FAILURE(redis.AttachReplica());
  testing::KatyStack stack({kRules, WaitSettings("strict"), redis.url()});
  ASSERT_TRUE(stack.ready());
  Say(stack, "100", "hello");
  ASSERT_TRUE(RepliesAre(stack, "100", {"hi there"}));

  // Events acknowledged while the replica lived, handled after it died.
  ASSERT_EQ(Katyctl(stack, "responder", "pause").status, 0);
  for (const char* text : {"one", "two", "three"}) Say(stack, "200", text);
  for (const char* text : {"a", "b"}) Say(stack, "300", text);
  ASSERT_NO_FATAL_FAILURE(redis.KillReplica());
  ASSERT_EQ(Katyctl(stack, "responder", "resume").status, 0);

  EXPECT_TRUE(testing::WaitFor([&] { return stack.MetricSum("responder", "katy_shards_held") >= 1; },
                               std::chrono::seconds(10)));
  EXPECT_EQ(PostWebhook(stack, "400", "refused"), 503) << "ingress must not acknowledge an unconfirmed write";
  // Many retry budgets (2 attempts, 100-200 ms apart) pass: nothing is sent, nothing given up.
  std::this_thread::sleep_for(std::chrono::seconds(4));
  EXPECT_TRUE(ReplyTexts(stack, "200").empty());
  EXPECT_TRUE(ReplyTexts(stack, "300").empty());
  EXPECT_EQ(redis.DeadLetters(), 0);
  EXPECT_EQ(stack.MetricSum("responder", "katy_redis_under_replicated"), 1);
  EXPECT_GE(stack.MetricSum("responder", "katy_shard_stalled_seconds"), 2);
  const auto status = Katyctl(stack, "responder", "status");
  EXPECT_NE(status.output.find("HELD shard"), std::string::npos) << status.output;
  EXPECT_NE(status.output.find("redis_under_replicated"), std::string::npos) << status.output;

  ASSERT_NO_FATAL_FAILURE(redis.AttachReplica());
  EXPECT_TRUE(RepliesAre(stack, "200", {"echo: one", "echo: two", "echo: three"}))
      << ::testing::PrintToString(ReplyTexts(stack, "200"));
  EXPECT_TRUE(RepliesAre(stack, "300", {"echo: a", "echo: b"}));
  EXPECT_EQ(redis.DeadLetters(), 0);
  EXPECT_TRUE(testing::WaitFor(
      [&] {
        return stack.MetricSum("responder", "katy_shards_held") == 0 &&
               stack.MetricSum("sender", "katy_shards_held") == 0 &&
               stack.MetricSum("responder", "katy_redis_under_replicated") == 0;
      },
      std::chrono::seconds(10)));
  EXPECT_EQ(PostWebhook(stack, "400", "welcome back"), 200);
  EXPECT_EQ(stack.AllLogs().find("dead-lettered"), std::string::npos);
}

TEST(DegradedRedisTest, DegradeGoesOnWithoutReplicasAndSaysSo) {
  MasterAndReplica redis;  // no replica ever
  testing::KatyStack stack({kRules, WaitSettings("degrade"), redis.url()});
  ASSERT_TRUE(stack.ready());
  Say(stack, "100", "hello");
  ASSERT_TRUE(RepliesAre(stack, "100", {"hi there"}));
  EXPECT_EQ(PostWebhook(stack, "100", "more"), 200);
  EXPECT_TRUE(RepliesAre(stack, "100", {"hi there", "echo: more"}));
  for (const char* service : {"ingress", "responder", "sender"}) {
    EXPECT_EQ(stack.MetricSum(service, "katy_redis_under_replicated"), 1) << service;
  }
  for (const char* service : {"responder", "sender"}) EXPECT_EQ(stack.MetricSum(service, "katy_shards_held"), 0);
  EXPECT_EQ(redis.DeadLetters(), 0);
  EXPECT_NE(stack.AllLogs().find("KATY_REDIS_WAIT_POLICY=degrade"), std::string::npos);
}

// One Redis, stopped (SIGKILL) while replies are on their way and kept down for many retry
// budgets: nothing is dead-lettered for it, and once it is back every reply goes out, in order.
TEST(DegradedRedisTest, ARedisDownLongerThanEveryRetryBudgetDeadLettersNothing) {
  testing::KatyStack stack({kRules, {{"KATY_MAX_ATTEMPTS", "2"}}});
  ASSERT_TRUE(stack.ready());
  http::Client http;
  // A Send API as slow as Meta's: the replies are still going out when Redis stops.
  auto slow = http.Post(stack.emulator_url() + "/_emulator/faults", R"({"latency_ms": [800, 800]})");
  ASSERT_TRUE(slow && slow->status == 200);
  const std::vector<std::string> users{"500", "501"};
  std::vector<std::string> expected;
  for (int n = 0; n < 5; ++n) {
    expected.push_back("echo: m" + std::to_string(n));
    for (const auto& user : users) Say(stack, user, "m" + std::to_string(n));
  }
  // Past appendfsync everysec, so the AOF has every acknowledged event.
  std::this_thread::sleep_for(std::chrono::milliseconds(1200));
  stack.StopRedis();
  // Two attempts 100-200 ms apart, many times over; and longer than a sender retries a delivery
  // record in place (SenderHandler::kRecordRetryFor), so the record is given up.
  std::this_thread::sleep_for(std::chrono::seconds(8));
  stack.StartRedis();

  for (const auto& user : users) {
    // A reply whose delivery record died with Redis may go twice (counted), right after itself.
    std::vector<std::string> distinct;
    EXPECT_TRUE(testing::WaitFor(
        [&] {
          distinct.clear();
          for (const auto& text : ReplyTexts(stack, user)) {
            if (distinct.empty() || distinct.back() != text) distinct.push_back(text);
          }
          return distinct == expected;
        },
        std::chrono::seconds(30)))
        << user << " got " << ::testing::PrintToString(distinct);
  }
  redis::Client client(*redis::ParseUrl(stack.redis_url()));
  const KeySpace keys("katy", 16);
  for (int shard = 0; shard < keys.shards(); ++shard) {
    EXPECT_EQ(client.Command({"XLEN", keys.DeadLetters(shard)})->integer, 0) << "shard " << shard;
  }
  EXPECT_EQ(stack.AllLogs().find("dead-lettered"), std::string::npos);
  // The outage met delivery records, retried in place and then left to a resend. Whether a shard
  // is also held depends on timing: the streams' read usually fails first, dropping every shard's
  // queue to claim it again, and a record failing after that is of a dropped generation, which
  // holds nothing (ConsumerTest.AnAnswerFromALostLeaseFindingRedisOutHoldsNothingBack).
  EXPECT_NE(stack.AllLogs().find("delivered but not recorded"), std::string::npos);
}

}  // namespace
}  // namespace katy
