// A person takes a conversation over from the bot, and gives it back (issue 19, first part):
// through the emulator's Page Inbox, with every service a real process.
#include <gtest/gtest.h>

#include <functional>
#include <nlohmann/json.hpp>
#include <thread>

#include "common/clock.h"
#include "common/http/http_client.h"
#include "common/redis/options.h"
#include "common/redis/redis_client.h"
#include "common/shard.h"
#include "tests/support/katy_stack.h"
#include "tests/support/test_support.h"

namespace katy {
namespace {

constexpr const char* kPage = "1045";
constexpr const char* kKatyAppId = "1517776481860111";  // the emulator's app id for the bot

class HandoverTest : public ::testing::Test {
 protected:
  void Start(const std::string& human_timeout_s) {
    stack_ = std::make_unique<testing::KatyStack>(testing::KatyStack::Options{
        "fallback:\n  reply: \"bot: {{text}}\"\n",
        {{"KATY_APP_ID", kKatyAppId}, {"KATY_HUMAN_TIMEOUT_S", human_timeout_s}, {"KATY_EMULATOR_ECHOES", "1"}}});
    ASSERT_TRUE(stack_->ready());
  }

  void Post(const std::string& path, const nlohmann::json& body) {
    auto answer = http_.Post(stack_->emulator_url() + path, body.dump());
    ASSERT_TRUE(answer.ok());
    EXPECT_EQ(answer->status, 200) << path << ": " << answer->body;
  }
  void Say(const std::string& psid, const std::string& text) {
    Post("/_emulator/say", {{"page", kPage}, {"psid", psid}, {"text", text}});
  }
  void InboxReply(const std::string& psid, const std::string& text) {
    Post("/_emulator/inbox/reply", {{"page", kPage}, {"psid", psid}, {"text", text}});
  }

  // The bot's messages to `psid` (not the Page Inbox's), their texts in order.
  std::vector<std::string> BotTexts(const std::string& psid) {
    std::vector<std::string> texts;
    auto response = http_.Get(stack_->emulator_url() + "/_emulator/messages?psid=" + psid);
    if (!response || response->status != 200) return texts;
    for (const auto& message : nlohmann::json::parse(response->body)) {
      if (!message.contains("app_id") && message.contains("message")) texts.push_back(message["message"]["text"]);
    }
    return texts;
  }
  bool WaitForBotTexts(const std::string& psid, size_t n) {
    return testing::WaitFor([&] { return BotTexts(psid).size() >= n; }, std::chrono::seconds(15));
  }
  // Whom the emulator (Meta) routes `psid`'s conversation to, as thread_owner answers.
  std::string ThreadOwner(const std::string& psid) {
    auto body = http_.Get(stack_->emulator_url() + "/v25.0/" + kPage + "/thread_owner?recipient=" + psid +
                          "&access_token=" + testing::KatyStack::kPageToken);
    if (!body || body->status != 200) return "";
    return nlohmann::json::parse(body->body)["data"][0]["thread_owner"]["app_id"].get<std::string>();
  }
  bool OwnerBecomes(const std::string& psid, const std::string& app) {
    return testing::WaitFor([&] { return ThreadOwner(psid) == app; }, std::chrono::seconds(10));
  }
  double Withheld() { return stack_->MetricSum("responder", "katy_responder_replies_withheld_total"); }
  testing::CommandResult Katyctl(const std::string& service, const std::string& args) {
    return testing::RunCommand(testing::BinaryPath("katyctl") + " --addr " + stack_->GrpcAddress(service) + " " + args);
  }
  std::vector<std::string> AllTexts(const std::string& psid) {
    std::vector<std::string> texts;
    auto response = http_.Get(stack_->emulator_url() + "/_emulator/messages?psid=" + psid);
    for (const auto& message : nlohmann::json::parse(response->body)) {
      if (message.contains("message")) texts.push_back(message["message"]["text"]);
    }
    return texts;
  }

