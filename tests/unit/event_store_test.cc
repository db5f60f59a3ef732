#include "services/ingress/event_store.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <set>

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

constexpr int64_t kNow = 1764230400000;
const MarkTimes kTimes{std::chrono::seconds(60), kNow, 0, {}};

TEST(PlanEnqueueTest, OneCallPerShardWithItsEventsInTimestampOrder) {
  const KeySpace keys("katy", 16);
  // u1 and u2 are chosen on different shards; u1's events arrive out of order.
  std::string u2 = "u2";
  for (int i = 3; ShardOf("1045", u2, 16) == ShardOf("1045", "u1", 16); ++i) u2 = "u" + std::to_string(i);
  const std::vector<katy::v1::InboundEvent> events = {Event("u1", kNow + 300, "m3"), Event(u2, kNow + 100, "m9"),
                                                      Event("u1", kNow + 100, "m1"), Event("u1", kNow + 300, "m4")};
  const auto calls = PlanEnqueue(events, keys, kTimes);
  ASSERT_EQ(calls.size(), 2u);
  for (const auto& planned : calls) {
    const int shard = ShardOf("1045", events[planned.events.front()].user_id(), 16);
    ASSERT_EQ(planned.call.keys.size(), planned.events.size() + 1);
    ASSERT_EQ(planned.call.args.size(), 4 * planned.events.size() + 1);
    EXPECT_EQ(planned.call.keys[0], keys.InStream(shard));
    EXPECT_EQ(planned.call.args[0], "60");
    for (size_t k = 0; k < planned.events.size(); ++k) {
      const auto& event = events[planned.events[k]];
      EXPECT_EQ(ShardOf("1045", event.user_id(), 16), shard);
      // Every key of a call is under the shard's hash tag (valid in Redis Cluster).
      EXPECT_EQ(planned.call.keys[k + 1], keys.SeenBucket(shard, event.timestamp_ms() / kSeenBucketMs));
      EXPECT_EQ(planned.call.args[4 * k + 1], "b");
      EXPECT_EQ(planned.call.args[4 * k + 2], std::to_string(MarkDigest("1045", event.dedupe_key())));
      EXPECT_EQ(planned.call.args[4 * k + 4], event.SerializeAsString());
    }
  }
  const auto& u1_call =
      ShardOf("1045", "u1", 16) == ShardOf("1045", events[calls[0].events[0]].user_id(), 16) ? calls[0] : calls[1];
  // By timestamp, body order kept for equal timestamps.
  EXPECT_EQ(u1_call.events, (std::vector<size_t>{2, 0, 3}));
}

// On one Redis, the shards' events share a call: each shard's stream is named ("s") before its
// events, which keep their order; the call's size stays bounded across shards.
TEST(PlanEnqueueTest, OnOneRedisTheShardsShareCallsEachStreamNamedBeforeItsEvents) {
  const KeySpace keys("katy", 16);
  std::vector<std::string> users{"u1"};
  for (int i = 2; users.size() < 3; ++i) {
    const std::string user = "u" + std::to_string(i);
    bool apart = true;
    for (const auto& other : users) apart = apart && ShardOf("1045", user, 16) != ShardOf("1045", other, 16);
    if (apart) users.push_back(user);
  }
  std::vector<katy::v1::InboundEvent> events;
  for (int i = 0; i < 6; ++i) events.push_back(Event(users[i % 3], kNow + 100 - i, "m" + std::to_string(i)));
  const auto calls = PlanEnqueue(events, keys, kTimes, /*one_node=*/true);
  ASSERT_EQ(calls.size(), 1u);
  const auto& call = calls[0].call;
  ASSERT_EQ(call.keys.size(), 3u + 6u);
  ASSERT_EQ(call.args.size(), 1u + 4 * (2u + 6u));
  // Walk the call as the script does: each event goes to the stream named last.
  std::string stream = call.keys[0];
  size_t key = 1;
  size_t event = 0;
  std::set<std::string> streams{stream};
  for (size_t a = 1; a < call.args.size(); a += 4) {
    if (call.args[a] == "s") {
      stream = call.keys[key++];
      streams.insert(stream);
      continue;
    }
    const auto& planned = events[calls[0].events[event++]];
    const int shard = ShardOf("1045", planned.user_id(), 16);
    EXPECT_EQ(stream, keys.InStream(shard));
    EXPECT_EQ(call.keys[key++], keys.SeenBucket(shard, planned.timestamp_ms() / kSeenBucketMs));
    EXPECT_EQ(call.args[a + 3], planned.SerializeAsString());
  }
  EXPECT_EQ(event, 6u);
  EXPECT_EQ(streams.size(), 3u);
  // Each user's two events in timestamp order (the later index is the earlier time).
  for (int user = 0; user < 3; ++user) {
    const auto& order = calls[0].events;
    const auto first = std::find(order.begin(), order.end(), static_cast<size_t>(user + 3));
    const auto second = std::find(order.begin(), order.end(), static_cast<size_t>(user));
    EXPECT_LT(first, second) << users[user];
  }

  // 300 events of two shards: calls of at most kMaxEventsPerCall, each starting on its stream.
  events.clear();
  for (int i = 0; i < 300; ++i) events.push_back(Event(users[i % 2], kNow + i, "n" + std::to_string(i)));
  const auto bounded = PlanEnqueue(events, keys, kTimes, /*one_node=*/true);
  ASSERT_EQ(bounded.size(), 3u);
  size_t total = 0;
  for (const auto& planned : bounded) {
    EXPECT_LE(planned.events.size(), kMaxEventsPerCall);
    EXPECT_EQ(planned.call.keys[0], keys.InStream(ShardOf("1045", events[planned.events[0]].user_id(), 16)));
    total += planned.events.size();
  }
  EXPECT_EQ(total, 300u);
}

