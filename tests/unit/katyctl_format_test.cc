#include "tools/katyctl/katyctl_format.h"

#include <gtest/gtest.h>

namespace katy::ctl {
namespace {

katy::v1::Status Sample() {
  katy::v1::Status status;
  status.set_service("sender");
  status.set_instance("sender-host-1");
  status.set_version("0.1.0");
  status.set_uptime_s(3700);
  status.set_serving(true);
  for (int shard : {0, 1, 2, 5, 7, 8}) status.add_owned_shards(shard);
  auto* held = status.add_held_shards();
  held->set_shard(5);
  held->set_reason("redis_under_replicated");
  held->set_held_s(42);
  auto* in = status.add_streams();
  in->set_stream("katy:{s00}:in");
  in->set_group("responders");
  in->set_length(10);
  in->set_lag(3);
  auto* out = status.add_streams();
  out->set_stream("katy:{s00}:out");
  out->set_group("senders");
  out->set_length(7);
  auto* dlq = status.add_dead_letters();
  dlq->set_stream("katy:{s00}:dlq");
  dlq->set_length(2);
  for (int shard = 0; shard < 4; ++shard) {
    auto* lease = status.add_leases();
    lease->set_role("sender");
    lease->set_shard(shard);
    lease->set_owner(shard < 3 ? "sender-a" : "");
  }
  auto* page = status.add_pages();
  page->set_page_id("1045");
  page->set_rate(50);
  page->set_paused(true);
  page->set_paused_reason("page_broken_190");
  status.set_conversations_with_others(4);
  return status;
}

TEST(KatyctlFormatTest, ShardRanges) {
  EXPECT_EQ(ShardRanges({0, 1, 2, 5, 7, 8}), "0-2,5,7-8");
  EXPECT_EQ(ShardRanges({3}), "3");
  EXPECT_EQ(ShardRanges({}), "-");
  EXPECT_EQ(ShardRanges({9, 8, 10}), "8-10");
}

TEST(KatyctlFormatTest, StatusTableShowsWhatMatters) {
  const std::string table = RenderStatus(Sample(), false);
  EXPECT_NE(table.find("katy sender  sender-host-1  v0.1.0  up 61m  SERVING"), std::string::npos) << table;
  EXPECT_NE(table.find("owns shards 0-2,5,7-8"), std::string::npos);
  EXPECT_NE(table.find("HELD shard 5 for 42s: redis_under_replicated"), std::string::npos) << table;
  EXPECT_NE(table.find("katy:{s00}:in"), std::string::npos);    // it has lag
  EXPECT_EQ(table.find("katy:{s00}:out "), std::string::npos);  // nothing waiting there: hidden
  EXPECT_NE(table.find("(dead)"), std::string::npos);
  EXPECT_NE(table.find("dead letters 2"), std::string::npos);
  EXPECT_NE(table.find("with others 4 conversations"), std::string::npos) << table;
  EXPECT_NE(table.find("sender-a"), std::string::npos);
  EXPECT_NE(table.find("(nobody)"), std::string::npos);
  EXPECT_NE(table.find("yes (page_broken_190)"), std::string::npos);
  EXPECT_NE(RenderStatus(Sample(), true).find("katy:{s00}:out "), std::string::npos);  // --all
  auto totals = Totals(Sample());
  EXPECT_EQ(totals.in_length, 10);
  EXPECT_EQ(totals.in_lag, 3);
  EXPECT_EQ(totals.out_length, 7);
  EXPECT_EQ(totals.dead_letters, 2);
}

TEST(KatyctlFormatTest, TopShowsRates) {
  katy::v1::Status before = Sample();
  katy::v1::Status after = Sample();
  after.mutable_streams(0)->set_length(30);  // 20 new events
  after.mutable_streams(1)->set_length(17);  // 10 new replies
  const std::string frame = RenderTop(after, before, std::chrono::seconds(2));
  EXPECT_NE(frame.find("rates: 10.0 events/s in, 5.0 replies/s out"), std::string::npos) << frame;
}

}  // namespace
}  // namespace katy::ctl