  std::unique_ptr<testing::KatyStack> stack_;
  http::Client http_;
};

// A person answers from the Page Inbox: the echo from the inbox app pauses the bot in that
// conversation (its own echoes do not), the user's next message gets no bot reply, and the
// bot answers again once the person has been silent for KATY_HUMAN_TIMEOUT_S.
TEST_F(HandoverTest, AHumansEchoPausesTheBotUntilTheTimeout) {
  Start("4");
  Say("h1", "hello");
  ASSERT_TRUE(WaitForBotTexts("h1", 1)) << "logs in " << stack_->dir();
  Say("h1", "still the bot?");  // the bot's own echo came back meanwhile: it changed nothing
  ASSERT_TRUE(WaitForBotTexts("h1", 2));

  const auto paused_at = std::chrono::steady_clock::now();
  InboxReply("h1", "Hi, Sam from support here.");
  Say("h1", "thanks Sam");
  ASSERT_TRUE(testing::WaitFor([&] { return Withheld() >= 1; }, std::chrono::seconds(10)))
      << "logs in " << stack_->dir();
  EXPECT_EQ(BotTexts("h1").size(), 2u) << "the bot talked over the person";
  EXPECT_EQ(stack_->MetricSum("responder", "katy_conversations_with_others"), 1);

  std::this_thread::sleep_until(paused_at + std::chrono::milliseconds(5500));
  Say("h1", "anyone?");
  ASSERT_TRUE(WaitForBotTexts("h1", 3)) << "the bot did not resume; logs in " << stack_->dir();
  EXPECT_EQ(BotTexts("h1").back(), "bot: anyone?");
  EXPECT_EQ(stack_->MetricSum("responder", "katy_conversations_with_others"), 0);
  EXPECT_GE(stack_->MetricSum("responder", "katy_responder_handovers_total", "reason=\"timeout\""), 1);
}

// The person hands the thread back from the inbox (pass_thread_control to the bot's app): the
// bot answers again at once. With the thread taken in the inbox (take_thread_control), the
// person's messages reach Katy in standby and get no reply. No timeout here (0: never).
TEST_F(HandoverTest, ThePageInboxTakesAndPassesTheThreadBack) {
  Start("0");
  Say("h2", "hello");
  ASSERT_TRUE(WaitForBotTexts("h2", 1)) << "logs in " << stack_->dir();

  InboxReply("h2", "A person here.");
  Say("h2", "oh hi");
  ASSERT_TRUE(testing::WaitFor([&] { return Withheld() >= 1; }, std::chrono::seconds(10)));
  Post("/_emulator/inbox/pass", {{"page", kPage}, {"psid", "h2"}});
  Say("h2", "back to the bot");
  ASSERT_TRUE(WaitForBotTexts("h2", 2)) << "logs in " << stack_->dir();
  EXPECT_EQ(BotTexts("h2").back(), "bot: back to the bot");

  Post("/_emulator/inbox/take", {{"page", kPage}, {"psid", "h2"}});
  EXPECT_EQ(ThreadOwner("h2"), "263902037430900");
  Say("h2", "in standby now");
  Post("/_emulator/inbox/pass", {{"page", kPage}, {"psid", "h2"}});
  Say("h2", "and back");
  ASSERT_TRUE(WaitForBotTexts("h2", 3)) << "logs in " << stack_->dir();
  EXPECT_EQ(BotTexts("h2"), (std::vector<std::string>{"bot: hello", "bot: back to the bot", "bot: and back"}));
  EXPECT_GE(stack_->MetricSum("responder", "katy_responder_handovers_total", "reason=\"take\""), 1);
  EXPECT_GE(stack_->MetricSum("responder", "katy_responder_handovers_total", "reason=\"pass\""), 2);
}

// The terminal's handle on one conversation: `katyctl conv pause` hands the thread to the Page
// Inbox (a pass_thread_control call the emulator records) and the bot stays quiet; `conv show`
// says who has it and lists the latest events; `conv resume` takes it back (take_thread_control).
TEST_F(HandoverTest, KatyctlPausesShowsAndResumesAConversation) {
  Start("0");
  Say("c1", "hello");
  ASSERT_TRUE(WaitForBotTexts("c1", 1)) << "logs in " << stack_->dir();
  auto paused = Katyctl("responder", std::string("conv pause ") + kPage + " c1 \"Sam takes over\"");
  ASSERT_EQ(paused.status, 0) << paused.output;
  ASSERT_TRUE(OwnerBecomes("c1", "263902037430900"))
      << "no pass_thread_control reached Meta; logs in " << stack_->dir();
  Say("c1", "is anyone there?");  // the emulator delivers it in standby: the inbox has the thread
  auto shown = Katyctl("responder", std::string("conv show ") + kPage + " c1");
  ASSERT_EQ(shown.status, 0) << shown.output;
  EXPECT_NE(shown.output.find("thread:      the Page Inbox (263902037430900)"), std::string::npos) << shown.output;
  EXPECT_NE(shown.output.find("bot window:  open"), std::string::npos) << shown.output;
  EXPECT_NE(shown.output.find("katy_pause"), std::string::npos) << shown.output;
  auto json = nlohmann::json::parse(Katyctl("responder", std::string("--json conv show ") + kPage + " c1").output);
  EXPECT_EQ(json["owner"], "263902037430900");
  EXPECT_TRUE(json["window_open"].get<bool>());
  // The shard's index of taken threads lives as long as a conversation, not forever.
  redis::Client redis(*redis::ParseUrl(stack_->redis_url()));
  const auto owned_ttl = redis.Command({"TTL", KeySpace("katy", 16).Owned(ShardOf(kPage, "c1", 16))});
  ASSERT_TRUE(owned_ttl.ok());
  EXPECT_GT(owned_ttl->integer, 0);

  ASSERT_EQ(Katyctl("responder", std::string("conv resume ") + kPage + " c1").status, 0);
  ASSERT_TRUE(OwnerBecomes("c1", kKatyAppId)) << "no take_thread_control reached Meta";
  Say("c1", "back?");
  ASSERT_TRUE(WaitForBotTexts("c1", 2)) << "logs in " << stack_->dir();
  EXPECT_EQ(BotTexts("c1"), (std::vector<std::string>{"bot: hello", "bot: back?"}));
  EXPECT_EQ(Katyctl("responder", "conv pause").status, 2);  // PAGE and PSID are needed
}

// A rule hands the conversation to the Page Inbox: its message goes out, then the
// pass_thread_control call; the person answers from the inbox, the bot stays quiet, and when
// the inbox passes the thread back the bot answers again.
TEST_F(HandoverTest, ARuleHandsOverAndThePersonGivesItBack) {
  stack_ = std::make_unique<testing::KatyStack>(testing::KatyStack::Options{
      R"(
rules:
  - when: { keywords: [human, person] }
    reply: "Connecting you to a person..."
    handover: { to: inbox, reason: "asked for a person: {{text}}" }
fallback:
  reply: "bot: {{text}}"
)",
      {{"KATY_APP_ID", kKatyAppId}, {"KATY_HUMAN_TIMEOUT_S", "0"}, {"KATY_EMULATOR_ECHOES", "1"}}});
  ASSERT_TRUE(stack_->ready());
  Say("r1", "I want a human");
  ASSERT_TRUE(WaitForBotTexts("r1", 1)) << "logs in " << stack_->dir();
  EXPECT_EQ(BotTexts("r1")[0], "Connecting you to a person...");
  ASSERT_TRUE(OwnerBecomes("r1", "263902037430900")) << "logs in " << stack_->dir();
  Say("r1", "hello?");  // in standby now
  InboxReply("r1", "Hi, I'm Sam.");
  Say("r1", "hi Sam");
  Post("/_emulator/inbox/pass", {{"page", kPage}, {"psid", "r1"}});
  Say("r1", "thanks, bye");
  ASSERT_TRUE(WaitForBotTexts("r1", 2)) << "logs in " << stack_->dir();
  EXPECT_EQ(BotTexts("r1"), (std::vector<std::string>{"Connecting you to a person...", "bot: thanks, bye"}));
  // At Meta, in this order: the rule's reply, then the pass (the person would otherwise meet a
  // conversation the bot still writes into).
  EXPECT_EQ(testing::CallsAbout(*stack_, "r1"),
            (std::vector<std::string>{"Connecting you to a person...", "<pass_thread_control 263902037430900>",
                                      "inbox: Hi, I'm Sam.", "bot: thanks, bye"}));
  EXPECT_GE(stack_->MetricSum("responder", "katy_responder_handovers_total", "reason=\"rule\""), 1);
  EXPECT_EQ(stack_->MetricSum("sender", "katy_sender_delivered_total", "source=\"handover\""), 1);
}

constexpr const char* kHandoverRules = R"(
rules:
  - when: { keywords: [human, person] }
    reply: "Connecting you to a person..."
    handover: inbox
  - when: { keywords: [bot] }
    reply: "The bot is back."
    handover: back
fallback:
  reply: "bot: {{text}}"
)";

