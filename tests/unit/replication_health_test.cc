// What a Redis failure means to a consumer, and what a WAIT short of replicas means under each
// KATY_REDIS_WAIT_POLICY (issue 35). Pure logic: no Redis.
#include "common/redis/replication_health.h"

#include <gtest/gtest.h>

#include "common/redis/sharded_consumer.h"

namespace katy::redis {
namespace {

Options WaitingFor(int replicas, WaitPolicy policy) {
  Options options;
  options.wait_replicas = replicas;
  options.wait_policy = policy;
  return options;
}

TEST(ReplicationHealthTest, StrictFailsAnUnconfirmedWriteAndSaysItWasApplied) {
  const NodeAddress node{"10.0.0.7", 7001};
  auto judged = JudgeWait(Reply::Integer(0), WaitingFor(1, WaitPolicy::kStrict), node);
  ASSERT_FALSE(judged.ok());
  EXPECT_EQ(judged.error().code, ErrorCode::kTimeout);
  EXPECT_EQ(judged.error().reason, "under_replicated");
  EXPECT_NE(judged.error().message.find("the master applied it"), std::string::npos);
  EXPECT_NE(judged.error().message.find("10.0.0.7:7001"), std::string::npos);
  EXPECT_TRUE(ReplicationHealth::Process().UnderReplicated().at("10.0.0.7:7001"));

  EXPECT_TRUE(JudgeWait(Reply::Integer(1), WaitingFor(1, WaitPolicy::kStrict), node).ok());
  EXPECT_FALSE(ReplicationHealth::Process().UnderReplicated().at("10.0.0.7:7001"));
}

TEST(ReplicationHealthTest, DegradeLetsAnUnconfirmedWriteStandAndRecordsIt) {
  const NodeAddress node{"10.0.0.8", 7002};
  EXPECT_TRUE(JudgeWait(Reply::Integer(1), WaitingFor(2, WaitPolicy::kDegrade), node).ok());
  EXPECT_TRUE(ReplicationHealth::Process().UnderReplicated().at("10.0.0.8:7002"));
}

TEST(ReplicationHealthTest, AWaitThatNeverCameBackIsAConnectionFailureNotUnderReplication) {
  const NodeAddress node{"10.0.0.9", 7003};
  auto judged = JudgeWait(Error{ErrorCode::kIo, "connection reset"}, WaitingFor(1, WaitPolicy::kDegrade), node);
  ASSERT_FALSE(judged.ok());
  EXPECT_EQ(judged.error().code, ErrorCode::kIo);
  EXPECT_FALSE(ReplicationHealth::Process().UnderReplicated().contains("10.0.0.9:7003"));
}

TEST(ReplicationHealthTest, RedisOutOfServiceHoldsTheShardAndAWrongCommandIsRetried) {
  for (auto code : {ErrorCode::kIo, ErrorCode::kConnect, ErrorCode::kTimeout}) {
    EXPECT_EQ(HandleResult::RedisFailed(Error{code, "down"}).kind, HandleResult::Kind::kUnavailable);
  }
  const std::pair<const char*, const char*> unavailable[] = {
      {"IOERR connection refused", "redis_io"},
      {"NOREPLICAS WAIT: 0 of 1", "redis_under_replicated"},
      {"CLUSTERDOWN Hash slot not served", "redis_cluster_down"},
      {"TRYAGAIN Multiple keys request during rehashing of slot", "redis_try_again"},
      {"LOADING Redis is loading the dataset in memory", "redis_loading"},
      {"MASTERDOWN Link with MASTER is down", "redis_master_down"},
      {"READONLY You can't write against a read only replica.", "redis_readonly"},
      {"BUSY Redis is busy running a script.", "redis_busy"},
  };
  for (const auto& [text, reason] : unavailable) {
    const HandleResult result = HandleResult::RedisFailed(ReplyError(text));
    EXPECT_EQ(result.kind, HandleResult::Kind::kUnavailable) << text;
    EXPECT_EQ(result.reason, reason) << text;
  }
  for (const char* text : {"WRONGTYPE Operation against a key holding the wrong kind of value",
                           "ERR Error running script", "BUSYGROUP Consumer Group name already exists"}) {
    const HandleResult result = HandleResult::RedisFailed(ReplyError(text));
    EXPECT_EQ(result.kind, HandleResult::Kind::kRetry) << text;
    EXPECT_EQ(result.reason, "redis_reply") << text;
  }
}

}  // namespace
}  // namespace katy::redis
