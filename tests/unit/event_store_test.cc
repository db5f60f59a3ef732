#include "services/ingress/event_store.h"

#include <gtest/gtest.h>

namespace katy::ingress {
namespace {

katy::v1::InboundEvent Event(const std::string& user, int64_t timestamp, const std::string& mid) {
  katy::v1::InboundEvent event;
  event.set_page_id("1045");
  event.set_user_id(user);
  event.set_timestamp_ms(timestamp);
  event.set_dedupe_key(mid);
  return event;
}

TEST(PlanEnqueueTest, OneCallPerShardWithItsEventsInTimestampOrder) {
  const KeySpace keys("katy", 16);
  // u1 and u2 are chosen on different shards; u1's events arrive out of order.
  std::string u2 = "u2";
  for (int i = 3; ShardOf("1045", u2, 16) == ShardOf("1045", "u1", 16); ++i) u2 = "u" + std::to_string(i);
  const std::vector<katy::v1::InboundEvent> events = {Event("u1", 300, "m3"), Event(u2, 100, "m9"),
                                                      Event("u1", 100, "m1"), Event("u1", 300, "m4")};
  const auto calls = PlanEnqueue(events, keys, std::chrono::seconds(60));
  ASSERT_EQ(calls.size(), 2u);
  for (const auto& planned : calls) {
    const int shard = ShardOf("1045", events[planned.events.front()].user_id(), 16);
    ASSERT_EQ(planned.call.keys.size(), planned.events.size() + 1);
    EXPECT_EQ(planned.call.keys[0], keys.InStream(shard));
    EXPECT_EQ(planned.call.args[0], "60");
    for (size_t k = 0; k < planned.events.size(); ++k) {
      const auto& event = events[planned.events[k]];
      EXPECT_EQ(ShardOf("1045", event.user_id(), 16), shard);
      // Every key of a call is under the shard's hash tag (valid in Redis Cluster).
      EXPECT_EQ(planned.call.keys[k + 1], keys.SeenPrefix(shard) + "1045:" + event.dedupe_key());
      EXPECT_EQ(planned.call.args[k + 1], event.SerializeAsString());
    }
  }
  const auto& u1_call =
      ShardOf("1045", "u1", 16) == ShardOf("1045", events[calls[0].events[0]].user_id(), 16) ? calls[0] : calls[1];
  // By timestamp, body order kept for equal timestamps.
  EXPECT_EQ(u1_call.events, (std::vector<size_t>{2, 0, 3}));
}

TEST(PlanEnqueueTest, ABigRequestIsStoredInBoundedCallsInOrder) {
  // One user's 1,000 events (one shard) become calls of at most kMaxEventsPerCall, so no
  // script holds Redis for long; together they keep the events' order.
  std::vector<katy::v1::InboundEvent> events;
  for (int i = 0; i < 1000; ++i) events.push_back(Event("u1", i, "m" + std::to_string(i)));
  const auto calls = PlanEnqueue(events, KeySpace("katy", 16), std::chrono::seconds(60));
  ASSERT_EQ(calls.size(), (1000 + kMaxEventsPerCall - 1) / kMaxEventsPerCall);
  size_t next = 0;
  for (const auto& planned : calls) {
    EXPECT_LE(planned.events.size(), kMaxEventsPerCall);
    EXPECT_EQ(planned.call.keys.size(), planned.events.size() + 1);
    for (size_t index : planned.events) EXPECT_EQ(index, next++);
  }
  EXPECT_EQ(next, 1000u);
}

TEST(PlanEnqueueTest, NoEventsNoCalls) {
  EXPECT_TRUE(PlanEnqueue({}, KeySpace("katy", 16), std::chrono::seconds(60)).empty());
}

}  // namespace
}  // namespace katy::ingress
