// Comment → DM (docs/comments.md), with nothing mocked: comments written through the emulator
// reach Katy as Meta's `feed` and `comments` webhooks, and their private replies and public
// replies reach the emulator's Graph API, once per comment whatever is redelivered or killed.
#include <gtest/gtest.h>

#include <chrono>
#include <nlohmann/json.hpp>
#include <set>

#include "common/http/http_client.h"
#include "common/redis/redis_client.h"
#include "common/redis/streams.h"
#include "common/shard.h"
#include "tests/support/katy_stack.h"
#include "tests/support/test_support.h"

namespace katy {
namespace {

constexpr int kShards = 16;
constexpr const char* kPage = "104560000000001";
constexpr const char* kAccount = "17841400000000001";

constexpr const char* kRules = R"(
rules:
  - name: price-comment
    when: { comment: true, keywords: [price] }
    reply: "Hi {{first_name}}, the price is 20 EUR. You wrote: {{comment_text}}"
    comment_reply: "Sent you a message, {{commenter_name}}!"
  - name: hello
    when: { keywords: [hello] }
    reply: "hi there"
fallback:
  reply: "echo: {{text}}"
)";

nlohmann::json Get(const std::string& url) {
  http::Client http;
  auto response = http.Get(url);
  if (!response || response->status != 200) return nlohmann::json::array();
  return nlohmann::json::parse(response->body, nullptr, false);
}

nlohmann::json Sent(const testing::KatyStack& stack, const std::string& psid) {
  return Get(stack.emulator_url() + "/_emulator/messages?psid=" + psid);
}

nlohmann::json Comments(const testing::KatyStack& stack, const std::string& page) {
  return Get(stack.emulator_url() + "/_emulator/comments?page=" + page);
}

// Writes a comment through the emulator; its answer (ids), the test failing unless ingress took it.
nlohmann::json Comment(const testing::KatyStack& stack, const nlohmann::json& fields) {
  http::Client http;
  auto written = http.Post(stack.emulator_url() + "/_emulator/comment", fields.dump());
  EXPECT_TRUE(written.ok());
  if (!written.ok()) return {};
  EXPECT_EQ(written->status, 200) << written->body;
  return nlohmann::json::parse(written->body, nullptr, false);
}

// Whether the page's one comment gets its one public reply within `timeout` (the comments, and
// where the logs are, are printed when it does not).
::testing::AssertionResult WaitForOnePublicReply(const testing::KatyStack& stack, const std::string& page,
                                                 std::chrono::seconds timeout) {
  nlohmann::json comments;
  if (testing::WaitFor(
          [&] {
            comments = Comments(stack, page);
            return comments.size() == 1 && comments[0]["public_replies"].size() == 1;
          },
          timeout)) {
    return ::testing::AssertionSuccess();
  }
  return ::testing::AssertionFailure() << comments.dump() << "; logs in " << stack.dir();
}

TEST(CommentsTest, ACommentGetsOnePrivateReplyThroughRedeliveriesAndASenderKilled) {
  testing::KatyStack stack({kRules, {{"KATY_LEASE_TTL_MS", "1500"}}});
  ASSERT_TRUE(stack.ready());
  // The sender dies (SIGKILL) before the comment arrives; Meta delivers the webhook three times.
  stack.process("sender").Kill();
  const auto ids = Comment(stack, {{"page", kPage},
                                   {"psid", "7100000000000001"},
                                   {"name", "Ana Example"},
                                   {"text", "what is the price?"},
                                   {"repeat", 3}});
  const std::string comment_id = ids.value("comment_id", "");
  ASSERT_FALSE(comment_id.empty());
  stack.StartExtra("sender", "katy-sender");
  nlohmann::json sent;
  ASSERT_TRUE(
      testing::WaitFor([&] { return !(sent = Sent(stack, "7100000000000001")).empty(); }, std::chrono::seconds(20)))
      << "no private reply; logs in " << stack.dir();
  // Meta redelivers it twice more, later.
  Comment(stack, {{"page", kPage}, {"psid", "7100000000000001"}, {"comment_id", comment_id}, {"repeat", 2}});
  ASSERT_TRUE(stack.WaitUntilDrained(std::chrono::seconds(20))) << "logs in " << stack.dir();

  sent = Sent(stack, "7100000000000001");
  ASSERT_EQ(sent.size(), 1u) << sent.dump();
  EXPECT_EQ(sent[0]["comment_id"], comment_id);
  EXPECT_EQ(sent[0]["page"], kPage);
  EXPECT_EQ(sent[0]["message"]["text"], "Hi Ana, the price is 20 EUR. You wrote: what is the price?");
  const auto comments = Comments(stack, kPage);
  ASSERT_EQ(comments.size(), 1u);
  EXPECT_TRUE(comments[0]["answered"].get<bool>());
  EXPECT_EQ(comments[0]["public_replies"], nlohmann::json::array({"Sent you a message, Ana Example!"}));
  EXPECT_TRUE(DeadLetterReasons(stack).empty());
}

// The sender dies while its private reply is at Meta (held 1.5 s by the emulator). The next
// sender finds the claim its own, waits out the first attempt's timeout and sends again, as a
// counted possible duplicate. Had Meta completed the first attempt, its refusal of a second
// private reply (#10900) would settle it as a dead letter; the emulator drops a held call whose
// client is gone, so the resend is the reply. Either way: one reply, and no loss.
TEST(CommentsTest, ASenderKilledMidCallStillLeavesOnePrivateReply) {
  testing::KatyStack stack({kRules, {{"KATY_LEASE_TTL_MS", "1500"}, {"KATY_SEND_TIMEOUT_MS", "3000"}}});
  ASSERT_TRUE(stack.ready());
  http::Client http;
  ASSERT_EQ(http.Post(stack.emulator_url() + "/_emulator/faults", R"({"latency_ms":[1500,1500]})")->status, 200);
  Comment(stack, {{"page", kPage}, {"psid", "7100000000000005"}, {"name", "Eve"}, {"text", "price?"}});
  ASSERT_TRUE(
      testing::WaitFor([&] { return Get(stack.emulator_url() + "/_emulator/faults").value("most_held_calls", 0) >= 1; },
                       std::chrono::seconds(15)))
      << "the private reply never reached the Send API; logs in " << stack.dir();
  stack.process("sender").Kill();
  ASSERT_EQ(http.Post(stack.emulator_url() + "/_emulator/faults", "{}")->status, 200);
  stack.StartExtra("sender", "katy-sender");
  ASSERT_TRUE(WaitForOnePublicReply(stack, kPage, std::chrono::seconds(30)));
  ASSERT_TRUE(stack.WaitUntilDrained(std::chrono::seconds(20)));
  EXPECT_EQ(Sent(stack, "7100000000000005").size(), 1u) << Sent(stack, "7100000000000005").dump();
  const auto reasons = DeadLetterReasons(stack);
  EXPECT_LE(reasons.size(), 1u);
  EXPECT_EQ(reasons.size(), reasons.count("comment_already_answered"));
  EXPECT_EQ(stack.MetricSum("sender-1", "katy_sender_possible_duplicates_total"), 1);
}

TEST(CommentsTest, OwnCommentsEditsOldAndUnmatchedCommentsGetNoReply) {
  testing::KatyStack stack({kRules, {}});
  ASSERT_TRUE(stack.ready());
  // The page's own comment, and a comment no comment rule matches (the fallback answers no comment).
  Comment(stack, {{"page", kPage}, {"psid", kPage}, {"text", "the price is in the link"}});
  Comment(stack, {{"page", kPage}, {"psid", "7100000000000002"}, {"text", "nice photo"}});
  // An edit that adds the keyword: the comment was not answered, and an edit never is.
  const auto edited = Comment(stack, {{"page", kPage}, {"psid", "7100000000000003"}, {"text", "hmm"}});
  Comment(stack, {{"page", kPage},
                  {"psid", "7100000000000003"},
                  {"comment_id", edited.value("comment_id", "")},
                  {"verb", "edited"},
                  {"text", "hmm, price?"}});
  // Eight days old: past Meta's 7 days, refused before any call.
  Comment(stack, {{"page", kPage}, {"psid", "7100000000000004"}, {"text", "price?"}, {"age_days", 8}});
  ASSERT_TRUE(stack.WaitUntilDrained(std::chrono::seconds(20))) << "logs in " << stack.dir();

  for (const char* psid : {kPage, "7100000000000002", "7100000000000003", "7100000000000004"}) {
    EXPECT_TRUE(Sent(stack, psid).empty()) << psid;
  }
  for (const auto& comment : Comments(stack, kPage)) {
    EXPECT_FALSE(comment["answered"].get<bool>()) << comment.dump();
    EXPECT_TRUE(comment["public_replies"].empty()) << comment.dump();
  }
  // The old comment's private reply and public reply both wait in the dead letters, with reasons.
  EXPECT_EQ(DeadLetterReasons(stack), (std::multiset<std::string>{"outside_comment_window", "outside_comment_window"}));
  EXPECT_GE(stack.MetricSum("sender", "katy_sender_sends_total", R"(result="outside_comment_window")"), 1);
}

TEST(CommentsTest, TheMessageInTheSameWebhookAsACommentIsAnswered) {
  testing::KatyStack stack({kRules, {}});
  ASSERT_TRUE(stack.ready());
  // The message's time moved to now (a year-old message is outside its window); the comment
  // keeps its creation time of 2025.
  std::string body = testing::ReadFixture("mixed_messaging_and_changes.json");
  const std::string now = std::to_string(
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
          .count());
  body.replace(body.find("1764230404000"), 13, now);
  http::Client http;
  auto posted =
      http.Post(stack.ingress_url(), body, testing::SignedWebhookHeaders(testing::KatyStack::kAppSecret, body));
  ASSERT_TRUE(posted.ok());
  ASSERT_EQ(posted->status, 200) << posted->body;
  nlohmann::json sent;
  ASSERT_TRUE(
      testing::WaitFor([&] { return !(sent = Sent(stack, "7100000000000001")).empty(); }, std::chrono::seconds(15)))
      << "logs in " << stack.dir();
  EXPECT_EQ(sent[0]["message"]["text"], "hi there");
  // Its comment was answered too, but the fixture's comment is from 2025: past Meta's 7 days,
  // its replies are dead letters, not calls.
  ASSERT_TRUE(stack.WaitUntilDrained(std::chrono::seconds(20)));
  EXPECT_EQ(DeadLetterReasons(stack), (std::multiset<std::string>{"outside_comment_window", "outside_comment_window"}));
  EXPECT_TRUE(Sent(stack, "7100000000000002").empty());
}

TEST(CommentsTest, AnInstagramCommentGetsItsPrivateReplyThroughTheAccount) {
  testing::KatyStack stack({kRules, {}});
  ASSERT_TRUE(stack.ready());
  const auto ids = Comment(stack, {{"page", kAccount},
                                   {"platform", "instagram"},
                                   {"psid", "ig-ana"},
                                   {"name", "ana.example"},
                                   {"text", "price please"}});
  nlohmann::json sent;
  ASSERT_TRUE(testing::WaitFor([&] { return !(sent = Sent(stack, "ig-ana")).empty(); }, std::chrono::seconds(15)))
      << "logs in " << stack.dir();
  EXPECT_EQ(sent[0]["page"], kAccount);
  EXPECT_EQ(sent[0]["comment_id"], ids["comment_id"]);
  EXPECT_EQ(sent[0]["message"]["text"], "Hi ana.example, the price is 20 EUR. You wrote: price please");
  ASSERT_TRUE(WaitForOnePublicReply(stack, kAccount, std::chrono::seconds(15)));
}

}  // namespace
}  // namespace katy
