// The foundation's promise, checked with nothing mocked: a user says "hello" through the
// emulator, and the bot's reply reaches the emulator's Send API.
#include <gtest/gtest.h>

#include <csignal>
#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "common/http/http_client.h"
#include "tests/support/katy_stack.h"
#include "tests/support/test_support.h"

namespace katy {
namespace {

constexpr const char* kRules = R"(
rules:
  - when: { keywords: [hello, hi] }
    reply: "hi there"
fallback:
  reply: "echo: {{text}}"
)";

nlohmann::json Replies(http::Client& http, const std::string& emulator, const std::string& psid) {
  auto response = http.Get(emulator + "/_emulator/messages?psid=" + psid);
  if (!response || response->status != 200) return nlohmann::json::array();
  return nlohmann::json::parse(response->body, nullptr, false);
}

TEST(EndToEndTest, HelloThroughTheEmulatorGetsTheBotsReply) {
  testing::KatyStack stack({kRules, {}});
  ASSERT_TRUE(stack.ready());
  http::Client http;
  auto said = http.Post(stack.emulator_url() + "/_emulator/say",
                        R"({"page":"104560000000001","psid":"7100000000000001","text":"hello"})");
  ASSERT_TRUE(said.ok());
  ASSERT_EQ(said->status, 200) << said->body;

  nlohmann::json replies;
  ASSERT_TRUE(testing::WaitFor(
      [&] {
        replies = Replies(http, stack.emulator_url(), "7100000000000001");
        return !replies.empty();
      },
      std::chrono::seconds(15)))
      << "no reply reached the Send API; logs in " << stack.dir();
  EXPECT_EQ(replies[0]["message"]["text"], "hi there");
  EXPECT_EQ(replies[0]["page"], "104560000000001");
  EXPECT_EQ(replies[0]["messaging_type"], "RESPONSE");

  // Non-ASCII survives the whole path (Meta-escaped webhook, protobuf, Send API JSON).
  ASSERT_EQ(http.Post(stack.emulator_url() + "/_emulator/say",
                      R"({"page":"104560000000001","psid":"7100000000000002","text":"Ça va? ☀️"})")
                ->status,
            200);
  ASSERT_TRUE(testing::WaitFor(
      [&] {
        replies = Replies(http, stack.emulator_url(), "7100000000000002");
        return !replies.empty();
      },
      std::chrono::seconds(15)));
  EXPECT_EQ(replies[0]["message"]["text"], "echo: Ça va? ☀️");
}

TEST(EndToEndTest, RulesReloadOnSighupAndABrokenFileIsRefused) {
  testing::KatyStack stack({kRules, {}});
  ASSERT_TRUE(stack.ready());
  http::Client http;
  auto say_and_read = [&](const std::string& psid, const std::string& text) {
    nlohmann::json body{{"page", "1045"}, {"psid", psid}, {"text", text}};
    EXPECT_EQ(http.Post(stack.emulator_url() + "/_emulator/say", body.dump())->status, 200);
    nlohmann::json replies;
    testing::WaitFor([&] { return !(replies = Replies(http, stack.emulator_url(), psid)).empty(); },
                     std::chrono::seconds(10));
    return replies.empty() ? std::string() : replies.back()["message"]["text"].get<std::string>();
  };
  EXPECT_EQ(say_and_read("r1", "hello"), "hi there");

  std::ofstream(stack.dir() + "/rules.yaml") << "rules:\n  - when: { keywords: [hello] }\n    reply: \"hello v2\"\n";
  ASSERT_EQ(kill(stack.process("responder").pid(), SIGHUP), 0);
  EXPECT_TRUE(testing::WaitFor([&] { return say_and_read("r2", "hello") == "hello v2"; }, std::chrono::seconds(10)));

  std::ofstream(stack.dir() + "/rules.yaml") << "rules:\n  - when: { keywords: [hello] }\n    replyy: broken\n";
  ASSERT_EQ(kill(stack.process("responder").pid(), SIGHUP), 0);
  // The refusal is logged, with the line of the file at fault; the rules in force stay.
  EXPECT_TRUE(testing::WaitFor(
      [&] {
        const std::string logs = stack.AllLogs();
        return logs.find("rules reload refused") != std::string::npos && logs.find("replyy") != std::string::npos;
      },
      std::chrono::seconds(10)))
      << "no refusal logged; logs in " << stack.dir();
  EXPECT_EQ(say_and_read("r3", "hello"), "hello v2") << "a broken file replaced the rules in force";
  EXPECT_TRUE(stack.process("responder").Running());
}

// An m.me link with ?ref= brings a person back to the thread: the referral reaches the rule
// written for it, with {{ref}}; a ref no rule asks for gets no answer (not the fallback).
TEST(EndToEndTest, AReferralRoutesToItsRule) {
  testing::KatyStack stack({R"(
rules:
  - when: { ref: "PROMO*" }
    reply: "Welcome back from {{ref}}!"
fallback:
  reply: "echo: {{text}}"
)",
                            {}});
  ASSERT_TRUE(stack.ready());
  http::Client http;
  const std::string say = stack.emulator_url() + "/_emulator/say";
  ASSERT_EQ(http.Post(say, R"({"page":"1045","psid":"r1","ref":"SPRING"})")->status, 200);
  ASSERT_EQ(http.Post(say, R"({"page":"1045","psid":"r1","ref":"PROMO_SUMMER"})")->status, 200);
  ASSERT_EQ(http.Post(say, R"({"page":"1045","psid":"r1","text":"bye"})")->status, 200);
  nlohmann::json replies;
  ASSERT_TRUE(testing::WaitFor(
      [&] {
        replies = Replies(http, stack.emulator_url(), "r1");
        return replies.size() >= 2;
      },
      std::chrono::seconds(15)))
      << "logs in " << stack.dir();
  // In order, and nothing for SPRING: the conversation's replies are one after another.
  EXPECT_EQ(replies[0]["message"]["text"], "Welcome back from PROMO_SUMMER!");
  EXPECT_EQ(replies[1]["message"]["text"], "echo: bye");
  EXPECT_EQ(replies.size(), 2u);
}

