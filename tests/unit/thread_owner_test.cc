#include "services/responder/thread_owner.h"

#include <gtest/gtest.h>

#include "services/responder/rules.h"
#include "services/responder/skill_client.h"

namespace katy::responder {
namespace {

using katy::v1::InboundEvent;

constexpr const char* kKaty = "1517776481860111";
constexpr const char* kInbox = "263902037430900";
const OwnershipSettings kSettings{kKaty, std::chrono::seconds(3600)};

InboundEvent Handover(const std::string& key, const std::string& new_owner) {
  InboundEvent event;
  event.set_kind(katy::v1::EVENT_KIND_HANDOVER);
  event.set_kind_key(key);
  event.set_app_id(new_owner);
  return event;
}

InboundEvent Echo(const std::string& app_id) {
  InboundEvent event;
  event.set_kind(katy::v1::EVENT_KIND_ECHO);
  event.set_app_id(app_id);
  return event;
}

InboundEvent Message() {
  InboundEvent event;
  event.set_kind(katy::v1::EVENT_KIND_MESSAGE);
  event.set_text("hi");
  return event;
}

TEST(ThreadOwnerTest, PassingTheThreadAwayAndBack) {
  auto away = NextOwner({}, Handover("pass_thread_control", kInbox), kSettings, 1000);
  EXPECT_EQ(away.owner.app_id, kInbox);
  EXPECT_EQ(away.owner.since_ms, 1000);
  EXPECT_EQ(away.reason, "pass");
  auto user_meanwhile = NextOwner(away.owner, Message(), kSettings, 2000);
  EXPECT_EQ(user_meanwhile.owner.app_id, kInbox);
  EXPECT_TRUE(user_meanwhile.reason.empty());
  auto back = NextOwner(away.owner, Handover("pass_thread_control", kKaty), kSettings, 3000);
  EXPECT_TRUE(back.owner.katy());
  EXPECT_EQ(back.reason, "pass");
  // Meta sends pass_thread_control to the app receiving the thread: without Katy's app id
  // configured, it is Katy's.
  EXPECT_TRUE(NextOwner(away.owner, Handover("pass_thread_control", kKaty), {"", {}}, 3000).owner.katy());
}

TEST(ThreadOwnerTest, TakeAndStandbyMeanAnotherAppHasIt) {
  auto taken = NextOwner({}, Handover("take_thread_control", kInbox), kSettings, 10);
  EXPECT_EQ(taken.owner.app_id, kInbox);
  EXPECT_EQ(taken.reason, "take");
  EXPECT_TRUE(NextOwner(taken.owner, Handover("take_thread_control", kKaty), kSettings, 20).owner.katy());
  EXPECT_TRUE(NextOwner({}, Handover("request_thread_control", kInbox), kSettings, 10).reason.empty());
  InboundEvent standby = Message();
  standby.set_standby(true);
  auto other = NextOwner({}, standby, kSettings, 10);
  EXPECT_FALSE(other.owner.katy());
  EXPECT_EQ(other.reason, "standby");
}

// A person answering from the Page Inbox shows only as an echo from another app: it pauses
// the bot, and every further echo restarts the timeout. Katy's own echoes change nothing, and
// without KATY_APP_ID echoes cannot be told apart, so none pauses.
TEST(ThreadOwnerTest, AnEchoFromAnotherAppPausesTheBot) {
  auto paused = NextOwner({}, Echo(kInbox), kSettings, 100);
  EXPECT_EQ(paused.owner.app_id, kInbox);
  EXPECT_EQ(paused.owner.human_last_ms, 100);
  EXPECT_EQ(paused.reason, "echo");
  auto again = NextOwner(paused.owner, Echo(kInbox), kSettings, 500);
  EXPECT_TRUE(again.reason.empty());
  EXPECT_EQ(again.owner.human_last_ms, 500);
  EXPECT_EQ(again.owner.since_ms, 100);
  EXPECT_TRUE(NextOwner({}, Echo(kKaty), kSettings, 100).owner.katy());
  EXPECT_TRUE(NextOwner({}, Echo(kInbox), {"", std::chrono::seconds(60)}, 100).owner.katy());
  EXPECT_EQ(NextOwner({}, Echo(""), kSettings, 100).owner.app_id, "person");
}

TEST(ThreadOwnerTest, TheBotResumesAfterTheHumansSilence) {
  ThreadOwner human{kInbox, 1000, 5000};
  // An hour after the person's last message, not after the thread was taken.
  EXPECT_FALSE(NextOwner(human, Message(), kSettings, 5000 + 3'599'000).owner.katy());
  auto resumed = NextOwner(human, Message(), kSettings, 5000 + 3'600'000);
  EXPECT_TRUE(resumed.owner.katy());
  EXPECT_EQ(resumed.reason, "timeout");
  // A timeout of 0 never resumes.
  EXPECT_FALSE(NextOwner(human, Message(), {kKaty, std::chrono::seconds(0)}, 1LL << 50).owner.katy());
  // The person writes again right after the timeout: the thread is theirs again.
  auto retaken = NextOwner(human, Echo(kInbox), kSettings, 5000 + 3'600'000);
  EXPECT_EQ(retaken.owner.app_id, kInbox);
  EXPECT_EQ(retaken.reason, "echo");
}

}  // namespace
}  // namespace katy::responder

