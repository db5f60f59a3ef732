// Time in conversations (docs/messenger-platform.md, "The standard messaging window"), with
// nothing mocked: people write through the emulator, and what the bot may still send is judged
// by the real sender against the conversation the real responder recorded.
#include <gtest/gtest.h>

#include <chrono>

#include "tests/support/katy_stack.h"
#include "tests/support/test_support.h"

namespace katy {
namespace {

constexpr const char* kRules = R"(
rules: []
fallback:
  reply: "echo: {{text}}"
)";

// A conversation an ad started has 7 days: the bot's answer to a message written 3 days ago
// goes, whether the ad's referral came on the message (a new thread) or alone before it (an
// existing thread). The same answer in an ordinary conversation is past its 24 hours and is
// dead-lettered, not sent.
TEST(WindowsTest, AReplyThreeDaysIntoAnAdStartedConversationGoesAndIntoAnOrdinaryOneDoesNot) {
  testing::KatyStack stack({kRules, {}});
  ASSERT_TRUE(stack.ready());
  testing::SayWith(stack, {{"psid", "ad-message"}, {"text", "is this still on sale?"}, {"ad", true}, {"age_days", 3}});
  testing::SayWith(stack, {{"psid", "ad-click"}, {"ad", true}, {"age_days", 3.001}});
  testing::SayWith(stack, {{"psid", "ad-click"}, {"text", "is this still on sale?"}, {"age_days", 3}});
  testing::SayWith(stack, {{"psid", "ordinary"}, {"text", "is this still on sale?"}, {"age_days", 3}});
  ASSERT_TRUE(stack.WaitUntilDrained(std::chrono::seconds(20))) << "logs in " << stack.dir();

  EXPECT_EQ(testing::RepliesTo(stack, "ad-message"), 1u);
  EXPECT_EQ(testing::RepliesTo(stack, "ad-click"), 1u);
  EXPECT_EQ(testing::RepliesTo(stack, "ordinary"), 0u);
  EXPECT_EQ(testing::DeadLetterReasons(stack), (std::multiset<std::string>{"outside_window"}));
  const auto shown = testing::Katyctl(stack, "responder", "conv show 1045 ad-message");
  EXPECT_NE(shown.output.find("started by an ad: 7 days, 3d"), std::string::npos) << shown.output;
}

}  // namespace
}  // namespace katy