// A person answered from the inbox, so the bot keeps quiet; the user asks for the bot, and the
// rule's `handover: back` takes the thread (take_thread_control) before its reply goes out.
TEST_F(HandoverTest, ARuleTakesTheThreadBackBeforeItsReply) {
  stack_ = std::make_unique<testing::KatyStack>(testing::KatyStack::Options{
      kHandoverRules, {{"KATY_APP_ID", kKatyAppId}, {"KATY_HUMAN_TIMEOUT_S", "0"}, {"KATY_EMULATOR_ECHOES", "1"}}});
  ASSERT_TRUE(stack_->ready());
  Say("b1", "hello");
  ASSERT_TRUE(WaitForBotTexts("b1", 1)) << "logs in " << stack_->dir();
  InboxReply("b1", "Sam here.");
  Say("b1", "thanks Sam");
  ASSERT_TRUE(testing::WaitFor([&] { return Withheld() >= 1; }, std::chrono::seconds(10)));
  Say("b1", "back to the bot please");
  ASSERT_TRUE(WaitForBotTexts("b1", 2)) << "logs in " << stack_->dir();
  EXPECT_EQ(testing::CallsAbout(*stack_, "b1"),
            (std::vector<std::string>{"bot: hello", "inbox: Sam here.", "<take_thread_control>", "The bot is back."}));
  Say("b1", "and now?");
  ASSERT_TRUE(WaitForBotTexts("b1", 3)) << "logs in " << stack_->dir();
  EXPECT_EQ(BotTexts("b1").back(), "bot: and now?");
  EXPECT_GE(stack_->MetricSum("responder", "katy_responder_handovers_total", "direction=\"to_katy\",reason=\"rule\""),
            1);
}