// Instagram Direct through the same stack: ingress takes `object: instagram`, the rules tell
// the platform apart, and the reply goes to the account's Send API.
TEST(EndToEndTest, AnInstagramMessageGetsItsReply) {
  testing::KatyStack stack({R"(
rules:
  - when: { platform: instagram }
    reply: "insta: {{text}}"
fallback:
  reply: "messenger: {{text}}"
)",
                            {}});
  ASSERT_TRUE(stack.ready());
  http::Client http;
  // The fixture's times, moved to now: a reply to a message days old is outside the window.
  std::string body = testing::ReadFixture("instagram.json");
  const std::string now = std::to_string(
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
          .count());
  for (size_t at = body.find("176423040002"); at != std::string::npos; at = body.find("176423040002", at)) {
    body.replace(at, 12, now.substr(0, 12));
  }
  auto posted =
      http.Post(stack.ingress_url(), body, testing::SignedWebhookHeaders(testing::KatyStack::kAppSecret, body));
  ASSERT_TRUE(posted.ok());
  ASSERT_EQ(posted->status, 200) << posted->body;
  nlohmann::json replies;
  ASSERT_TRUE(testing::WaitFor(
      [&] {
        replies = Replies(http, stack.emulator_url(), "6100000000000001");
        return !replies.empty();
      },
      std::chrono::seconds(15)))
      << "logs in " << stack.dir();
  EXPECT_EQ(replies[0]["message"]["text"], "insta: hi from instagram");
  EXPECT_EQ(replies[0]["page"], "17841400000000001");
  EXPECT_EQ(replies.size(), 1u);  // the reads get no answer
}

