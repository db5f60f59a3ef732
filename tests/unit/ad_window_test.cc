#include "services/responder/ad_window.h"

#include <gtest/gtest.h>

#include "common/message_tags.h"

namespace katy::responder {
namespace {

constexpr int64_t kT = 1'700'000'000'000;

katy::v1::InboundEvent UserEvent(katy::v1::EventKind kind, const std::string& referral_source = "") {
  katy::v1::InboundEvent event;
  event.set_kind(kind);
  event.set_user_id("u1");
  if (!referral_source.empty()) event.mutable_referral()->set_source(referral_source);
  return event;
}

// A new thread from an ad: the message carries the ad's referral and opens 7 days from itself.
TEST(AdWindowTest, AMessageCarryingAnAdsReferralOpensSevenDays) {
  auto after = AdWindowAfter(UserEvent(katy::v1::EVENT_KIND_MESSAGE, "ADS"), kT, {});
  ASSERT_TRUE(after);
  EXPECT_EQ(after->until_ms, kT + kAdWindowMs);
  EXPECT_EQ(after->clicked_ms, 0);
  // An m.me link's referral is no ad.
  EXPECT_FALSE(AdWindowAfter(UserEvent(katy::v1::EVENT_KIND_MESSAGE, "SHORTLINK"), kT, {}));
  EXPECT_FALSE(AdWindowAfter(UserEvent(katy::v1::EVENT_KIND_MESSAGE), kT, {}));
}

// An existing thread: the click comes alone (a referral event, or Get Started's postback); the
// person's next message opens the 7 days from that message, and later messages keep them.
TEST(AdWindowTest, TheFirstMessageAfterAClickOpensSevenDaysFromItself) {
  for (auto click_kind : {katy::v1::EVENT_KIND_REFERRAL, katy::v1::EVENT_KIND_POSTBACK}) {
    auto clicked = AdWindowAfter(UserEvent(click_kind, "ADS"), kT, {});
    ASSERT_TRUE(clicked);
    EXPECT_EQ(clicked->clicked_ms, kT);
    EXPECT_EQ(clicked->until_ms, 0);
    auto opened = AdWindowAfter(UserEvent(katy::v1::EVENT_KIND_MESSAGE), kT + 5000, *clicked);
    ASSERT_TRUE(opened);
    EXPECT_EQ(opened->clicked_ms, 0);
    EXPECT_EQ(opened->until_ms, kT + 5000 + kAdWindowMs);
    EXPECT_FALSE(AdWindowAfter(UserEvent(katy::v1::EVENT_KIND_MESSAGE), kT + 9000, *opened));
  }
  // A postback without a click opens nothing.
  EXPECT_FALSE(AdWindowAfter(UserEvent(katy::v1::EVENT_KIND_POSTBACK), kT, {0, 0}));
}

// A later ad's message gives 7 days from itself; an earlier, longer window is never shortened.
TEST(AdWindowTest, TheLaterEndWins) {
  const AdWindow open{0, kT + kAdWindowMs};
  EXPECT_EQ(AdWindowAfter(UserEvent(katy::v1::EVENT_KIND_MESSAGE, "ADS"), kT + 1000, open)->until_ms,
            kT + 1000 + kAdWindowMs);
  EXPECT_EQ(AdWindowAfter(UserEvent(katy::v1::EVENT_KIND_MESSAGE, "ADS"), kT - 1000, open)->until_ms, kT + kAdWindowMs);
}

// As for the user's last message: standby events and events of no person change nothing.
TEST(AdWindowTest, StandbyAndPageEventsChangeNothing) {
  auto standby = UserEvent(katy::v1::EVENT_KIND_MESSAGE, "ADS");
  standby.set_standby(true);
  EXPECT_FALSE(AdWindowAfter(standby, kT, {}));
  auto no_person = UserEvent(katy::v1::EVENT_KIND_MESSAGE, "ADS");
  no_person.clear_user_id();
  EXPECT_FALSE(AdWindowAfter(no_person, kT, {}));
}

}  // namespace
}  // namespace katy::responder