// Thirty people ask for a person at the same moment, across the shards: each gets the rule's
// reply and then one pass, the inbox has every thread, and each gets the bot back when the
// inbox passes it back.
TEST_F(HandoverTest, ManyConversationsHandOverAtOnceEachReplyBeforeItsPass) {
  stack_ = std::make_unique<testing::KatyStack>(testing::KatyStack::Options{
      kHandoverRules, {{"KATY_APP_ID", kKatyAppId}, {"KATY_HUMAN_TIMEOUT_S", "0"}, {"KATY_EMULATOR_ECHOES", "1"}}});
  ASSERT_TRUE(stack_->ready());
  std::vector<std::string> users;
  for (int i = 0; i < 30; ++i) users.push_back("m" + std::to_string(i));
  auto all_at_once = [&](const std::function<void(const std::string&)>& act) {
    std::vector<std::thread> threads;
    for (const auto& psid : users) threads.emplace_back([&act, psid] { act(psid); });
    for (auto& thread : threads) thread.join();
  };
  // Each thread its own HTTP client (testing::Say makes one): http_ is for one thread.
  all_at_once([&](const std::string& psid) { testing::Say(*stack_, psid, "a human please"); });
  ASSERT_TRUE(stack_->WaitUntilDrained(std::chrono::seconds(30))) << "logs in " << stack_->dir();
  for (const auto& psid : users) {
    EXPECT_EQ(testing::CallsAbout(*stack_, psid),
              (std::vector<std::string>{"Connecting you to a person...", "<pass_thread_control 263902037430900>"}))
        << psid;
    EXPECT_EQ(ThreadOwner(psid), "263902037430900") << psid;
  }
  all_at_once([&](const std::string& psid) {
    http::Client http;
    auto passed = http.Post(stack_->emulator_url() + "/_emulator/inbox/pass",
                            nlohmann::json{{"page", kPage}, {"psid", psid}}.dump());
    EXPECT_TRUE(passed.ok() && passed->status == 200) << psid;
  });
  all_at_once([&](const std::string& psid) { testing::Say(*stack_, psid, "hello again"); });
  ASSERT_TRUE(stack_->WaitUntilDrained(std::chrono::seconds(30))) << "logs in " << stack_->dir();
  for (const auto& psid : users) EXPECT_EQ(BotTexts(psid).back(), "bot: hello again") << psid;
  EXPECT_EQ(stack_->MetricSum("sender", "katy_sender_delivered_total", "source=\"handover\""), 30);
}

