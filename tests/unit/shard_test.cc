#include "common/shard.h"

#include <gtest/gtest.h>

#include <set>

namespace katy {
namespace {

TEST(ShardTest, Fnv1a64KnownVectors) {
  EXPECT_EQ(Fnv1a64(""), 0xcbf29ce484222325ULL);
  EXPECT_EQ(Fnv1a64("a"), 0xaf63dc4c8601ec8cULL);
  EXPECT_EQ(Fnv1a64("foobar"), 0x85944171f73967e8ULL);
}

TEST(ShardTest, ShardIsStableAndInRangeAndSpreads) {
  EXPECT_EQ(ShardOf("104560000000001", "7100000000000001", 16),
            static_cast<int>(Fnv1a64("104560000000001:7100000000000001") % 16));
  std::set<int> seen;
  for (int user = 0; user < 1000; ++user) {
    int shard = ShardOf("page", "user" + std::to_string(user), 16);
    ASSERT_GE(shard, 0);
    ASSERT_LT(shard, 16);
    seen.insert(shard);
  }
  EXPECT_EQ(seen.size(), 16u);
}

TEST(ShardTest, KeyNamesCarryTheShardHashTag) {
  KeySpace keys("katy", 16);
  EXPECT_EQ(keys.InStream(7), "katy:{s07}:in");
  EXPECT_EQ(keys.OutStream(12), "katy:{s12}:out");
  EXPECT_EQ(keys.DeadLetters(0), "katy:{s00}:dlq");
  EXPECT_EQ(keys.SeenPrefix(3), "katy:{s03}:seen:");
  EXPECT_EQ(keys.Conversation(7, "p", "u"), "katy:{s07}:conv:p:u");
  EXPECT_EQ(keys.Sent(7, "1-0#0"), "katy:{s07}:sent:1-0#0");
  EXPECT_EQ(keys.Lease(7, "responder"), "katy:{s07}:lease:responder");
  EXPECT_EQ(keys.Members("sender"), "katy:members:sender");
  EXPECT_EQ(keys.Rate("p"), "katy:rate:p");
  EXPECT_EQ(KeySpace("acme", 16).InStream(1), "acme:{s01}:in");
}

}  // namespace
}  // namespace katy