// A mark's bucket is its event's own time, whenever it arrives; it is kept for the TTL from
// the bucket's end or from now, the later; an event older than this ingress's start has its
// mark of the earlier layout checked too; one without a timestamp has a mark of its own.
TEST(PlanEnqueueTest, MarksGoToTheBucketOfTheEventsOwnTime) {
  const KeySpace keys("katy", 1);
  const int64_t bucket_end = (kNow / kSeenBucketMs + 1) * kSeenBucketMs;
  const std::vector<katy::v1::InboundEvent> events = {Event("u1", kNow, "on-time"),
                                                      Event("u1", kNow - 3600 * 1000, "late"), Event("u1", 0, "none")};
  const auto calls = PlanEnqueue(events, keys, {std::chrono::seconds(60), kNow + 1000, kNow - 1, {}});
  ASSERT_EQ(calls.size(), 1u);
  const auto& call = calls[0].call;
  // In timestamp order: none (0), late, on-time.
  ASSERT_EQ(call.keys,
            (std::vector<std::string>{keys.InStream(0), keys.SeenPrefix(0) + "1045:none",
                                      keys.SeenBucket(0, (kNow - 3600 * 1000) / kSeenBucketMs),
                                      keys.SeenPrefix(0) + "1045:late", keys.SeenBucket(0, kNow / kSeenBucketMs)}));
  EXPECT_EQ(call.args[1], "k");
  EXPECT_EQ(call.args[5], "bk");
  EXPECT_EQ(call.args[7], std::to_string((kNow + 1000) / 1000 + 60)) << "late: kept for the TTL from now";
  EXPECT_EQ(call.args[9], "b");
  EXPECT_EQ(call.args[11], std::to_string(std::max(bucket_end, kNow + 1000) / 1000 + 60));
  EXPECT_NE(MarkDigest("1045", "on-time"), MarkDigest("1046", "on-time")) << "the page is part of the mark";
}

TEST(PlanEnqueueTest, ABigRequestIsStoredInBoundedCallsInOrder) {
  // One user's 1,000 events (one shard) become calls of at most kMaxEventsPerCall, so no
  // script holds Redis for long; together they keep the events' order.
  std::vector<katy::v1::InboundEvent> events;
  for (int i = 0; i < 1000; ++i) events.push_back(Event("u1", kNow + i, "m" + std::to_string(i)));
  const auto calls = PlanEnqueue(events, KeySpace("katy", 16), kTimes);
  ASSERT_EQ(calls.size(), (1000 + kMaxEventsPerCall - 1) / kMaxEventsPerCall);
  size_t next = 0;
  for (const auto& planned : calls) {
    EXPECT_LE(planned.events.size(), kMaxEventsPerCall);
    EXPECT_EQ(planned.call.keys.size(), planned.events.size() + 1);
    for (size_t index : planned.events) EXPECT_EQ(index, next++);
  }
  EXPECT_EQ(next, 1000u);
}

// A bucket's expiry goes with its marks only when due (BucketExpiries): the plan leaves the
// expiry out of every event of a bucket not due and names each due bucket once.
TEST(PlanEnqueueTest, ABucketsExpiryGoesOnlyWhenDueAndIsNamedOnce) {
  const KeySpace keys("katy", 16);
  const std::vector<katy::v1::InboundEvent> events = {Event("u1", kNow + 100, "m1"), Event("u1", kNow + 200, "m2"),
                                                      Event("u1", kNow + kSeenBucketMs, "m3")};
  const int shard = ShardOf("1045", "u1", 16);
  const std::string due = keys.SeenBucket(shard, (kNow + kSeenBucketMs) / kSeenBucketMs);
  MarkTimes times = kTimes;
  times.expiry_due = [&](const std::string& bucket) { return bucket == due; };
  const auto calls = PlanEnqueue(events, keys, times);
  ASSERT_EQ(calls.size(), 1u);
  const auto& args = calls[0].call.args;
  ASSERT_EQ(args.size(), 13u);
  EXPECT_EQ(args[3], "") << "not due: no expiry";
  EXPECT_EQ(args[7], "");
  EXPECT_EQ(args[11], std::to_string(PlaceInBucket(kNow + kSeenBucketMs, kSeenBucketMs, times.ttl, kNow).expire_at_s));
  EXPECT_EQ(calls[0].expiring, std::vector<std::string>{due});
  times.expiry_due = nullptr;  // unset: every bucket, each named once
  const auto all = PlanEnqueue(events, keys, times);
  EXPECT_EQ(all[0].expiring.size(), 2u);
  EXPECT_NE(all[0].call.args[3], "");
}

// A writer sets a bucket's expiry with its first mark, then once a second, and again after
// any failed write.
TEST(BucketExpiriesTest, DueFirstThenOnceASecondAndAgainAfterAFailure) {
  BucketExpiries expiries;
  const auto start = BucketExpiries::Clock::now();
  EXPECT_TRUE(expiries.Due("b1", start));
  expiries.Set("b1", start);
  EXPECT_FALSE(expiries.Due("b1", start + std::chrono::milliseconds(999)));
  EXPECT_TRUE(expiries.Due("b2", start)) << "buckets are apart";
  EXPECT_TRUE(expiries.Due("b1", start + BucketExpiries::kRenewEvery));
  expiries.Set("b1", start + BucketExpiries::kRenewEvery);
  expiries.Forget();
  EXPECT_TRUE(expiries.Due("b1", start + BucketExpiries::kRenewEvery));
}

TEST(PlanEnqueueTest, NoEventsNoCalls) { EXPECT_TRUE(PlanEnqueue({}, KeySpace("katy", 16), kTimes).empty()); }

}  // namespace
}  // namespace katy::ingress