// The outbound API, through katyctl: the same key twice sends once; an outbound message waits
// its turn behind the bot's replies to the same person (the sender was paused while they
// queued); a HUMAN_AGENT message 8 days after the user's last message and a retired tag are
// refused, and nothing is sent.
TEST_F(HandoverTest, OutboundSendsOnceInOrderAndRefusesWhatMetaWould) {
  Start("0");
  Say("o1", "hello");
  ASSERT_TRUE(WaitForBotTexts("o1", 1)) << "logs in " << stack_->dir();

  const std::string send = std::string("send ") + kPage + " o1 ";
  auto first = Katyctl("sender", send + "\"Your order shipped\" --key order-42");
  ASSERT_EQ(first.status, 0) << first.output;
  auto again = Katyctl("sender", send + "\"Your order shipped\" --key order-42");
  ASSERT_EQ(again.status, 0) << again.output;
  EXPECT_NE(again.output.find("already queued (same key): api:1045:o1:order-42"), std::string::npos) << again.output;
  ASSERT_TRUE(testing::WaitFor([&] { return AllTexts("o1").size() >= 2; }, std::chrono::seconds(10)));
  auto status = Katyctl("sender", "message api:1045:o1:order-42");
  EXPECT_EQ(status.status, 0) << status.output;
  EXPECT_EQ(status.output.rfind("sent (Meta's id m_", 0), 0u) << status.output;

  // Paused, the sender keeps the bot's reply and the person's message queued, in their order.
  ASSERT_EQ(Katyctl("sender", std::string("pause ") + kPage).status, 0);
  Say("o1", "one");
  ASSERT_TRUE(testing::WaitFor([&] { return stack_->MetricSum("responder", "katy_responder_replies_total") >= 2; },
                               std::chrono::seconds(10)));
  ASSERT_EQ(Katyctl("sender", send + "\"two, from a person\" --key k2").status, 0);
  Say("o1", "three");
  ASSERT_TRUE(testing::WaitFor([&] { return stack_->MetricSum("responder", "katy_responder_replies_total") >= 3; },
                               std::chrono::seconds(10)));
  ASSERT_EQ(Katyctl("sender", std::string("resume ") + kPage).status, 0);
  ASSERT_TRUE(testing::WaitFor([&] { return AllTexts("o1").size() >= 5; }, std::chrono::seconds(15)));
  EXPECT_EQ(AllTexts("o1"), (std::vector<std::string>{"bot: hello", "Your order shipped", "bot: one",
                                                      "two, from a person", "bot: three"}));

  // Day 8 after the user's last message: HUMAN_AGENT is refused, as is a retired tag.
  redis::Client redis(*redis::ParseUrl(stack_->redis_url()));
  const KeySpace keys("katy", 16);
  const int64_t eight_days_ago = WallClockMs() - 8LL * 24 * 3600 * 1000;
  ASSERT_TRUE(redis
                  .Command({"HSET", keys.Conversation(ShardOf(kPage, "o2", 16), kPage, "o2"), "last_user_ms",
                            std::to_string(eight_days_ago)})
                  .ok());
  auto late = Katyctl("sender", std::string("send ") + kPage + " o2 \"sorry for the wait\" --tag HUMAN_AGENT");
  EXPECT_EQ(late.status, 1);
  EXPECT_NE(late.output.find("HUMAN_AGENT is allowed within 7 days"), std::string::npos) << late.output;
  auto retired = Katyctl("sender", std::string("send ") + kPage + " o1 \"parcel\" --tag SHIPPING_UPDATE");
  EXPECT_EQ(retired.status, 1);
  EXPECT_NE(retired.output.find("retired"), std::string::npos) << retired.output;
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  EXPECT_TRUE(AllTexts("o2").empty());
  EXPECT_EQ(AllTexts("o1").size(), 5u);
  EXPECT_EQ(stack_->MetricSum("sender", "katy_sender_delivered_total", "source=\"outbound\""), 2);
  EXPECT_EQ(stack_->MetricSum("sender", "katy_sender_delivered_total", "source=\"reply\""), 3);
  EXPECT_EQ(stack_->MetricSum("sender", "katy_outbound_requests_total", "result=\"refused\""), 2);
}

