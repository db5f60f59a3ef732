#include "common/redis/cluster_slots.h"

#include <gtest/gtest.h>

#include "common/config.h"

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

// Where Katy's commands keep their keys, and what makes a command unroutable.
TEST(ClusterSlotsTest, CommandsAreRoutedByTheirKeys) {
  const int in = KeySlot("katy:{s03}:in");
  EXPECT_EQ(CommandSlot({"XADD", "katy:{s03}:in", "*", "pb", "x"}), in);
  EXPECT_EQ(CommandSlot({"evalsha", "sha", "2", "katy:{s03}:in", "katy:{s03}:seen:a", "86400", "pb"}), in);
  EXPECT_EQ(CommandSlot({"EVALSHA", "sha", "2", "katy:{s03}:in", "katy:{s04}:in"}), kCrossSlot);
  EXPECT_EQ(CommandSlot({"EVALSHA", "sha", "0", "arg"}), kNoKey);
  EXPECT_EQ(CommandSlot({"EVALSHA", "sha", "nan", "k"}), kNoKey);
  EXPECT_EQ(CommandSlot({"XREADGROUP", "GROUP", "g", "c", "COUNT", "10", "BLOCK", "5", "STREAMS", "katy:{s03}:in",
                         "katy:{s03}:out", ">", ">"}),
            in);
  EXPECT_EQ(CommandSlot({"XREADGROUP", "GROUP", "g", "c", "streams", "katy:{s03}:in", "katy:{s04}:in", ">", ">"}),
            kCrossSlot);
  EXPECT_EQ(CommandSlot({"XGROUP", "CREATE", "katy:{s03}:in", "g", "0", "MKSTREAM"}), in);
  EXPECT_EQ(CommandSlot({"XINFO", "GROUPS", "katy:{s03}:in"}), in);
  EXPECT_EQ(CommandSlot({"DEL", "katy:{s03}:a", "katy:{s03}:b"}), in);
  EXPECT_EQ(CommandSlot({"EXISTS", "katy:{s03}:a", "katy:{s04}:b"}), kCrossSlot);
  for (const char* keyless : {"PING", "TIME", "INFO", "SCRIPT", "CLUSTER", "WAIT", "SCAN"}) {
    EXPECT_EQ(CommandSlot({keyless, "x"}), kNoKey) << keyless;
  }
  EXPECT_EQ(CommandSlot({"PING"}), kNoKey);
  EXPECT_EQ(CommandSlot({"HGETALL", "katy:rate:123"}), KeySlot("katy:rate:123"));
}

// A MOVED redirection moves one slot; a map that agrees with another on every slot is the same.
TEST(ClusterSlotsTest, MovedCorrectsOneSlotAndMapsCompareBySlot) {
  auto node = [](const std::string& host, long long port) {
    Reply reply;
    reply.type = Reply::Type::kArray;
    Reply h;
    h.type = Reply::Type::kString;
    h.str = host;
    Reply p;
    p.type = Reply::Type::kInteger;
    p.integer = port;
    reply.elements = {h, p};
    return reply;
  };
  auto range = [&](long long start, long long end, const Reply& master) {
    Reply reply;
    reply.type = Reply::Type::kArray;
    Reply s;
    s.type = Reply::Type::kInteger;
    s.integer = start;
    Reply e = s;
    e.integer = end;
    reply.elements = {s, e, master};
    return reply;
  };
  Reply slots;
  slots.type = Reply::Type::kArray;
  slots.elements = {range(0, 8191, node("a", 1)), range(8192, 16383, node("b", 2))};
  auto map = SlotMap::FromClusterSlots(slots);
  ASSERT_TRUE(map.ok());
  auto same = SlotMap::FromClusterSlots(slots);
  EXPECT_TRUE(map->SameAs(*same));
  map->Moved(100, {"b", 2});
  EXPECT_EQ(map->MasterOf(100), (NodeAddress{"b", 2}));
  EXPECT_EQ(map->MasterOf(101), (NodeAddress{"a", 1}));
  EXPECT_FALSE(map->SameAs(*same));
  EXPECT_EQ(map->Masters().size(), 2u);
}

// One node or a cluster's seed nodes, with or without a password.
TEST(ClusterSlotsTest, UrlsNameOneNodeOrSeveralSeeds) {
  auto one = ParseUrl("redis://:secret@10.0.0.1:7000/2");
  ASSERT_TRUE(one.ok());
  EXPECT_EQ(one->password, "secret");
  EXPECT_EQ(one->db, 2);
  EXPECT_EQ(one->seeds, (std::vector<NodeAddress>{{"10.0.0.1", 7000}}));
  EXPECT_EQ(one->host, "10.0.0.1");
  auto seeds = ParseUrl("redis://a:7000,b:7001,[::1]:7002,c/0");
  ASSERT_TRUE(seeds.ok());
  EXPECT_EQ(seeds->seeds, (std::vector<NodeAddress>{{"a", 7000}, {"b", 7001}, {"::1", 7002}, {"c", 6379}}));
  EXPECT_EQ(ParseUrl("redis://").value().seeds, (std::vector<NodeAddress>{{"127.0.0.1", 6379}}));
  EXPECT_FALSE(ParseUrl("redis://a:7000,b:x/0").ok());
  EXPECT_FALSE(ParseUrl("http://a:1").ok());
}

// A password may hold every character a generator produces; the parser and every message
// about the URL agree on where it ends (the last '@').
TEST(ClusterSlotsTest, PasswordsWithUrlCharactersParseAndNeverShowInErrors) {
  for (const std::string password : {"p/ss@w:rd%41", "a@b@c", "x/y/z", "%2F:%40"}) {
    auto parsed = ParseUrl("redis://katy:" + password + "@db:7000/1");
    ASSERT_TRUE(parsed.ok()) << password;
    EXPECT_EQ(parsed->username, "katy");
    EXPECT_EQ(parsed->password, password);
    EXPECT_EQ(parsed->seeds, (std::vector<NodeAddress>{{"db", 7000}}));
    EXPECT_EQ(parsed->db, 1);
    EXPECT_EQ(parsed->AuthCommand(), (std::vector<std::string>{"AUTH", "katy", password}));
    const std::string redacted = config::RedactUrlCredentials("redis://katy:" + password + "@db:7000/1");
    EXPECT_EQ(redacted, "redis://[redacted]@db:7000/1");
    auto wrong_scheme = ParseUrl("http://:" + password + "@db:7000/0");
    ASSERT_FALSE(wrong_scheme.ok());
    EXPECT_EQ(wrong_scheme.error().message.find(password), std::string::npos) << wrong_scheme.error().message;
  }
  EXPECT_EQ(ParseUrl("redis://:only@db")->AuthCommand(), (std::vector<std::string>{"AUTH", "only"}));
  EXPECT_TRUE(ParseUrl("redis://db")->AuthCommand().empty());
  auto tls = ParseUrl("rediss://:pw@db:6380/0");
  ASSERT_FALSE(tls.ok());
  EXPECT_NE(tls.error().message.find("docs/security.md"), std::string::npos);
}

}  // namespace
}  // namespace katy::redis