namespace katy::responder {
namespace {

// A rule names where it hands the conversation; a wrong target is refused at load with its line.
TEST(HandoverRuleTest, RulesAndSkillsNameTheTarget) {
  auto rules = ParseRules(R"(
rules:
  - name: human
    when: { keywords: [human] }
    reply: "Connecting you..."
    handover: { to: inbox, reason: "asked: {{text}}" }
  - name: back
    when: { keywords: [bot] }
    handover: back
  - name: crm
    when: { keywords: [crm] }
    handover: "1234567890"
)",
                          "h.yaml");
  ASSERT_TRUE(rules.ok()) << rules.error().message;
  InboundEvent event;
  event.set_kind(katy::v1::EVENT_KIND_MESSAGE);
  event.set_user_id("u");
  event.set_text("a human please");
  auto first = [](size_t) { return size_t{0}; };
  Decision decision = Decide(*rules, event, {}, first);
  ASSERT_TRUE(decision.handover);
  EXPECT_EQ(decision.handover->target_app_id, kPageInboxAppId);
  EXPECT_EQ(decision.handover->reason, "asked: a human please");
  event.set_text("bot");
  EXPECT_TRUE(Decide(*rules, event, {}, first).handover->take());
  event.set_text("crm");
  EXPECT_EQ(Decide(*rules, event, {}, first).handover->target_app_id, "1234567890");
  auto wrong = ParseRules("rules:\n  - when: { keywords: [x] }\n    handover: somewhere\n", "w.yaml");
  ASSERT_FALSE(wrong.ok());
  EXPECT_EQ(wrong.error().message, "w.yaml:3: handover is 'inbox', an app id or 'back', got 'somewhere'");
  EXPECT_FALSE(ParseRules("rules:\n  - when: { keywords: [x] }\n    handover: { reason: r }\n", "w.yaml").ok());

  auto answer = ParseSkillAnswer(R"({"messages":["One moment"],"handover":{"to":"inbox","reason":"vip"}})");
  ASSERT_TRUE(answer.ok()) << answer.error().message;
  EXPECT_EQ(answer->handover->target_app_id, kPageInboxAppId);
  EXPECT_EQ(answer->handover->reason, "vip");
  EXPECT_TRUE(ParseSkillAnswer(R"({"handover":"back"})")->handover->take());
  EXPECT_FALSE(ParseSkillAnswer(R"({"handover":"nowhere"})").ok());
  EXPECT_FALSE(ParseSkillAnswer(R"({"handover":7})").ok());
}

}  // namespace
}  // namespace katy::responder