// The outbound API's promises under pressure and over a message's life:
// - eight callers racing with one key queue one message, and all are told its id;
// - the key used again after delivery sends nothing more;
// - GetMessage says queued while the page is paused, sent once Meta took it, and failed with
//   the dead letter's reason;
// - HUMAN_AGENT's 7 days are checked again when the message is sent: one queued inside them
//   and sent after them is dead-lettered (outside_human_agent_window), not sent.
TEST_F(HandoverTest, OutboundKeysHoldUnderRacesAndAfterDeliveryAndEveryStateIsReported) {
  Start("0");
  Say("q1", "hello");
  ASSERT_TRUE(WaitForBotTexts("q1", 1)) << "logs in " << stack_->dir();
  ASSERT_EQ(Katyctl("sender", std::string("pause ") + kPage).status, 0);

  std::vector<testing::CommandResult> racers(8);
  std::vector<std::thread> threads;
  for (auto& racer : racers) {
    threads.emplace_back(
        [&] { racer = Katyctl("sender", std::string("send ") + kPage + " q1 \"raced\" --key race-1"); });
  }
  for (auto& thread : threads) thread.join();
  const std::string id = "api:1045:q1:race-1";
  int first = 0;
  for (const auto& racer : racers) {
    ASSERT_EQ(racer.status, 0) << racer.output;
    EXPECT_NE(racer.output.find(id), std::string::npos) << racer.output;
    if (racer.output.rfind("queued: ", 0) == 0) ++first;
  }
  EXPECT_EQ(first, 1) << "one caller queues it, the others are told it is queued already";
  auto queued = Katyctl("sender", "message " + id);
  EXPECT_EQ(queued.output, "queued\n");

  // Six days and 23 hours 59 minutes 57 seconds since q2 last wrote: HUMAN_AGENT is still
  // accepted, and by the time the page is resumed the 7 days are over.
  redis::Client redis(*redis::ParseUrl(stack_->redis_url()));
  const KeySpace keys("katy", 16);
  const int64_t almost_seven_days_ago = WallClockMs() - (7LL * 24 * 3600 - 3) * 1000;
  ASSERT_TRUE(redis
                  .Command({"HSET", keys.Conversation(ShardOf(kPage, "q2", 16), kPage, "q2"), "last_user_ms",
                            std::to_string(almost_seven_days_ago)})
                  .ok());
  auto late =
      Katyctl("sender", std::string("send ") + kPage + " q2 \"sorry for the wait\" --tag HUMAN_AGENT --key late-1");
  ASSERT_EQ(late.status, 0) << late.output;
  std::this_thread::sleep_for(std::chrono::seconds(4));  // the 7 days run out in the queue
  ASSERT_EQ(Katyctl("sender", std::string("resume ") + kPage).status, 0);
  ASSERT_TRUE(stack_->WaitUntilDrained(std::chrono::seconds(15))) << "logs in " << stack_->dir();

  EXPECT_EQ(AllTexts("q1"), (std::vector<std::string>{"bot: hello", "raced"}));
  EXPECT_EQ(Katyctl("sender", "message " + id).output.rfind("sent (Meta's id m_", 0), 0u);
  auto failed = Katyctl("sender", "message api:1045:q2:late-1");
  EXPECT_EQ(failed.status, 1);
  EXPECT_EQ(failed.output, "failed: outside_human_agent_window\n");
  EXPECT_TRUE(AllTexts("q2").empty());

  auto reused = Katyctl("sender", std::string("send ") + kPage + " q1 \"raced\" --key race-1");
  ASSERT_EQ(reused.status, 0) << reused.output;
  EXPECT_EQ(reused.output, "already queued (same key): " + id + "\n");
  ASSERT_TRUE(stack_->WaitUntilDrained(std::chrono::seconds(15)));
  EXPECT_EQ(AllTexts("q1").size(), 2u) << "the key used again after delivery sent it again";
  EXPECT_EQ(stack_->MetricSum("sender", "katy_sender_delivered_total", "source=\"outbound\""), 1);
  EXPECT_EQ(stack_->MetricSum("sender", "katy_outbound_requests_total", "result=\"duplicate\""), 8);
}

