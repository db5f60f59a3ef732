// Privacy (docs/privacy.md) with every service a real process: `katyctl forget` leaves no
// trace of a person anywhere in Redis, and nothing of another; a message to the forgotten
// person still queued is never sent; a rule forgets on request; an opted-out person gets
// nothing but answers to their own messages until they opt back in.
#include <gtest/gtest.h>

#include <chrono>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "common/http/http_client.h"
#include "common/redis/redis_client.h"
#include "tests/support/katy_stack.h"
#include "tests/support/test_support.h"

namespace katy {
namespace {

// Page-scoped ids are long digit strings; these two could not turn up inside a timestamp or
// an entry id by chance, so finding one in Redis means it was kept.
constexpr const char* kForgotten = "9988776655443322";
constexpr const char* kKept = "9911223344556677";

constexpr const char* kRules = R"(
rules:
  - name: welcome
    when: { first_contact: true }
    reply: "welcome"
  - name: price
    when: { keywords: [price] }
    reply: "20 EUR"
    set: { asked: price }
    remind: { after: 1h, name: NUDGE, keep: true }
  - name: delete_me
    when: { keywords: ["delete my data"] }
    forget: true
    reply: "Done: everything we held about you is erased."
  - name: stop
    when: { regex: "^(?i)\\s*stop\\s*$" }
    opt_out: true
    reply: "You will hear from us only when you write. Send START to undo."
  - name: start
    when: { regex: "^(?i)\\s*start\\s*$" }
    opt_in: true
    reply: "Welcome back."
  - name: soon
    when: { keywords: [soon] }
    reply: "I'll write again in a moment."
    remind: { after: 3s, name: SOON, keep: true }
  - name: soon_fires
    when: { timer: SOON }
    reply: "as promised"
fallback:
  reply: "echo: {{text}}"
)";

// Where the status page of a data deletion request says it is (ingress serves it).
constexpr const char* kPublicUrl = "https://bot.example.com";

class PrivacyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // The emulator's app id: its Graph takes "<app id>|<app secret>" for ids_for_pages.
    stack_ = std::make_unique<testing::KatyStack>(
        testing::KatyStack::Options{kRules, {{"KATY_PUBLIC_URL", kPublicUrl}, {"KATY_APP_ID", "1517776481860111"}}});
    ASSERT_TRUE(stack_->ready());
    redis_ = std::make_unique<redis::Client>(*redis::ParseUrl(stack_->redis_url()));
  }
  void Post(const std::string& path, const nlohmann::json& body) {
    auto answer = http_.Post(stack_->emulator_url() + path, body.dump());
    ASSERT_TRUE(answer.ok());
    EXPECT_EQ(answer->status, 200) << path << ": " << answer->body;
  }
  bool WaitForReplies(const std::string& psid, size_t n) {
    return testing::WaitFor([&] { return testing::RepliesTo(*stack_, psid) >= n; }, std::chrono::seconds(20));
  }
  // Meta's data deletion callback for `psid`, through the emulator: Katy's status and answer.
  nlohmann::json DeleteUser(const nlohmann::json& request) {
    auto answer = http_.Post(stack_->emulator_url() + "/_emulator/delete-user", request.dump());
    EXPECT_TRUE(answer.ok());
    if (!answer.ok()) return nlohmann::json::object();
    EXPECT_EQ(answer->status, 200) << answer->body;
    return nlohmann::json::parse(answer->body, nullptr, false);
  }
  // The status page a deletion answer points to, read from ingress itself.
  std::string StatusPage(const std::string& public_url, int* status = nullptr) {
    const std::string base = stack_->ingress_url().substr(0, stack_->ingress_url().rfind('/'));
    auto page = http_.Get(base + public_url.substr(std::string(kPublicUrl).size()));
    EXPECT_TRUE(page.ok());
    if (status != nullptr) *status = page.ok() ? page->status : 0;
    return page.ok() ? page->body : "";
  }
  testing::CommandResult Katyctl(const std::string& service, const std::string& args) {
    return testing::Katyctl(*stack_, service, args);
  }

  std::unique_ptr<testing::KatyStack> stack_;
  std::unique_ptr<redis::Client> redis_;
  http::Client http_;
};

