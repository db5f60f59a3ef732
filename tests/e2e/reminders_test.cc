// Reminders (docs/rules.md, "Reminders") with every service a real process: a rule sets one,
// the shard's responder puts it on the conversation's stream when it falls due, and its rule's
// reply reaches the emulator once, in order with the conversation.
#include <gtest/gtest.h>

#include <chrono>
#include <map>
#include <nlohmann/json.hpp>
#include <thread>

#include "common/clock.h"
#include "common/http/http_client.h"
#include "common/redis/redis_client.h"
#include "common/reminder_keys.h"
#include "common/shard.h"
#include "tests/support/katy_stack.h"
#include "tests/support/test_support.h"

namespace katy {
namespace {

constexpr const char* kRules = R"(
rules:
  - name: price
    when: { keywords: [price] }
    reply: "20 EUR"
    remind: { after: 2s, name: NUDGE }
  - name: nudge
    when: { timer: NUDGE }
    reply: "Still interested?"
  - name: first
    when: { timer: A }
    reply: "A"
  - name: second
    when: { timer: B }
    reply: "B"
fallback:
  reply: "echo: {{text}}"
)";

bool WaitForReplies(const testing::KatyStack& stack, const std::string& psid, size_t n,
                    std::chrono::seconds timeout = std::chrono::seconds(20)) {
  return testing::WaitFor([&] { return testing::RepliesTo(stack, psid) >= n; }, timeout);
}

// A reminder fires about its delay after the message that set it, once, after the reply that
// set it; a message before it falls due cancels it; so does katyctl conv cancel.
TEST(RemindersTest, AReminderFiresOnceInOrderAndAMessageOrKatyctlCancelsIt) {
  testing::KatyStack stack({kRules, {}});
  ASSERT_TRUE(stack.ready());
  testing::Say(stack, "n1", "what is the price?");
  testing::Say(stack, "n2", "what is the price?");
  testing::Say(stack, "n3", "what is the price?");
  ASSERT_TRUE(WaitForReplies(stack, "n2", 1)) << "logs in " << stack.dir();
  testing::Say(stack, "n2", "ok thanks");
  const auto shown = testing::Katyctl(stack, "responder", "conv show 1045 n3");
  EXPECT_NE(shown.output.find("reminder:    NUDGE in "), std::string::npos) << shown.output;
  const auto cancelled = testing::Katyctl(stack, "responder", "conv cancel 1045 n3 NUDGE");
  EXPECT_EQ(cancelled.status, 0) << cancelled.output;

  ASSERT_TRUE(WaitForReplies(stack, "n1", 2)) << "logs in " << stack.dir();
  std::this_thread::sleep_for(std::chrono::seconds(3));  // past every due time, and more
  ASSERT_TRUE(stack.WaitUntilDrained(std::chrono::seconds(20)));
  EXPECT_EQ(testing::ReplyTexts(stack, "n1"), (std::vector<std::string>{"20 EUR", "Still interested?"}));
  EXPECT_EQ(testing::ReplyTexts(stack, "n2"), (std::vector<std::string>{"20 EUR", "echo: ok thanks"}));
  EXPECT_EQ(testing::ReplyTexts(stack, "n3"), (std::vector<std::string>{"20 EUR"}));
  EXPECT_EQ(testing::Katyctl(stack, "responder", "conv cancel 1045 n3 NUDGE").status, 1) << "nothing left to cancel";
  EXPECT_EQ(stack.MetricSum("responder", "katy_reminders_total", R"(action="scheduled")"), 3);
  EXPECT_EQ(stack.MetricSum("responder", "katy_reminders_total", R"(action="cancelled")"), 1);
  EXPECT_EQ(stack.MetricSum("responder", "katy_reminders_total", R"(action="fired")"), 1);
  EXPECT_EQ(stack.MetricSum("responder", "katy_reminders_due"), 0);
}

// Every responder is killed (SIGKILL) while the reminder waits; it falls due with none running.
// The next responder takes the shard and fires it, once.
TEST(RemindersTest, AReminderSurvivesSigkillOfEveryResponder) {
  testing::KatyStack stack({kRules, {{"KATY_LEASE_TTL_MS", "1500"}}});
  ASSERT_TRUE(stack.ready());
  testing::Say(stack, "k1", "price please");
  ASSERT_TRUE(WaitForReplies(stack, "k1", 1)) << "logs in " << stack.dir();
  stack.process("responder").Kill();
  std::this_thread::sleep_for(std::chrono::seconds(3));
  EXPECT_EQ(testing::RepliesTo(stack, "k1"), 1u);
  stack.StartExtra("responder", "katy-responder");
  ASSERT_TRUE(WaitForReplies(stack, "k1", 2)) << "logs in " << stack.dir();
  std::this_thread::sleep_for(std::chrono::seconds(2));
  ASSERT_TRUE(stack.WaitUntilDrained(std::chrono::seconds(20)));
  EXPECT_EQ(testing::ReplyTexts(stack, "k1"), (std::vector<std::string>{"20 EUR", "Still interested?"}));
}

// 10,000 reminders due in the same second, two per conversation on twenty pages, written into
// Redis as the responder writes them: each fires once, A before B in every conversation, and a
// person writing meanwhile is answered.
TEST(RemindersTest, TenThousandRemindersDueInTheSameSecondFireOnceInOrder) {
  constexpr int kPages = 20;
  constexpr int kPerPage = 250;
  testing::KatyStack stack({kRules, {}});
  ASSERT_TRUE(stack.ready());
  redis::Client redis(*redis::ParseUrl(stack.redis_url()));
  const KeySpace keys("katy", 16);
  const int64_t due = WallClockMs() + 2000;
  std::vector<std::vector<std::string>> writes;
  for (int p = 0; p < kPages; ++p) {
    const std::string page = std::to_string(2000 + p);
    for (int u = 0; u < kPerPage; ++u) {
      const std::string user = "t" + std::to_string(u);
      const int shard = ShardOf(page, user, 16);
      for (const char* name : {"A", "B"}) {
        writes.push_back({"ZADD", keys.Timers(shard), std::to_string(due), ReminderMember(page, user, name)});
        writes.push_back({"HSET", keys.Conversation(shard, page, user), ReminderField(name),
                          ReminderFieldValue({name, due, false})});
      }
    }
  }
  ASSERT_TRUE(redis.Pipeline(writes).ok());
  std::this_thread::sleep_for(std::chrono::milliseconds(2500));
  testing::Say(stack, "meanwhile", "hello");
  EXPECT_TRUE(WaitForReplies(stack, "meanwhile", 1, std::chrono::seconds(60))) << "logs in " << stack.dir();
  ASSERT_TRUE(testing::WaitFor(
      [&] { return stack.MetricSum("sender", "katy_sender_delivered_total") >= 2 * kPages * kPerPage + 1; },
      std::chrono::seconds(120)))
      << "logs in " << stack.dir();
  ASSERT_TRUE(stack.WaitUntilDrained(std::chrono::seconds(30)));

  http::Client http;
  auto all = http.Get(stack.emulator_url() + "/_emulator/messages");
  ASSERT_TRUE(all.ok());
  std::map<std::string, std::vector<std::string>> by_conversation;
  for (const auto& message : nlohmann::json::parse(all->body)) {
    by_conversation[message["page"].get<std::string>() + ":" + message["recipient"].get<std::string>()].push_back(
        message["message"].value("text", ""));
  }
  EXPECT_EQ(by_conversation.size(), static_cast<size_t>(kPages * kPerPage + 1));
  size_t in_order = 0;
  for (const auto& [conversation, texts] : by_conversation) {
    if (conversation == "1045:meanwhile") continue;
    if (texts == std::vector<std::string>{"A", "B"}) ++in_order;
  }
  EXPECT_EQ(in_order, static_cast<size_t>(kPages * kPerPage));
  EXPECT_EQ(stack.MetricSum("responder", "katy_reminders_total", R"(action="fired")"), 2 * kPages * kPerPage);
}

}  // namespace
}  // namespace katy