// A person talks to the bot as an Instagram user through the emulator's Instagram account
// (Instagram-shaped webhooks, a Send API that refuses what Instagram refuses): rules tell the
// platforms apart, quick replies come back as payloads, a text over Instagram's 1000 bytes goes
// out in parts the account takes, and an Instagram rule over that limit is refused at load.
TEST(EndToEndTest, AnInstagramConversationThroughTheEmulator) {
  std::string long_text;
  for (int i = 0; i < 300; ++i) long_text += "caf\u00e9 ";  // 300 x 6 bytes: two Instagram parts
  testing::KatyStack stack({R"(
rules:
  - when: { platform: instagram, keywords: [hi] }
    reply:
      text: "Hi {{first_name}}, on Instagram. Coffee?"
      quick_replies: [{ title: "Yes", payload: COFFEE_YES }]
  - when: { quick_reply: COFFEE_YES }
    reply: ")" + long_text + R"("
fallback:
  reply: "messenger: {{text}}"
)",
                            {}});
  ASSERT_TRUE(stack.ready());
  http::Client http;
  const std::string account = "17841400000000001";  // the emulator's Instagram account
  auto say = [&](const nlohmann::json& fields) {
    nlohmann::json body{{"page", account}, {"psid", "ig-ana"}, {"platform", "instagram"}, {"first_name", "Ana"}};
    body.update(fields);
    auto said = http.Post(stack.emulator_url() + "/_emulator/say", body.dump());
    EXPECT_EQ(said->status, 200) << said->body;
  };
  auto replies_at_least = [&](size_t n) {
    nlohmann::json replies;
    EXPECT_TRUE(testing::WaitFor([&] { return (replies = Replies(http, stack.emulator_url(), "ig-ana")).size() >= n; },
                                 std::chrono::seconds(15)))
        << "logs in " << stack.dir();
    return replies;
  };
  say({{"text", "hi"}});
  auto replies = replies_at_least(1);
  EXPECT_EQ(replies[0]["page"], account);
  EXPECT_EQ(replies[0]["message"]["text"], "Hi Ana, on Instagram. Coffee?");
  EXPECT_EQ(replies[0]["message"]["quick_replies"][0]["payload"], "COFFEE_YES");

  say({{"text", "Yes"}, {"quick_reply", "COFFEE_YES"}});
  replies = replies_at_least(3);
  std::string joined;
  for (size_t i = 1; i < replies.size(); ++i) {
    const std::string part = replies[i]["message"]["text"];
    EXPECT_LE(part.size(), 1000u);
    joined += part + " ";
  }
  EXPECT_EQ(joined, long_text);
  EXPECT_EQ(replies.size(), 3u);
  EXPECT_EQ(stack.MetricSum("sender", "katy_dlq_length"), 0) << "logs in " << stack.dir();

  // An Instagram rule whose text Instagram would refuse does not load; the rules in force stay.
  std::ofstream(stack.dir() + "/rules.yaml")
      << "rules:\n  - when: { platform: instagram }\n    reply: \"" << long_text << "\"\n";
  ASSERT_EQ(kill(stack.process("responder").pid(), SIGHUP), 0);
  EXPECT_TRUE(testing::WaitFor(
      [&] {
        const std::string logs = stack.AllLogs();
        return logs.find("rules reload refused") != std::string::npos &&
               logs.find("at most 1000 bytes on Instagram") != std::string::npos;
      },
      std::chrono::seconds(10)))
      << "no refusal logged; logs in " << stack.dir();
  say({{"text", "hi"}});
  replies = replies_at_least(4);
  EXPECT_EQ(replies[3]["message"]["text"], "Hi Ana, on Instagram. Coffee?");
}

TEST(EndToEndTest, EchoesAndReceiptsReachKatyButGetNoReply) {
  testing::KatyStack stack({kRules, {{"KATY_EMULATOR_ECHOES", "1"}, {"KATY_EMULATOR_WEBHOOK_BATCH", "20"}}});
  ASSERT_TRUE(stack.ready());
  http::Client http;
  ASSERT_EQ(http.Post(stack.emulator_url() + "/_emulator/say", R"({"page":"1045","psid":"e1","text":"hello"})")->status,
            200);
  ASSERT_TRUE(testing::WaitFor([&] { return Replies(http, stack.emulator_url(), "e1").size() == 1; },
                               std::chrono::seconds(15)));
  ASSERT_EQ(http.Post(stack.emulator_url() + "/_emulator/delivered", R"({"page":"1045","psid":"e1"})")->status, 200);
  ASSERT_EQ(http.Post(stack.emulator_url() + "/_emulator/read", R"({"page":"1045","psid":"e1"})")->status, 200);
  // The echo of the bot's reply, the delivery and the read all reach ingress as their kinds...
  EXPECT_TRUE(testing::WaitFor(
      [&] {
        return stack.MetricSum("ingress", "katy_ingress_events_total") >= 4 &&
               stack.MetricSum("responder", "katy_responder_events_total") >= 4;
      },
      std::chrono::seconds(10)));
  auto metrics = http.Get(stack.AdminUrl("ingress") + "/metrics")->body;
  for (const char* kind : {"echo", "delivery", "read"}) {
    EXPECT_NE(metrics.find(std::string("kind=\"") + kind + "\",result=\"enqueued\""), std::string::npos) << kind;
  }
  // ...and none of them is answered: once the sender has finished everything queued for it,
  // still exactly one reply.
  EXPECT_TRUE(testing::WaitFor([&] { return testing::Drained(stack.Scrape("ingress"), "group=\"senders\""); },
                               std::chrono::seconds(10)));
  EXPECT_EQ(Replies(http, stack.emulator_url(), "e1").size(), 1u);
}