// Three messages each from X and Y, an outbound API message and a dead letter for X, then a
// reply to X held by a paused sender while `katyctl forget` runs: afterwards nothing in Redis
// names X, Y's conversation is whole, the held reply never reaches Meta, and X writing again
// is a first contact.
TEST_F(PrivacyTest, ForgetLeavesNoTraceOfThePersonAndNothingOfAnotherIsLost) {
  for (const char* psid : {kForgotten, kKept}) {
    testing::Say(*stack_, psid, "hello");
    testing::Say(*stack_, psid, "what is the price?");
    testing::Say(*stack_, psid, "thanks");
    ASSERT_TRUE(WaitForReplies(psid, 3)) << "logs in " << stack_->dir();
  }
  ASSERT_EQ(Katyctl("sender", std::string("send 1045 ") + kForgotten + " \"your order shipped\" --key order-1").status,
            0);
  ASSERT_TRUE(WaitForReplies(kForgotten, 4));
  // Meta refuses the next reply for good (551: the person is unavailable): a dead letter.
  Post("/_emulator/faults", {{"fail_next", 1}, {"error", {{"http_status", 400}, {"code", 551}}}});
  testing::Say(*stack_, kForgotten, "are you there?");
  ASSERT_TRUE(
      testing::WaitFor([&] { return testing::DeadLetterReasons(*stack_).size() == 1; }, std::chrono::seconds(20)));
  Post("/_emulator/faults", nlohmann::json::object());

  ASSERT_EQ(Katyctl("sender", "pause 1045").status, 0);
  testing::Say(*stack_, kForgotten, "one more thing");
  testing::Say(*stack_, kKept, "one more thing");
  ASSERT_TRUE(testing::WaitFor([&] { return stack_->MetricSum("responder", "katy_responder_replies_total") >= 9; },
                               std::chrono::seconds(20)));
  const auto forgotten = Katyctl("responder", std::string("forget 1045 ") + kForgotten);
  ASSERT_EQ(forgotten.status, 0) << forgotten.output;
  EXPECT_NE(forgotten.output.find("conversation: 1"), std::string::npos) << forgotten.output;
  EXPECT_NE(forgotten.output.find("reminders: 1"), std::string::npos) << forgotten.output;
  EXPECT_NE(forgotten.output.find("outbound messages: "), std::string::npos) << "the held reply";
  EXPECT_NE(forgotten.output.find("dead letters: 1"), std::string::npos) << forgotten.output;
  EXPECT_NE(forgotten.output.find("outbound records: "), std::string::npos) << forgotten.output;
  ASSERT_EQ(Katyctl("sender", "resume 1045").status, 0);
  ASSERT_TRUE(stack_->WaitUntilDrained(std::chrono::seconds(30))) << "logs in " << stack_->dir();
  ASSERT_TRUE(WaitForReplies(kKept, 4));

  EXPECT_EQ(testing::TracesOf(*redis_, kForgotten), std::vector<std::string>{});
  EXPECT_FALSE(testing::TracesOf(*redis_, kKept).empty());
  const auto kept = Katyctl("responder", std::string("conv show 1045 ") + kKept);
  EXPECT_NE(kept.output.find("reminder:    NUDGE"), std::string::npos) << kept.output;
  EXPECT_NE(kept.output.find("asked:"), std::string::npos) << kept.output;
  EXPECT_EQ(testing::ReplyTexts(*stack_, kForgotten),
            (std::vector<std::string>{"welcome", "20 EUR", "echo: thanks", "your order shipped"}))
      << "the reply held while the person was forgotten never went";
  EXPECT_EQ(stack_->MetricSum("sender", "katy_sender_sends_total", R"(result="forgotten")"), 1);

  testing::Say(*stack_, kForgotten, "hello again");
  ASSERT_TRUE(WaitForReplies(kForgotten, 5));
  EXPECT_EQ(testing::ReplyTexts(*stack_, kForgotten).back(), "welcome") << "a first contact";
  EXPECT_EQ(Katyctl("responder", "forget 1045 not-a-psid").status, 1);
}

