#include "services/responder/disclosure.h"

#include <gtest/gtest.h>

#include "services/responder/rules.h"

namespace katy::responder {
namespace {

constexpr int64_t kHour = 3600 * 1000;
constexpr int64_t kT = 1'700'000'000'000;
constexpr std::chrono::hours kGap{24};

TEST(DisclosureTest, TheFirstReplyOfAConversationDisclosesAndTheNextDoesNot) {
  EXPECT_EQ(DisclosureDue({}, kT, false, kGap), DisclosureOccasion::kFirstReply);
  EXPECT_EQ(DisclosureDue({kT, kT, 0}, kT + 60'000, false, kGap), DisclosureOccasion::kNone);
}

// The lapse runs from whatever was said last: the person's previous message or the disclosure.
TEST(DisclosureTest, AfterTheGapOfSilenceItDisclosesAgain) {
  EXPECT_EQ(DisclosureDue({kT, kT, 0}, kT + 24 * kHour, false, kGap), DisclosureOccasion::kNone);
  EXPECT_EQ(DisclosureDue({kT, kT, 0}, kT + 24 * kHour + 1, false, kGap), DisclosureOccasion::kAfterSilence);
  EXPECT_EQ(DisclosureDue({kT, kT + 20 * kHour, 0}, kT + 30 * kHour, false, kGap), DisclosureOccasion::kNone);
  EXPECT_EQ(DisclosureDue({kT, 0, 0}, kT + 2 * kHour, false, std::chrono::hours(1)), DisclosureOccasion::kAfterSilence);
}

// When the chat moves from a person back to the bot: in this very event, or since the last
// disclosure; once disclosed after the return, not again.
TEST(DisclosureTest, AThreadHandedBackToTheBotDisclosesOnce) {
  EXPECT_EQ(DisclosureDue({kT, kT, 0}, kT + kHour, true, kGap), DisclosureOccasion::kHandedBack);
  EXPECT_EQ(DisclosureDue({kT, kT, kT + kHour}, kT + 2 * kHour, false, kGap), DisclosureOccasion::kHandedBack);
  EXPECT_EQ(DisclosureDue({kT + kHour, kT, kT + kHour}, kT + 2 * kHour, false, kGap), DisclosureOccasion::kNone);
}

TEST(DisclosureTest, APagesOwnTextFromTheRulesFileWinsAndMayTurnItOff) {
  const DisclosureSettings settings{"I am a bot.", kGap};
  auto rules = ParseRules(R"(
bot_disclosure:
  "1045": "Ich bin ein Bot."
  "2000": ""
rules: []
)",
                          "rules.yaml");
  ASSERT_TRUE(rules) << rules.error().message;
  EXPECT_EQ(settings.TextFor("1045", rules->disclosure_by_page), "Ich bin ein Bot.");
  EXPECT_EQ(settings.TextFor("2000", rules->disclosure_by_page), "");
  EXPECT_EQ(settings.TextFor("3000", rules->disclosure_by_page), "I am a bot.");
  EXPECT_STREQ(OccasionName(DisclosureOccasion::kAfterSilence), "after_silence");
}

TEST(DisclosureTest, ABadBotDisclosureInTheRulesFileIsRefusedWithItsLine) {
  auto not_a_page = ParseRules("bot_disclosure:\n  my-page: \"hi\"\n", "rules.yaml");
  ASSERT_FALSE(not_a_page);
  EXPECT_NE(not_a_page.error().message.find("rules.yaml:2: bot_disclosure: 'my-page' is not"), std::string::npos)
      << not_a_page.error().message;
  auto too_long = ParseRules("bot_disclosure:\n  \"1045\": \"" + std::string(2000, 'a') + "\"\n", "rules.yaml");
  ASSERT_FALSE(too_long);
  EXPECT_NE(too_long.error().message.find("under 2000"), std::string::npos);
  EXPECT_FALSE(ParseRules("bot_disclosure: [a, b]\n", "rules.yaml"));
}

}  // namespace
}  // namespace katy::responder
