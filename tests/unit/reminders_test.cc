#include "services/responder/reminders.h"

#include <gtest/gtest.h>

#include "services/responder/rules.h"
#include "services/responder/skill_client.h"

namespace katy::responder {
namespace {

using std::chrono::seconds;

constexpr int64_t kNow = 1'700'000'000'000;

TEST(ReminderDelayTest, AWholeNumberAndAUnit) {
  EXPECT_EQ(*ParseReminderDelay("45s"), seconds(45));
  EXPECT_EQ(*ParseReminderDelay("30m"), seconds(1800));
  EXPECT_EQ(*ParseReminderDelay("2h"), seconds(7200));
  EXPECT_EQ(*ParseReminderDelay("1d"), seconds(86400));
  EXPECT_EQ(*ParseReminderDelay("30d"), seconds(30 * 86400));
  for (const char* bad : {"", "m", "30", "30x", "-5m", "0s", "1.5h", "31d", "999999999d", " 5m"}) {
    EXPECT_FALSE(ParseReminderDelay(bad)) << bad;
  }
  EXPECT_NE(ParseReminderDelay("30x").error().message.find("s, m, h or d"), std::string::npos);
}

TEST(ReminderKeysTest, NamesMembersAndFieldsGoBothWays) {
  EXPECT_TRUE(IsReminderName("NUDGE_2-b"));
  EXPECT_FALSE(IsReminderName(""));
  EXPECT_FALSE(IsReminderName("a:b"));
  EXPECT_FALSE(IsReminderName(std::string(65, 'a')));
  // A user_ref may hold ':'; page and name never do.
  auto owner = ParseReminderMember(ReminderMember("1045", "ref:x:y", "NUDGE"));
  ASSERT_TRUE(owner);
  EXPECT_EQ(owner->page, "1045");
  EXPECT_EQ(owner->user, "ref:x:y");
  EXPECT_EQ(owner->name, "NUDGE");
  EXPECT_FALSE(ParseReminderMember("no-colon"));
  EXPECT_FALSE(ParseReminderMember("1045:NUDGE"));
  const auto pending = PendingReminders({{"state", "x"},
                                         {ReminderField("A"), ReminderFieldValue({"A", 5, false})},
                                         {ReminderField("B"), ReminderFieldValue({"B", 7, true})},
                                         {"var:timer", "y"}});
  ASSERT_EQ(pending.size(), 2u);
  EXPECT_EQ(pending[0].name, "A");
  EXPECT_EQ(pending[0].due_ms, 5);
  EXPECT_FALSE(pending[0].keep);
  EXPECT_EQ(pending[1].name, "B");
  EXPECT_TRUE(pending[1].keep);
}

TEST(PlanRemindersTest, ThePersonWritingCancelsWhatIsNotKept) {
  const std::vector<PendingReminder> pending{{"NUDGE", kNow + 1000, false}, {"LAST", kNow + 9000, true}};
  auto wrote = PlanReminders(pending, true, {}, {}, kNow);
  EXPECT_EQ(wrote.cancelled, std::vector<std::string>{"NUDGE"});
  EXPECT_TRUE(wrote.scheduled.empty());
  // A reminder's own firing, a receipt: the person did not write.
  EXPECT_TRUE(PlanReminders(pending, false, {}, {}, kNow).cancelled.empty());
  // cancel: by name, kept or not.
  EXPECT_EQ(PlanReminders(pending, false, {}, {"LAST", "NEVER_SET"}, kNow).cancelled, std::vector<std::string>{"LAST"});
}

TEST(PlanRemindersTest, TheSameNameReplacesThePendingOne) {
  const std::vector<PendingReminder> pending{{"NUDGE", kNow + 1000, false}};
  auto again = PlanReminders(pending, true, {{"NUDGE", seconds(60), false}}, {}, kNow);
  EXPECT_TRUE(again.cancelled.empty()) << "rescheduled, not cancelled";
  ASSERT_EQ(again.scheduled.size(), 1u);
  EXPECT_EQ(again.scheduled[0].due_ms, kNow + 60'000);
  auto twice =
      PlanReminders({}, false, {{"A", seconds(1), false}, {"B", seconds(2), true}, {"A", seconds(3), false}}, {}, kNow);
  ASSERT_EQ(twice.scheduled.size(), 2u);
  EXPECT_EQ(twice.scheduled[0].name, "B");
  EXPECT_TRUE(twice.scheduled[0].keep);
  EXPECT_EQ(twice.scheduled[1].due_ms, kNow + 3000);
}

TEST(ReminderRulesTest, RemindCancelAndTimerRulesLoad) {
  auto rules = ParseRules(R"(
rules:
  - name: price
    when: { keywords: [price] }
    reply: "20 EUR"
    remind: { after: 30m, name: NUDGE }
  - name: two
    when: { keywords: [book] }
    reply: "Booked"
    remind:
      - { after: 1d, name: DAY_BEFORE, keep: true }
      - { after: 2d, name: LATE }
  - name: stop
    when: { keywords: [stop] }
    reply: "OK"
    cancel: [NUDGE, LATE]
  - name: nudge
    when: { timer: NUDGE }
    reply: "Still interested?"
fallback:
  reply: "echo: {{text}}"
)",
                          "rules.yaml");
  ASSERT_TRUE(rules) << rules.error().message;
  ASSERT_EQ(rules->rules[0].remind.size(), 1u);
  EXPECT_EQ(rules->rules[0].remind[0].after, seconds(1800));
  ASSERT_EQ(rules->rules[1].remind.size(), 2u);
  EXPECT_TRUE(rules->rules[1].remind[0].keep);
  EXPECT_EQ(rules->rules[2].cancel, (std::vector<std::string>{"NUDGE", "LATE"}));
  EXPECT_EQ(rules->rules[3].when.timer, "NUDGE");
  // 2 days without a tag: allowed, warned.
  ASSERT_EQ(rules->warnings.size(), 1u);
  EXPECT_NE(rules->warnings[0].find("rules.yaml:7: rule two reminds LATE after more than 24 hours"), std::string::npos)
      << rules->warnings[0];

  // A reminder is answered by its rule only; the fallback never answers one.
  katy::v1::InboundEvent timer;
  timer.set_kind(katy::v1::EVENT_KIND_TIMER);
  timer.set_kind_key("NUDGE");
  timer.set_page_id("1045");
  timer.set_user_id("u1");
  Conversation conversation;
  EXPECT_EQ(Decide(*rules, timer, conversation, [](size_t) { return 0; }).rule, "nudge");
  timer.set_kind_key("OTHER");
  EXPECT_EQ(Decide(*rules, timer, conversation, [](size_t) { return 0; }).rule, "");
  katy::v1::InboundEvent message = timer;
  message.set_kind(katy::v1::EVENT_KIND_MESSAGE);
  message.set_text("price?");
  const auto decision = Decide(*rules, message, conversation, [](size_t) { return 0; });
  EXPECT_EQ(decision.rule, "price");
  ASSERT_EQ(decision.remind.size(), 1u);
  EXPECT_EQ(decision.remind[0].name, "NUDGE");
}

TEST(ReminderRulesTest, BadRemindersAreRefusedWithTheirLine) {
  const std::pair<const char*, const char*> cases[] = {
      {"rules:\n  - when: {keywords: [a]}\n    reply: x\n    remind: {after: 30, name: N}\n",
       "rules.yaml:4: remind: after"},
      {"rules:\n  - when: {keywords: [a]}\n    reply: x\n    remind: {after: 30m}\n", "needs 'after' and 'name'"},
      {"rules:\n  - when: {keywords: [a]}\n    reply: x\n    remind: {after: 30m, name: \"a b\"}\n", "a name is"},
      {"rules:\n  - when: {keywords: [a]}\n    reply: x\n    remind: {after: 30m, name: N, soon: true}\n",
       "unknown field 'soon'"},
      {"rules:\n  - when: {timer: N, keywords: [a]}\n    reply: x\n", "a reminder has no text"},
      {"rules:\n  - when: {comment: true}\n    reply: x\n    remind: {after: 1m, name: N}\n", "a comment rule sets no"},
      {"rules:\n  - when: {keywords: [a]}\n    reply: x\n    cancel: \"a:b\"\n", "no reminder's name"},
  };
  for (const auto& [yaml, expected] : cases) {
    auto parsed = ParseRules(yaml, "rules.yaml");
    ASSERT_FALSE(parsed) << yaml;
    EXPECT_NE(parsed.error().message.find(expected), std::string::npos) << parsed.error().message;
  }
}

// A skill's answer sets and cancels reminders as a rule does.
TEST(ReminderRulesTest, ASkillsAnswerSetsAndCancelsReminders) {
  auto answer = ParseSkillAnswer(
      R"({"messages":["ok"],"remind":[{"after":"10m","name":"NUDGE"},{"after":"1d","name":"LATER","keep":true}],)"
      R"("cancel":"OLD"})");
  ASSERT_TRUE(answer) << answer.error().message;
  ASSERT_EQ(answer->remind.size(), 2u);
  EXPECT_EQ(answer->remind[0].after, seconds(600));
  EXPECT_TRUE(answer->remind[1].keep);
  EXPECT_EQ(answer->cancel, std::vector<std::string>{"OLD"});
  EXPECT_FALSE(ParseSkillAnswer(R"({"remind":{"after":"soon","name":"N"}})"));
  EXPECT_FALSE(ParseSkillAnswer(R"({"remind":{"name":"N"}})"));
  EXPECT_FALSE(ParseSkillAnswer(R"({"cancel":[1]})"));
}

}  // namespace
}  // namespace katy::responder