// "delete my data" erases the person, then answers; their next message is a first contact.
TEST_F(PrivacyTest, ARuleForgetsThePersonAndAnswersAfterTheErase) {
  // Each answered before the next: the erase would take replies still queued with it.
  testing::Say(*stack_, kForgotten, "hello");
  ASSERT_TRUE(WaitForReplies(kForgotten, 1)) << "logs in " << stack_->dir();
  testing::Say(*stack_, kForgotten, "the price?");
  ASSERT_TRUE(WaitForReplies(kForgotten, 2));
  testing::Say(*stack_, kForgotten, "please delete my data");
  ASSERT_TRUE(WaitForReplies(kForgotten, 3));
  EXPECT_EQ(testing::ReplyTexts(*stack_, kForgotten).back(), "Done: everything we held about you is erased.");
  ASSERT_TRUE(stack_->WaitUntilDrained(std::chrono::seconds(30)));
  const auto shown = Katyctl("responder", std::string("conv show 1045 ") + kForgotten);
  EXPECT_EQ(shown.output.find("reminder:"), std::string::npos) << shown.output;
  EXPECT_EQ(shown.output.find("asked:"), std::string::npos) << shown.output;
  EXPECT_EQ(stack_->MetricSum("responder", "katy_responder_privacy_actions_total", R"(action="forget")"), 1);
  testing::Say(*stack_, kForgotten, "hi");
  ASSERT_TRUE(WaitForReplies(kForgotten, 4));
  EXPECT_EQ(testing::ReplyTexts(*stack_, kForgotten).back(), "welcome");
}

// After STOP: a reminder falling due and an outbound API message are refused (opted_out), while
// the person's own next message is answered; START lets everything through again.
TEST_F(PrivacyTest, AfterStopOnlyAnswersGoUntilStart) {
  testing::Say(*stack_, kKept, "hello");
  testing::Say(*stack_, kKept, "write soon");  // a reminder due in 3 s
  testing::Say(*stack_, kKept, "STOP");
  ASSERT_TRUE(WaitForReplies(kKept, 3)) << "logs in " << stack_->dir();
  const auto shown = Katyctl("responder", std::string("conv show 1045 ") + kKept);
  EXPECT_NE(shown.output.find("opted out:"), std::string::npos) << shown.output;
  ASSERT_TRUE(testing::WaitFor([&] { return testing::DeadLetterReasons(*stack_).count("opted_out") == 1; },
                               std::chrono::seconds(20)))
      << "the reminder's reply is refused";
  const auto refused = Katyctl("sender", std::string("send 1045 ") + kKept + " \"a sale!\" --key sale-1");
  EXPECT_NE(refused.status, 0);
  EXPECT_NE(refused.output.find("opted_out"), std::string::npos) << refused.output;

  testing::Say(*stack_, kKept, "what is the price?");
  ASSERT_TRUE(WaitForReplies(kKept, 4));
  testing::Say(*stack_, kKept, "start");
  ASSERT_TRUE(WaitForReplies(kKept, 5));
  EXPECT_EQ(Katyctl("sender", std::string("send 1045 ") + kKept + " \"a sale!\" --key sale-2").status, 0);
  ASSERT_TRUE(WaitForReplies(kKept, 6));
  EXPECT_EQ(testing::ReplyTexts(*stack_, kKept),
            (std::vector<std::string>{"welcome", "I'll write again in a moment.",
                                      "You will hear from us only when you write. Send START to undo.", "20 EUR",
                                      "Welcome back.", "a sale!"}));
  EXPECT_EQ(stack_->MetricSum("responder", "katy_responder_privacy_actions_total", R"(action="opt_out")"), 1);
  EXPECT_EQ(stack_->MetricSum("responder", "katy_responder_privacy_actions_total", R"(action="opt_in")"), 1);
}