TEST(EndToEndTest, ServicesStopCleanlyOnSigterm) {
  testing::KatyStack stack({kRules, {}});
  ASSERT_TRUE(stack.ready());
  for (const char* name : {"ingress", "responder", "sender", "emulator"}) {
    EXPECT_EQ(stack.process(name).Stop(SIGTERM, std::chrono::seconds(15)), 0) << name;
  }
}

// SIGTERM while skills are under way (each takes 2 s): the responder finishes the events it
// has in hand and commits their replies before it exits, so they go out with no responder
// left to take the shards over.
TEST(EndToEndTest, SigtermMidSkillCommitsTheEventsInHandBeforeExiting) {
  testing::ExampleSkill skill;
  testing::KatyStack stack({"rules:\n  - when: { keywords: [slow] }\n    skill:\n      url: \"" +
                                skill.Url("/echo?delay_ms=2000") + "\"\n      timeout_ms: 5000\n",
                            {{"KATY_DRAIN_TIMEOUT_S", "10"}}});
  ASSERT_TRUE(stack.ready());
  const std::vector<std::string> users{"d0", "d1", "d2", "d3"};
  std::vector<std::thread> sayers;
  for (const auto& psid : users) sayers.emplace_back([&stack, psid] { Say(stack, psid, "slow " + psid); });
  for (auto& sayer : sayers) sayer.join();
  ASSERT_TRUE(
      testing::WaitFor([&] { return stack.MetricSum("ingress", "katy_stream_pending", "group=\"responders\"") >= 4; },
                       std::chrono::seconds(10)))
      << "the responder never had every event in hand";
  const auto signalled = std::chrono::steady_clock::now();
  EXPECT_EQ(stack.process("responder").Stop(SIGTERM, std::chrono::seconds(15)), 0);
  EXPECT_LT(std::chrono::steady_clock::now() - signalled, std::chrono::seconds(10)) << "it waited past the drain";
  ASSERT_TRUE(stack.WaitUntilDrained(std::chrono::seconds(10))) << "logs in " << stack.dir();
  for (const auto& psid : users) {
    EXPECT_EQ(testing::ReplyTexts(stack, psid), std::vector<std::string>{"echo: slow " + psid}) << psid;
  }
}

// G2: events answered 200 survive a Redis crash. Nobody consumes them (the responder is
// stopped), Redis is SIGKILLed and started again from its AOF (appendfsync everysec, as
// deploy/redis.conf), and a new responder answers every one. A process crash loses nothing
// under everysec: Redis writes the AOF before it answers; only the fsync waits.
TEST(EndToEndTest, EventsAnsweredBeforeARedisCrashAreAnsweredAfterIt) {
  testing::KatyStack stack({kRules, {}});
  ASSERT_TRUE(stack.ready());
  ASSERT_EQ(stack.process("responder").Stop(SIGTERM, std::chrono::seconds(15)), 0);
  for (int user = 0; user < 10; ++user) Say(stack, "c" + std::to_string(user), "before the crash");
  stack.StopRedis();
  stack.StartRedis();
  stack.StartExtra("responder", "katy-responder");
  ASSERT_TRUE(stack.WaitUntilDrained(std::chrono::seconds(30))) << "logs in " << stack.dir();
  for (int user = 0; user < 10; ++user) {
    const std::string psid = "c" + std::to_string(user);
    EXPECT_EQ(testing::ReplyTexts(stack, psid), std::vector<std::string>{"echo: before the crash"}) << psid;
  }
}

TEST(EndToEndTest, MissingRequiredSettingStopsStartUpWithOneLine) {
  const std::string dir = testing::MakeTempDir("config");
  {
    testing::Process ingress(testing::BinaryPath("katy-ingress"), {}, {{"KATY_APP_SECRET", ""}}, dir + "/ingress.log");
    EXPECT_EQ(ingress.Stop(0, std::chrono::seconds(10)), 2);
  }
  std::ifstream log(dir + "/ingress.log");
  std::string line;
  std::getline(log, line);
  EXPECT_NE(line.find("missing required setting KATY_APP_SECRET"), std::string::npos) << line;
  EXPECT_FALSE(std::getline(log, line)) << "more than one line: " << line;
}

}  // namespace
}  // namespace katy
