// Where the sender keeps a message's delivered mark (services/sender/delivered_mark.h).
#include "services/sender/delivered_mark.h"

#include <gtest/gtest.h>

#include "common/bucketed_marks.h"

namespace katy::sender {
namespace {

using Commands = std::vector<std::vector<std::string>>;

constexpr int64_t kCreated = 1'765'000'002'123;  // 2'123 ms into its 5 s bucket

katy::v1::OutboundMessage Message(const std::string& id, int64_t created_ms) {
  katy::v1::OutboundMessage message;
  message.set_id(id);
  message.set_page_id("1045");
  message.set_recipient_id("u1");
  message.set_created_at_ms(created_ms);
  return message;
}

// Every attempt of a reply finds its mark in the bucket of the reply's creation time, however
// late it comes; the bucket is kept for the TTL from its end or from the record, the later.
TEST(DeliveredMarkTest, AReplysMarkIsADigestInTheBucketOfItsCreationTime) {
  const KeySpace keys("katy", 16);
  const auto reply = Message("1765000002100-0#0", kCreated);
  const std::string bucket = keys.SentBucket(3, kCreated / kSentBucketMs);
  const std::string digest = std::to_string(MarkDigest("1045", reply.id()));
  const DeliveredMark first(keys, 3, reply, kCreated - 1);
  const DeliveredMark much_later(keys, 3, reply, kCreated + 3600 * 1000);

  EXPECT_EQ(first.Check(), (std::vector<std::string>{"SISMEMBER", bucket, digest}));
  EXPECT_EQ(much_later.Check(), first.Check());
  const int64_t bucket_end_s = (kCreated / kSentBucketMs + 1) * kSentBucketMs / 1000;
  EXPECT_EQ(first.Record("m_1", std::chrono::seconds(60), kCreated + 100),
            (Commands{{"SADD", bucket, digest}, {"EXPIREAT", bucket, std::to_string(bucket_end_s + 60)}}));
  EXPECT_EQ(first.Keep(std::chrono::seconds(60), kCreated + 100),
            (Commands{{"EXPIREAT", bucket, std::to_string(bucket_end_s + 60)}}));
  const int64_t late_ms = kCreated + 3600 * 1000;
  EXPECT_EQ(first.Record("m_1", std::chrono::seconds(60), late_ms)[1][2], std::to_string(late_ms / 1000 + 60))
      << "recorded late: kept for the TTL from now";
  EXPECT_NE(DeliveredMark(keys, 3, Message("1765000002100-0#1", kCreated), 0).Check(), first.Check());

  // Created after the sender started: no mark of its own from before buckets can exist.
  EXPECT_EQ(first.legacy_key(), "");
  // Created before: one may, and is checked too.
  EXPECT_EQ(much_later.legacy_key(), keys.Sent(3, reply.id()));
}

// The outbound API reports a message's state with Meta's id, which its mark holds; a message
// without a creation time has no bucket. Both keep a key of their own with its TTL.
TEST(DeliveredMarkTest, AnOutboundApiMessageOrOneWithoutACreationTimeHasAMarkOfItsOwn) {
  const KeySpace keys("katy", 16);
  for (const auto& message : {Message("api:1045:u1:k1", kCreated), Message("9-0#0", 0)}) {
    const DeliveredMark mark(keys, 3, message, kCreated + 1000);
    const std::string own = keys.Sent(3, message.id());
    EXPECT_EQ(mark.Check(), (std::vector<std::string>{"EXISTS", own}));
    EXPECT_EQ(mark.Record("m_7", std::chrono::seconds(60), kCreated), (Commands{{"SET", own, "m_7", "EX", "60"}}));
    EXPECT_TRUE(mark.Keep(std::chrono::seconds(60), kCreated).empty());
    EXPECT_EQ(mark.legacy_key(), "");
  }
}

}  // namespace
}  // namespace katy::sender