// Meta's data deletion callback: forged, wrongly signed and expired requests change nothing;
// one while Redis is down gets 503 and Meta's retry of it is carried out; the status page
// says done (or that nothing was held) and names no id.
TEST_F(PrivacyTest, TheDataDeletionCallbackErasesThePersonOnceItIsDurable) {
  testing::Say(*stack_, kForgotten, "hello");
  testing::Say(*stack_, kForgotten, "what is the price?");
  testing::Say(*stack_, kKept, "hello");
  ASSERT_TRUE(WaitForReplies(kForgotten, 2)) << "logs in " << stack_->dir();
  ASSERT_TRUE(WaitForReplies(kKept, 1));
  for (const char* forge : {"signature", "algorithm", "expired", "future"}) {
    const auto refused = DeleteUser({{"psid", kForgotten}, {"forge", forge}});
    EXPECT_EQ(refused["status"], 400) << forge << ": " << refused.dump();
  }
  EXPECT_EQ(stack_->MetricSum("ingress", "katy_ingress_rejections_total", R"(reason="deletion_bad_signature")"), 1);
  EXPECT_EQ(stack_->MetricSum("ingress", "katy_ingress_rejections_total", R"(reason="deletion_expired")"), 1);
  ASSERT_TRUE(stack_->WaitUntilDrained(std::chrono::seconds(20)));
  EXPECT_FALSE(testing::TracesOf(*redis_, kForgotten).empty()) << "a refused request erases nothing";

  stack_->StopRedis();
  EXPECT_EQ(DeleteUser({{"psid", kForgotten}})["status"], 503);
  stack_->StartRedis();
  nlohmann::json accepted;
  ASSERT_TRUE(testing::WaitFor(
      [&] {
        accepted = DeleteUser({{"resend", true}});
        return accepted["status"] == 200;
      },
      std::chrono::seconds(20)))
      << accepted.dump();
  const std::string code = accepted["answer"]["confirmation_code"];
  const std::string url = accepted["answer"]["url"];
  EXPECT_EQ(url, std::string(kPublicUrl) + "/data-deletion/status?code=" + code);
  EXPECT_EQ(code.find(kForgotten), std::string::npos);
  EXPECT_EQ(code.find(accepted["app_scoped_id"].get<std::string>()), std::string::npos);
  ASSERT_TRUE(
      testing::WaitFor([&] { return StatusPage(url).find(": done.") != std::string::npos; }, std::chrono::seconds(20)))
      << StatusPage(url) << " logs in " << stack_->dir();
  EXPECT_EQ(StatusPage(url).find("held nothing"), std::string::npos);
  ASSERT_TRUE(stack_->WaitUntilDrained(std::chrono::seconds(20)));
  EXPECT_EQ(testing::TracesOf(*redis_, kForgotten), std::vector<std::string>{});
  EXPECT_FALSE(testing::TracesOf(*redis_, kKept).empty());
  EXPECT_EQ(stack_->MetricSum("responder", "katy_responder_privacy_actions_total", R"(action="data_deletion")"), 1);

  // Someone who never wrote: Meta's mapping names no page; nothing was held.
  const auto nobody = DeleteUser({{"psid", "5550001112223334"}});
  ASSERT_EQ(nobody["status"], 200) << nobody.dump();
  const std::string nobody_url = nobody["answer"]["url"];
  ASSERT_TRUE(testing::WaitFor([&] { return StatusPage(nobody_url).find("held nothing") != std::string::npos; },
                               std::chrono::seconds(20)));
  int status = 0;
  StatusPage(std::string(kPublicUrl) + "/data-deletion/status?code=1-2-3", &status);
  EXPECT_EQ(status, 404) << "a code Katy never gave";
}

// A message the person deletes leaves no trace of its text: one still unprocessed when the
// deletion comes (the responders paused), and one whose reply was dead-lettered.
TEST_F(PrivacyTest, ADeletedMessagesTextLeavesWhatKatyHolds) {
  auto say = [&](const std::string& text) {
    auto answer = http_.Post(stack_->emulator_url() + "/_emulator/say",
                             nlohmann::json{{"page", "1045"}, {"psid", kKept}, {"text", text}}.dump());
    EXPECT_TRUE(answer.ok() && answer->status == 200);
    return answer.ok() ? nlohmann::json::parse(answer->body, nullptr, false).value("mid", "") : "";
  };
  testing::Say(*stack_, kKept, "hello");
  ASSERT_TRUE(WaitForReplies(kKept, 1)) << "logs in " << stack_->dir();
  // Meta refuses the reply for good (551): its dead letter echoes the text.
  Post("/_emulator/faults", {{"fail_next", 1}, {"error", {{"http_status", 400}, {"code", 551}}}});
  const std::string dead = say("my card is 4111-dead-letter");
  ASSERT_TRUE(
      testing::WaitFor([&] { return testing::DeadLetterReasons(*stack_).size() == 1; }, std::chrono::seconds(20)));
  Post("/_emulator/faults", nlohmann::json::object());

  ASSERT_EQ(Katyctl("responder", "pause").status, 0);
  const std::string unprocessed = say("my secret is 4242-unprocessed");
  Post("/_emulator/unsend", {{"page", "1045"}, {"psid", kKept}, {"mid", unprocessed}});
  Post("/_emulator/unsend", {{"page", "1045"}, {"psid", kKept}, {"mid", dead}});
  EXPECT_FALSE(testing::TracesOf(*redis_, "4242-unprocessed").empty()) << "queued, not yet handled";
  ASSERT_EQ(Katyctl("responder", "resume").status, 0);
  ASSERT_TRUE(testing::WaitFor(
      [&] { return stack_->MetricSum("responder", "katy_responder_privacy_actions_total", R"(action="scrub")") == 2; },
      std::chrono::seconds(20)))
      << "logs in " << stack_->dir();
  ASSERT_TRUE(stack_->WaitUntilDrained(std::chrono::seconds(20)));
  EXPECT_EQ(testing::TracesOf(*redis_, "4242-unprocessed"), std::vector<std::string>{});
  EXPECT_EQ(testing::TracesOf(*redis_, "4111-dead-letter"), std::vector<std::string>{});
  EXPECT_TRUE(testing::DeadLetterReasons(*stack_).empty()) << "a reply to a deleted message is not replayable";
  EXPECT_FALSE(testing::TracesOf(*redis_, kKept).empty()) << "the conversation itself stays";
}

