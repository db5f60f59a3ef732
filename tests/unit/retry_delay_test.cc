#include <gtest/gtest.h>

#include "common/redis/sharded_consumer.h"

namespace katy::redis {
namespace {

using std::chrono::milliseconds;

constexpr milliseconds kCap{5000};
constexpr milliseconds kNothingAsked{0};

TEST(RetryDelayTest, DoublesFromOneHundredMillisecondsPerAttempt) {
  EXPECT_EQ(RetryDelay(0, kCap, 1.0, kNothingAsked), milliseconds(100));
  EXPECT_EQ(RetryDelay(1, kCap, 1.0, kNothingAsked), milliseconds(200));
  EXPECT_EQ(RetryDelay(3, kCap, 1.0, kNothingAsked), milliseconds(800));
}

TEST(RetryDelayTest, StopsAtTheCap) {
  EXPECT_EQ(RetryDelay(6, kCap, 1.0, kNothingAsked), kCap);  // 6,400 ms capped
  // The shift stops at 2^10 however many attempts there were: no overflow into a tiny delay.
  EXPECT_EQ(RetryDelay(1000, milliseconds(1'000'000), 1.0, kNothingAsked), milliseconds(102'400));
}

TEST(RetryDelayTest, JitterScalesTheBackoff) {
  EXPECT_EQ(RetryDelay(1, kCap, 0.8, kNothingAsked), milliseconds(160));
  EXPECT_EQ(RetryDelay(1, kCap, 1.2, kNothingAsked), milliseconds(240));
  EXPECT_EQ(RetryDelay(6, kCap, 1.2, kNothingAsked), milliseconds(6000));  // the cap is jittered too
}

TEST(RetryDelayTest, NeverShorterThanWhatTheHandlerAsked) {
  EXPECT_EQ(RetryDelay(0, kCap, 1.0, milliseconds(30'000)), milliseconds(30'000));
  EXPECT_EQ(RetryDelay(3, kCap, 1.0, milliseconds(50)), milliseconds(800));
}

}  // namespace
}  // namespace katy::redis
