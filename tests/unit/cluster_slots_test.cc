#include "common/redis/cluster_slots.h"

#include <gtest/gtest.h>

namespace katy::redis {
namespace {

// The cluster specification's check value and the examples of the CLUSTER KEYSLOT page.
TEST(ClusterSlotsTest, SlotsMatchRedisDocumentedValues) {
  EXPECT_EQ(Crc16("123456789"), 0x31C3);
  EXPECT_EQ(KeySlot("somekey"), 11058);
  EXPECT_EQ(KeySlot("foo{hash_tag}"), 2515);
  EXPECT_EQ(KeySlot("bar{hash_tag}"), 2515);
}

// The hash tag rules of the specification, with its own examples.
TEST(ClusterSlotsTest, OnlyTheFirstNonEmptyHashTagIsHashed) {
  EXPECT_EQ(HashTagOf("{user1000}.following"), "user1000");
  EXPECT_EQ(HashTagOf("foo{}{bar}"), "foo{}{bar}");  // an empty tag: the whole key
  EXPECT_EQ(HashTagOf("foo{{bar}}zap"), "{bar");
  EXPECT_EQ(HashTagOf("foo{bar}{zap}"), "bar");
  EXPECT_EQ(HashTagOf("no-tag"), "no-tag");
  EXPECT_EQ(HashTagOf("open{only"), "open{only");
  // Katy's keys: every key of a shard lives in the slot of its tag.
  EXPECT_EQ(KeySlot("katy:{s03}:in"), KeySlot("s03"));
  EXPECT_EQ(KeySlot("katy:{s03}:in"), KeySlot("katy:{s03}:out"));
}

TEST(ClusterSlotsTest, RedirectionsAreReadAndAnythingElseIsNot) {
  auto moved = ParseRedirection("MOVED 3999 127.0.0.1:6381");
  ASSERT_TRUE(moved.has_value());
  EXPECT_EQ(moved->kind, Redirection::Kind::kMoved);
  EXPECT_EQ(moved->slot, 3999);
  EXPECT_EQ(moved->node, (NodeAddress{"127.0.0.1", 6381}));
  auto ask = ParseRedirection("ASK 12 ::1:7000");
  ASSERT_TRUE(ask.has_value());
  EXPECT_EQ(ask->kind, Redirection::Kind::kAsk);
  EXPECT_EQ(ask->node, (NodeAddress{"::1", 7000}));
  for (const char* other : {"ERR unknown command", "MOVED", "MOVED x 1.2.3.4:5", "MOVED 16384 h:1", "MOVED 1 h:0",
                            "MOVED 1 nohostport", "ASK 1 :80"}) {
    EXPECT_FALSE(ParseRedirection(other).has_value()) << other;
  }
}

Reply Integer(long long value) {
  Reply reply;
  reply.type = Reply::Type::kInteger;
  reply.integer = value;
  return reply;
}
Reply String(std::string value) {
  Reply reply;
  reply.type = Reply::Type::kString;
  reply.str = std::move(value);
  return reply;
}
Reply Array(std::vector<Reply> elements) {
  Reply reply;
  reply.type = Reply::Type::kArray;
  reply.elements = std::move(elements);
  return reply;
}
// One CLUSTER SLOTS range: master first, then a replica.
Reply Range(int start, int end, int master_port, int replica_port) {
  return Array({Integer(start), Integer(end), Array({String("127.0.0.1"), Integer(master_port), String("id-m")}),
                Array({String("127.0.0.1"), Integer(replica_port), String("id-r")})});
}

TEST(ClusterSlotsTest, TheMapFollowsClusterSlotsAndMoved) {
  auto map = SlotMap::FromClusterSlots(
      Array({Range(0, 5460, 7000, 7003), Range(5461, 10922, 7001, 7004), Range(10923, 16383, 7002, 7005)}));
  ASSERT_TRUE(map.ok());
  EXPECT_EQ(map->MasterOf(0), (NodeAddress{"127.0.0.1", 7000}));
  EXPECT_EQ(map->MasterOf(5461), (NodeAddress{"127.0.0.1", 7001}));
  EXPECT_EQ(map->MasterOf(16383), (NodeAddress{"127.0.0.1", 7002}));
  EXPECT_EQ(map->Masters().size(), 3u);
  EXPECT_FALSE(map->MasterOf(16384).has_value());

  // A failover: the replica now answers for the slots it took over, one MOVED at a time.
  map->Moved(0, {"127.0.0.1", 7003});
  EXPECT_EQ(map->MasterOf(0), (NodeAddress{"127.0.0.1", 7003}));
  EXPECT_EQ(map->MasterOf(1), (NodeAddress{"127.0.0.1", 7000}));
  EXPECT_EQ(map->Masters().size(), 4u);
}

TEST(ClusterSlotsTest, UncoveredSlotsAndMalformedRepliesAreSaidSo) {
  auto partial = SlotMap::FromClusterSlots(Array({Range(0, 99, 7000, 7003)}));
  ASSERT_TRUE(partial.ok());
  EXPECT_FALSE(partial->MasterOf(100).has_value());
  EXPECT_FALSE(SlotMap::FromClusterSlots(String("no")).ok());
  EXPECT_FALSE(SlotMap::FromClusterSlots(Array({Array({Integer(0), Integer(20000), Array({})})})).ok());
  EXPECT_FALSE(SlotMap::FromClusterSlots(Array({Range(10, 5, 7000, 7003)})).ok());
}

}  // namespace
}  // namespace katy::redis