// Every time docs/privacy.md says Katy keeps something is the setting's: the conversation,
// dedupe marks, delivered marks, the outbound API's keys, a deletion request's outcome.
TEST(RetentionTest, EachKindOfRecordIsKeptForItsSettingsTime) {
  testing::KatyStack stack({kRules,
                            {{"KATY_CONVERSATION_TTL_D", "2"},
                             {"KATY_DEDUPE_TTL_S", "3000"},
                             {"KATY_SENT_MARK_TTL_S", "4000"},
                             {"KATY_DELETION_STATUS_TTL_D", "3"},
                             {"KATY_PUBLIC_URL", kPublicUrl},
                             {"KATY_APP_ID", "1517776481860111"}}});
  ASSERT_TRUE(stack.ready());
  redis::Client redis(*redis::ParseUrl(stack.redis_url()));
  testing::Say(stack, kKept, "hello");
  ASSERT_TRUE(testing::WaitFor([&] { return testing::RepliesTo(stack, kKept) >= 1; }, std::chrono::seconds(20)));
  ASSERT_EQ(testing::Katyctl(stack, "sender", std::string("send 1045 ") + kKept + " \"news\" --key k1").status, 0);
  ASSERT_TRUE(testing::WaitFor([&] { return testing::RepliesTo(stack, kKept) >= 2; }, std::chrono::seconds(20)));
  http::Client http;
  auto deletion = http.Post(stack.emulator_url() + "/_emulator/delete-user", R"({"psid":"5550001112223334"})");
  ASSERT_TRUE(deletion.ok() && deletion->status == 200);
  ASSERT_TRUE(stack.WaitUntilDrained(std::chrono::seconds(20)));
  // The TTLs of the keys of each kind, by the part of their name that tells the kind.
  std::map<std::string, std::vector<int64_t>> ttls;
  ASSERT_TRUE(testing::WaitFor(
      [&] {
        ttls.clear();
        auto keys = redis.ScanKeys("katy:*");
        if (!keys.ok()) return false;
        for (const auto& key : *keys) {
          for (const char* kind : {":conv:", ":seen@", ":sent@", ":sent:", ":outbound:", ":deletion:"}) {
            auto ttl = redis.Command({"TTL", key});
            if (key.find(kind) != std::string::npos && ttl.ok()) ttls[kind].push_back(ttl->integer);
          }
        }
        return ttls.size() == 6;
      },
      std::chrono::seconds(10)));
  auto all_near = [&](const char* kind, int64_t seconds, int64_t slack) {
    for (int64_t ttl : ttls[kind]) EXPECT_NEAR(ttl, seconds, slack) << kind;
  };
  all_near(":conv:", 2 * 24 * 3600, 60);
  all_near(":seen@", 3000, 60);  // from the end of its 5 s bucket
  all_near(":sent@", 4000, 60);  // the replies' marks, from the end of their 5 s bucket
  all_near(":sent:", 4000, 60);  // the outbound API's message keeps a mark of its own
  all_near(":outbound:", 4000, 60);
  all_near(":deletion:", 3 * 24 * 3600, 60);
}

}  // namespace
}  // namespace katy
