#include "common/redis/stream_worker.h"

#include <gtest/gtest.h>

#include <thread>

#include "tests/support/test_support.h"

namespace katy::redis {
namespace {

class StreamWorkerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    prefix_ = testing::UniquePrefix("worker");
    options_.group = "g";
    options_.consumer = "worker-1";
    options_.stage = "test";
    options_.streams = {prefix_ + ":in"};
    options_.dead_letter_streams = {prefix_ + ":dlq"};
    options_.block = std::chrono::milliseconds(100);
    options_.max_attempts = 3;
    options_.max_backoff = std::chrono::milliseconds(50);
    options_.reclaim_idle = std::chrono::milliseconds(200);
    options_.reclaim_every = std::chrono::milliseconds(100);
    ASSERT_TRUE(EnsureGroup(client_, options_.streams[0], "g").ok());
  }

  // Runs a worker with `handler` until `done` holds (or 10 s pass).
  void RunUntil(EntryHandler handler, const std::function<bool()>& done) {
    std::atomic<bool> stop{false};
    Options worker_redis = testing::TestRedisOptions();
    worker_redis.socket_timeout = std::chrono::milliseconds(2000);
    StreamWorker worker(Client(worker_redis), options_, std::move(handler));
    std::thread thread([&] { worker.Run(stop); });
    EXPECT_TRUE(testing::WaitFor(done, std::chrono::seconds(10)));
    stop = true;
    thread.join();
  }

  int64_t Len(const std::string& stream) { return client_.Command({"XLEN", stream})->integer; }

  Client client_{testing::TestRedisOptions()};
  std::string prefix_;
  StreamWorkerOptions options_;
};

TEST_F(StreamWorkerTest, HandlesInOrderAndAcks) {
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(XAdd(client_, options_.streams[0], {{"n", std::to_string(i)}}).ok());
  std::vector<std::string> seen;
  RunUntil(
      [&](Client& c, const StreamEntry& entry) {
        seen.push_back(*entry.Field("n"));
        c.Command({"XACK", entry.stream, "g", entry.id});
        return HandleResult::Done();
      },
      [&] { return seen.size() == 5; });
  EXPECT_EQ(seen, (std::vector<std::string>{"0", "1", "2", "3", "4"}));
  EXPECT_EQ(client_.Command({"XPENDING", options_.streams[0], "g"})->elements[0].integer, 0);
}

TEST_F(StreamWorkerTest, PoisonAndExhaustedRetriesGoToTheDeadLetterStream) {
  ASSERT_TRUE(XAdd(client_, options_.streams[0], {{"pb", "poison"}}).ok());
  ASSERT_TRUE(XAdd(client_, options_.streams[0], {{"pb", "flaky"}}).ok());
  ASSERT_TRUE(XAdd(client_, options_.streams[0], {{"pb", "fine"}}).ok());
  int flaky_attempts = 0;
  bool fine_done = false;
  RunUntil(
      [&](Client& c, const StreamEntry& entry) {
        std::string pb = *entry.Field("pb");
        if (pb == "poison") return HandleResult::Poison("undecodable");
        if (pb == "flaky") {
          ++flaky_attempts;
          return HandleResult::Retry("downstream_down");
        }
        c.Command({"XACK", entry.stream, "g", entry.id});
        fine_done = true;
        return HandleResult::Done();
      },
      [&] { return fine_done; });
  EXPECT_EQ(flaky_attempts, 3);
  auto dlq = client_.Command({"XRANGE", options_.dead_letter_streams[0], "-", "+"});
  auto letters = ParseEntries("", *dlq);
  ASSERT_EQ(letters.size(), 2u);
  EXPECT_EQ(letters[0].Field("reason"), "undecodable");
  EXPECT_EQ(letters[0].Field("attempts"), "1");
  EXPECT_EQ(letters[0].Field("pb"), "poison");
  EXPECT_EQ(letters[0].Field("stage"), "test");
  EXPECT_EQ(letters[0].Field("stream"), options_.streams[0]);
  EXPECT_EQ(letters[1].Field("reason"), "downstream_down");
  EXPECT_EQ(letters[1].Field("attempts"), "3");
  EXPECT_EQ(client_.Command({"XPENDING", options_.streams[0], "g"})->elements[0].integer, 0);
}

TEST_F(StreamWorkerTest, TakesOverEntriesOfADeadConsumer) {
  ASSERT_TRUE(XAdd(client_, options_.streams[0], {{"n", "orphan"}}).ok());
  // Another consumer read it and died before acknowledging.
  ASSERT_EQ(XReadGroup(client_, "g", "dead-consumer", options_.streams, {">"}, 10,
                       std::chrono::milliseconds(0))->size(), 1u);
  bool handled = false;
  RunUntil(
      [&](Client& c, const StreamEntry& entry) {
        c.Command({"XACK", entry.stream, "g", entry.id});
        handled = *entry.Field("n") == "orphan";
        return HandleResult::Done();
      },
      [&] { return handled; });
  EXPECT_TRUE(handled);
}

}  // namespace
}  // namespace katy::redis