// Two integrations that both use "order-1", for two people on the same shard: both people get
// their message (the key is scoped to page and recipient), and neither caller is told the
// other's message id. Before the scope, the second was dropped as a duplicate.
TEST_F(HandoverTest, OutboundKeysAreScopedToTheirRecipient) {
  Start("0");
  const std::string first = "k1";
  std::string second;
  for (int i = 0; second.empty(); ++i) {
    const std::string candidate = "k" + std::to_string(i + 2);
    if (ShardOf(kPage, candidate, 16) == ShardOf(kPage, first, 16)) second = candidate;
  }
  for (const auto& psid : {first, second}) {
    Say(psid, "hello");
    ASSERT_TRUE(WaitForBotTexts(psid, 1)) << "logs in " << stack_->dir();
  }
  auto to_first = Katyctl("sender", std::string("send ") + kPage + " " + first + " \"for the first\" --key order-1");
  ASSERT_EQ(to_first.status, 0) << to_first.output;
  auto to_second = Katyctl("sender", std::string("send ") + kPage + " " + second + " \"for the second\" --key order-1");
  ASSERT_EQ(to_second.status, 0) << to_second.output;
  EXPECT_EQ(to_second.output.find("already queued"), std::string::npos) << to_second.output;
  EXPECT_EQ(to_second.output.find(first), std::string::npos) << to_second.output;
  ASSERT_TRUE(testing::WaitFor([&] { return AllTexts(first).size() >= 2 && AllTexts(second).size() >= 2; },
                               std::chrono::seconds(10)));
  EXPECT_EQ(AllTexts(first), (std::vector<std::string>{"bot: hello", "for the first"}));
  EXPECT_EQ(AllTexts(second), (std::vector<std::string>{"bot: hello", "for the second"}));
  // A page id that would walk the Graph path is refused before anything is queued.
  auto walk = Katyctl("sender", "send 1045/../4242 " + first + " \"hi\" --key walk-1");
  EXPECT_EQ(walk.status, 1);
  EXPECT_NE(walk.output.find("page_id must be"), std::string::npos) << walk.output;
}

// The bot says it is a bot (KATY_BOT_DISCLOSURE) before its first reply in a conversation,
// not before the next; again after a day of silence (the conversation aged in Redis); and again
// when a person who had the thread in the Page Inbox hands it back. Each time once, in order,
// and counted by occasion.
TEST_F(HandoverTest, TheBotDisclosesItselfFirstAfterSilenceAndWhenAPersonHandsTheThreadBack) {
  constexpr const char* kDisclosure = "You are talking to a bot.";
  stack_ = std::make_unique<testing::KatyStack>(testing::KatyStack::Options{"fallback:\n  reply: \"bot: {{text}}\"\n",
                                                                            {{"KATY_APP_ID", kKatyAppId},
                                                                             {"KATY_HUMAN_TIMEOUT_S", "0"},
                                                                             {"KATY_EMULATOR_ECHOES", "1"},
                                                                             {"KATY_BOT_DISCLOSURE", kDisclosure}}});
  ASSERT_TRUE(stack_->ready());
  Say("x1", "hello");
  ASSERT_TRUE(WaitForBotTexts("x1", 2)) << "logs in " << stack_->dir();
  Say("x1", "again");
  ASSERT_TRUE(WaitForBotTexts("x1", 3)) << "logs in " << stack_->dir();
  EXPECT_EQ(BotTexts("x1"), (std::vector<std::string>{kDisclosure, "bot: hello", "bot: again"}));

  // A day and an hour of silence.
  redis::Client redis(*redis::ParseUrl(stack_->redis_url()));
  const KeySpace keys("katy", 16);
  const std::string day_ago = std::to_string(WallClockMs() - 25LL * 3600 * 1000);
  ASSERT_TRUE(redis
                  .Command({"HSET", keys.Conversation(ShardOf(kPage, "x1", 16), kPage, "x1"), "last_user_ms", day_ago,
                            "disclosed_ms", day_ago})
                  .ok());
  Say("x1", "still there?");
  ASSERT_TRUE(WaitForBotTexts("x1", 5)) << "logs in " << stack_->dir();

  // A person answers from the Page Inbox, then hands the thread back to the bot.
  InboxReply("x1", "Sam here.");
  Say("x1", "thanks Sam");
  ASSERT_TRUE(testing::WaitFor([&] { return Withheld() >= 1; }, std::chrono::seconds(10)));
  Post("/_emulator/inbox/pass", {{"page", kPage}, {"psid", "x1"}});
  ASSERT_TRUE(OwnerBecomes("x1", kKatyAppId));
  Say("x1", "and the bot?");
  ASSERT_TRUE(WaitForBotTexts("x1", 7)) << "logs in " << stack_->dir();
  Say("x1", "ok");
  ASSERT_TRUE(WaitForBotTexts("x1", 8)) << "logs in " << stack_->dir();
  EXPECT_EQ(BotTexts("x1"),
            (std::vector<std::string>{kDisclosure, "bot: hello", "bot: again", kDisclosure, "bot: still there?",
                                      kDisclosure, "bot: and the bot?", "bot: ok"}));
  for (const char* occasion : {"first_reply", "after_silence", "handed_back"}) {
    EXPECT_EQ(stack_->MetricSum("responder", "katy_responder_disclosures_total",
                                std::string("occasion=\"") + occasion + "\""),
              1)
        << occasion;
  }
}

}  // namespace
}  // namespace katy
