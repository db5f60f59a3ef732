#include "services/responder/responder_handler.h"

#include <gtest/gtest.h>

#include <cstring>
#include <fstream>
#include <future>
#include <nlohmann/json.hpp>

#include "common/message_tags.h"
#include "common/page_tokens.h"
#include "common/redis/streams.h"
#include "tests/support/in_process_emulator.h"
#include "tests/support/test_support.h"
#include "tools/emulator/emulator_server.h"

namespace katy::responder {
namespace {

class ResponderHandlerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const std::string dir = testing::MakeTempDir("rules");
    rules_path_ = dir + "/rules.yaml";
    std::ofstream(rules_path_) << R"(
rules:
  - name: ask
    when: { keywords: [name] }
    reply: "What's your name?"
    state: asking_name
  - name: remember
    when: { state: asking_name }
    reply: ["Hi {{text}}!", "Nice name."]
    set: { name: "{{text}}" }
    state: ~
fallback:
  reply: "echo: {{text}}"
)";
    rules_ = std::make_unique<RulesHolder>(rules_path_);
    ASSERT_TRUE(rules_->Reload().ok());
    keys_ = std::make_unique<KeySpace>(testing::UniquePrefix("responder"), 4);
    MakeHandler(nullptr);
    fence_ = {keys_->Lease(Shard(), "responder"), "me"};
    ASSERT_TRUE(client_.Command({"SET", fence_.lease_key, "me"}).ok());
  }

  void MakeHandler(const ProfileClient* profiles) {
    handler_ = std::make_unique<ResponderHandler>(
        *keys_, *rules_, metrics_, [] { return int64_t{5000}; }, profiles);
  }

  void UseRules(const std::string& yaml) {
    std::ofstream(rules_path_) << yaml;
    auto reloaded = rules_->Reload();
    ASSERT_TRUE(reloaded.ok()) << reloaded.error().message;
  }

  std::vector<std::string> ReplyTexts() {
    std::vector<std::string> texts;
    for (const auto& reply : Outbound()) {
      if (!reply.thread_control().empty()) {
        texts.push_back("<" + reply.thread_control() + " " + reply.target_app_id() + ">");
      } else if (!reply.sender_action().empty()) {
        texts.push_back("<" + reply.sender_action() + ">");
      } else {
        texts.push_back(nlohmann::json::parse(reply.message_json()).value("text", "<template>"));
      }
    }
    return texts;
  }

  redis::HandleResult Handle(const redis::StreamEntry& entry) { return (*handler_)(client_, entry, fence_); }

  // HandleBatch as the consumer runs it: the events left kLater are finished by the
  // continuation their Resume brings.
  std::vector<redis::HandleResult> HandleBatch(const std::vector<redis::BatchEntry>& batch) {
    return redis::RunToEnd(client_,
                           [&](const redis::Resume& resume) { return handler_->HandleBatch(client_, batch, resume); });
  }

  // Adds an event to its shard's inbound stream and reads it back through the group.
  redis::StreamEntry Deliver(const std::string& text, katy::v1::EventKind kind = katy::v1::EVENT_KIND_MESSAGE,
                             int64_t watermark = 0, const std::string& user = "u1",
                             const std::string& referral_source = "") {
    katy::v1::InboundEvent event;
    event.set_kind(kind);
    if (!referral_source.empty()) event.mutable_referral()->set_source(referral_source);
    event.set_watermark(watermark);
    event.set_page_id("p1");
    event.set_user_id(user);
    event.set_mid("m" + std::to_string(++mids_));
    event.set_text(text);
    event.set_timestamp_ms(4000);
    event.set_received_at_ms(4100);
    const std::string stream = keys_->InStream(ShardOf("p1", user, 4));
    EXPECT_TRUE(redis::EnsureGroup(client_, stream, KeySpace::kResponderGroup).ok());
    EXPECT_TRUE(redis::XAdd(client_, stream, {{"pb", event.SerializeAsString()}}).ok());
    auto read =
        redis::XReadGroup(client_, KeySpace::kResponderGroup, "c1", {stream}, {">"}, 1, std::chrono::milliseconds(0));
    EXPECT_TRUE(read.ok() && read->size() == 1);
    return read->front();
  }

  int Shard() const { return ShardOf("p1", "u1", 4); }

  std::vector<katy::v1::OutboundMessage> Outbound(const std::string& user = "u1") {
    auto range = client_.Command({"XRANGE", keys_->OutStream(ShardOf("p1", user, 4)), "-", "+"});
    std::vector<katy::v1::OutboundMessage> out;
    for (const auto& entry : redis::ParseEntries("", *range)) {
      katy::v1::OutboundMessage message;
      EXPECT_TRUE(message.ParseFromString(*entry.Field("pb")));
      if (message.recipient_id() == user) out.push_back(message);
    }
    return out;
  }

  std::string ConversationField(const std::string& field) {
    auto value = client_.Command({"HGET", keys_->Conversation(Shard(), "p1", "u1"), field});
    return value->IsNil() ? "<nil>" : value->str;
  }

  redis::Client client_{testing::TestRedisOptions()};
  prometheus::Registry registry_;
  ResponderMetrics metrics_{registry_};
  std::string rules_path_;
  std::unique_ptr<RulesHolder> rules_;
  std::unique_ptr<KeySpace> keys_;
  std::unique_ptr<ResponderHandler> handler_;
  redis::Fence fence_;
  int mids_ = 0;
};

// A batch (the first events of several conversations, as the consumer hands them over): each
// event decided on its own conversation and committed with its own fence, in two round trips
// for the whole batch; an event whose shard this instance no longer holds is left alone.
TEST_F(ResponderHandlerTest, ABatchCommitsEachEventOnItsOwnConversationAndFence) {
  const std::vector<std::string> users = {"u1", "u2", "u3"};
  std::vector<redis::StreamEntry> entries;
  std::vector<redis::BatchEntry> batch;
  entries.push_back(Deliver("my name", katy::v1::EVENT_KIND_MESSAGE, 0, "u1"));
  entries.push_back(Deliver("hello", katy::v1::EVENT_KIND_MESSAGE, 0, "u2"));
  entries.push_back(Deliver("not mine", katy::v1::EVENT_KIND_MESSAGE, 0, "u3"));
  for (size_t i = 0; i < users.size(); ++i) {
    const std::string lease = keys_->Lease(ShardOf("p1", users[i], 4), "responder");
    batch.push_back({&entries[i], {lease, users[i] == "u3" ? "me-no-longer" : "me"}});
    ASSERT_TRUE(client_.Command({"SET", lease, "me"}).ok());
  }
  auto results = HandleBatch(batch);
  ASSERT_EQ(results.size(), 3u);
  EXPECT_EQ(results[0].kind, redis::HandleResult::Kind::kDone);
  EXPECT_EQ(results[1].kind, redis::HandleResult::Kind::kDone);
  EXPECT_EQ(results[2].kind, redis::HandleResult::Kind::kAbandon);
  ASSERT_EQ(Outbound("u1").size(), 1u);
  EXPECT_EQ(nlohmann::json::parse(Outbound("u1")[0].message_json())["text"], "What's your name?");
  ASSERT_EQ(Outbound("u2").size(), 1u);
  EXPECT_EQ(nlohmann::json::parse(Outbound("u2")[0].message_json())["text"], "echo: hello");
  EXPECT_TRUE(Outbound("u3").empty());
  EXPECT_EQ(ConversationField("state"), "asking_name");
}

// Script calls Redis has run so far (INFO commandstats: EVALSHA and EVAL).
int64_t ScriptCalls(redis::Client& client) {
  auto info = client.Command({"INFO", "commandstats"});
  int64_t calls = 0;
  for (const char* name : {"cmdstat_evalsha:calls=", "cmdstat_eval:calls="}) {
    const auto at = info->str.find(name);
    if (at != std::string::npos) calls += std::atoll(info->str.c_str() + at + std::strlen(name));
  }
  return calls;
}

// A shard's events in a batch commit in one script, fenced once by the shard's lease, each
// with its own outcome: an event committed before adds nothing again while the others commit;
// with the lease gone, every one of them is left to the shard's new owner, nothing written.
TEST_F(ResponderHandlerTest, AShardsEventsCommitInOneScriptEachWithItsOwnOutcome) {
  std::vector<std::string> users{"u1"};
  for (int i = 2; users.size() < 3; ++i) {
    if (ShardOf("p1", "u" + std::to_string(i), 4) == Shard()) users.push_back("u" + std::to_string(i));
  }
  std::vector<redis::StreamEntry> entries;
  for (const auto& user : users) entries.push_back(Deliver("hello", katy::v1::EVENT_KIND_MESSAGE, 0, user));
  ASSERT_EQ(Handle(entries[0]).kind, redis::HandleResult::Kind::kDone);  // committed before the batch
  std::vector<redis::BatchEntry> batch;
  for (const auto& entry : entries) batch.push_back({&entry, fence_});
  const int64_t scripts_before = ScriptCalls(client_);
  auto results = HandleBatch(batch);
  EXPECT_EQ(ScriptCalls(client_) - scripts_before, 1) << "one commit script for the shard's three events";
  ASSERT_EQ(results.size(), 3u);
  for (size_t i = 0; i < users.size(); ++i) {
    EXPECT_EQ(results[i].kind, redis::HandleResult::Kind::kDone) << users[i];
    EXPECT_EQ(Outbound(users[i]).size(), 1u) << users[i];
  }

  entries = {Deliver("hello again", katy::v1::EVENT_KIND_MESSAGE, 0, users[1]),
             Deliver("hello again", katy::v1::EVENT_KIND_MESSAGE, 0, users[2])};
  batch.clear();
  for (const auto& entry : entries) batch.push_back({&entry, fence_});
  ASSERT_TRUE(client_.Command({"SET", fence_.lease_key, "someone-else"}).ok());
  results = HandleBatch(batch);
  ASSERT_EQ(results.size(), 2u);
  for (const auto& result : results) EXPECT_EQ(result.kind, redis::HandleResult::Kind::kAbandon);
  for (const auto& user : users) EXPECT_EQ(Outbound(user).size(), 1u) << user;
  auto pending = client_.Command({"XPENDING", entries[0].stream, KeySpace::kResponderGroup});
  EXPECT_EQ(pending->elements[0].integer, 2) << "both left unacknowledged for the new owner";
}

TEST_F(ResponderHandlerTest, CommitsRepliesConversationAndAckTogether) {
  auto entry = Deliver("hello");
  EXPECT_EQ(Handle(entry).kind, redis::HandleResult::Kind::kDone);
  auto replies = Outbound();
  ASSERT_EQ(replies.size(), 1u);
  EXPECT_EQ(replies[0].id(), entry.id + "#0");
  EXPECT_EQ(replies[0].recipient_id(), "u1");
  EXPECT_EQ(replies[0].page_id(), "p1");
  EXPECT_EQ(replies[0].messaging_type(), "RESPONSE");
  EXPECT_EQ(nlohmann::json::parse(replies[0].message_json())["text"], "echo: hello");
  EXPECT_EQ(replies[0].event_received_at_ms(), 4100);
  EXPECT_EQ(replies[0].event_timestamp_ms(), 4000);
  EXPECT_EQ(replies[0].user_last_message_ms(), 4000);
  EXPECT_EQ(ConversationField("last_user_ms"), "4000");
  EXPECT_EQ(ConversationField("first_seen_ms"), "4000");
  auto pending = client_.Command({"XPENDING", entry.stream, KeySpace::kResponderGroup});
  EXPECT_EQ(pending->elements[0].integer, 0);
}

TEST_F(ResponderHandlerTest, ReprocessingACommittedEventAddsNoSecondReply) {
  auto entry = Deliver("hello");
  ASSERT_EQ(Handle(entry).kind, redis::HandleResult::Kind::kDone);
  ASSERT_EQ(Handle(entry).kind, redis::HandleResult::Kind::kDone);
  EXPECT_EQ(Outbound().size(), 1u);
}

TEST_F(ResponderHandlerTest, MultiTurnStateAndVariables) {
  ASSERT_EQ(Handle(Deliver("what is your name")).kind, redis::HandleResult::Kind::kDone);
  EXPECT_EQ(ConversationField("state"), "asking_name");
  ASSERT_EQ(Handle(Deliver("Ada")).kind, redis::HandleResult::Kind::kDone);
  EXPECT_EQ(ConversationField("state"), "<nil>");
  EXPECT_EQ(ConversationField("var:name"), "Ada");
  auto replies = Outbound();
  ASSERT_EQ(replies.size(), 3u);
  EXPECT_EQ(nlohmann::json::parse(replies[1].message_json())["text"], "Hi Ada!");
  EXPECT_EQ(nlohmann::json::parse(replies[2].message_json())["text"], "Nice name.");
  EXPECT_EQ(replies[2].id().substr(replies[2].id().find('#')), "#1");
}

TEST_F(ResponderHandlerTest, EchoesAndReceiptsUpdateStateWithoutReplying) {
  ASSERT_EQ(Handle(Deliver("hello", katy::v1::EVENT_KIND_ECHO)).kind, redis::HandleResult::Kind::kDone);
  ASSERT_EQ(Handle(Deliver("", katy::v1::EVENT_KIND_DELIVERY, 1700000000111)).kind, redis::HandleResult::Kind::kDone);
  ASSERT_EQ(Handle(Deliver("", katy::v1::EVENT_KIND_READ, 1700000000222)).kind, redis::HandleResult::Kind::kDone);
  EXPECT_TRUE(Outbound().empty());
  // The receipts moved the conversation's watermarks; the echo (the page's own message) did
  // not count as the user writing.
  EXPECT_EQ(ConversationField("delivered_watermark"), "1700000000111");
  EXPECT_EQ(ConversationField("read_watermark"), "1700000000222");
  EXPECT_EQ(ConversationField("last_user_ms"), "<nil>");
  // And each event was acknowledged with that commit.
  auto pending = client_.Command({"XPENDING", keys_->InStream(Shard()), KeySpace::kResponderGroup});
  EXPECT_EQ(pending->elements[0].integer, 0);
}

// A click on an ad (here a referral event in an existing thread) is remembered; the person's
// next message opens a standard window of 7 days from itself, which the sender then reads
// (services/responder/ad_window.h).
TEST_F(ResponderHandlerTest, TheFirstMessageAfterAnAdClickOpensSevenDays) {
  ASSERT_EQ(Handle(Deliver("", katy::v1::EVENT_KIND_REFERRAL, 0, "u1", "ADS")).kind, redis::HandleResult::Kind::kDone);
  EXPECT_EQ(ConversationField("ad_clicked_ms"), "4000");
  EXPECT_EQ(ConversationField("ad_window_until_ms"), "<nil>");
  ASSERT_EQ(Handle(Deliver("hello")).kind, redis::HandleResult::Kind::kDone);
  EXPECT_EQ(ConversationField("ad_clicked_ms"), "<nil>");
  EXPECT_EQ(ConversationField("ad_window_until_ms"), std::to_string(4000 + kAdWindowMs));
  ASSERT_EQ(Handle(Deliver("again")).kind, redis::HandleResult::Kind::kDone);
  EXPECT_EQ(ConversationField("ad_window_until_ms"), std::to_string(4000 + kAdWindowMs));
  // An ordinary conversation keeps no such field.
  ASSERT_EQ(Handle(Deliver("hi", katy::v1::EVENT_KIND_MESSAGE, 0, "u2")).kind, redis::HandleResult::Kind::kDone);
  EXPECT_EQ(client_.Command({"HEXISTS", keys_->Conversation(ShardOf("p1", "u2", 4), "p1", "u2"), "ad_window_until_ms"})
                ->integer,
            0);
}

// A conversation is kept KATY_CONVERSATION_TTL_D after its last event (docs/privacy.md).
TEST_F(ResponderHandlerTest, AConversationIsKeptItsConfiguredLifetime) {
  ASSERT_EQ(Handle(Deliver("hello")).kind, redis::HandleResult::Kind::kDone);
  const std::string conversation = keys_->Conversation(Shard(), "p1", "u1");
  EXPECT_NEAR(client_.Command({"TTL", conversation})->integer, 90 * 24 * 3600, 5) << "the default: 90 days";
  // Another lifetime set: it applies from the conversation's next renewal (ConversationRenewalDue).
  PrivacySettings privacy;
  privacy.conversation_ttl = std::chrono::hours(48);
  int64_t now = 5000;
  handler_ = std::make_unique<ResponderHandler>(
      *keys_, *rules_, metrics_, [&now] { return now; }, nullptr, OwnershipSettings{}, http::AsyncClientOptions{},
      DisclosureSettings{}, privacy);
  ASSERT_EQ(Handle(Deliver("again")).kind, redis::HandleResult::Kind::kDone);
  EXPECT_NEAR(client_.Command({"TTL", conversation})->integer, 90 * 24 * 3600, 5) << "renewed just now";
  now += 5 * 3600 * 1000;  // past a tenth of 48 h
  ASSERT_EQ(Handle(Deliver("later")).kind, redis::HandleResult::Kind::kDone);
  EXPECT_NEAR(client_.Command({"TTL", conversation})->integer, 48 * 3600, 5);
  // Renewed when due, not by every commit: a commit within the interval leaves the lifetime.
  ASSERT_TRUE(client_.Command({"EXPIRE", conversation, "1000"}).ok());
  now += 3600 * 1000;
  ASSERT_EQ(Handle(Deliver("soon after")).kind, redis::HandleResult::Kind::kDone);
  EXPECT_LE(client_.Command({"TTL", conversation})->integer, 1000);
  EXPECT_EQ(ConversationField("kept_from_ms"), std::to_string(5000 + 5 * 3600 * 1000));
}

TEST(ConversationRenewalTest, DueATenthOfTheLifetimeAtMostADayAfterTheLast) {
  constexpr int64_t kHourMs = 3600 * 1000;
  EXPECT_TRUE(ConversationRenewalDue(0, 1000, std::chrono::hours(48))) << "never renewed";
  EXPECT_FALSE(ConversationRenewalDue(1000, 1000 + 4 * kHourMs, std::chrono::hours(48)));
  EXPECT_TRUE(ConversationRenewalDue(1000, 1000 + 5 * kHourMs, std::chrono::hours(48)));  // 4.8 h
  EXPECT_FALSE(ConversationRenewalDue(1000, 1000 + 23 * kHourMs, std::chrono::hours(90 * 24)));
  EXPECT_TRUE(ConversationRenewalDue(1000, 1000 + 24 * kHourMs, std::chrono::hours(90 * 24)));  // a day
}

TEST_F(ResponderHandlerTest, AnInstanceThatLostTheShardWritesNothing) {
  auto entry = Deliver("hello");
  ASSERT_TRUE(client_.Command({"SET", fence_.lease_key, "someone-else"}).ok());
  EXPECT_EQ(Handle(entry).kind, redis::HandleResult::Kind::kAbandon);
  EXPECT_TRUE(Outbound().empty());
  EXPECT_EQ(ConversationField("last_user_ms"), "<nil>");
  auto pending = client_.Command({"XPENDING", entry.stream, KeySpace::kResponderGroup});
  EXPECT_EQ(pending->elements[0].integer, 1) << "the event must stay pending for the new owner";
  EXPECT_EQ(ConversationOfEvent(entry), "p1:u1");
}

// The example skill (tests/skills/weather_skill.py) as a real HTTP server.

std::string SkillRules(const std::string& url, int timeout_ms) {
  return "rules:\n  - name: weather\n    when: { keywords: [weather] }\n    typing: true\n    skill:\n      url: \"" +
         url + "\"\n      timeout_ms: " + std::to_string(timeout_ms) +
         "\n      fallback: \"No weather today, {{first_name}}.\"\n";
}

TEST_F(ResponderHandlerTest, SkillAnswersWithMessagesAndVariables) {
  testing::ExampleSkill skill;
  UseRules(SkillRules(skill.Url("/weather"), 2000));
  ASSERT_EQ(Handle(Deliver("weather in Lyon?")).kind, redis::HandleResult::Kind::kDone);
  EXPECT_EQ(ReplyTexts(), (std::vector<std::string>{"<typing_on>", "It's sunny in Lyon, friend.", "Anything else?"}));
  EXPECT_EQ(ConversationField("var:city"), "Lyon");
  auto replies = Outbound();
  EXPECT_EQ(nlohmann::json::parse(replies[2].message_json())["quick_replies"][0]["payload"], "TOMORROW");
  EXPECT_EQ(replies[0].id(), replies[1].id().substr(0, replies[1].id().find('#')) + "#typing");
  EXPECT_EQ(metrics_.skill_calls.Add({{"rule", "weather"}, {"result", "ok"}}).Value(), 1);
}

// A skill's answer may hand over like a rule: to the Page Inbox after its messages (the
// conversation then belongs to the inbox and the bot's next answer is withheld), and back
// before them.
TEST_F(ResponderHandlerTest, ASkillHandsOverAfterItsMessagesAndTakesBackBeforeThem) {
  testing::ExampleSkill skill;
  UseRules("rules:\n  - name: agent\n    when: { keywords: [agent] }\n    skill:\n      url: \"" + skill.Url("/agent") +
           "\"\n  - name: bot\n    when: { keywords: [bot] }\n    skill:\n      url: \"" + skill.Url("/bot") +
           "\"\nfallback:\n  reply: \"echo: {{text}}\"\n");
  ASSERT_EQ(Handle(Deliver("an agent please")).kind, redis::HandleResult::Kind::kDone);
  EXPECT_EQ(ReplyTexts(),
            (std::vector<std::string>{"A person will take it from here.", "<pass_thread_control 263902037430900>"}));
  EXPECT_EQ(Outbound().back().thread_metadata(), "the skill asked for a person");
  EXPECT_EQ(ConversationField("owner"), "263902037430900");
  ASSERT_EQ(Handle(Deliver("hello?")).kind, redis::HandleResult::Kind::kDone);
  EXPECT_EQ(ReplyTexts().size(), 2u) << "the bot answered a conversation the inbox has";
  ASSERT_EQ(Handle(Deliver("the bot please")).kind, redis::HandleResult::Kind::kDone);
  EXPECT_EQ(ReplyTexts(),
            (std::vector<std::string>{"A person will take it from here.", "<pass_thread_control 263902037430900>",
                                      "<take_thread_control >", "The bot again."}));
  EXPECT_EQ(ConversationField("owner"), "<nil>");
}

// The events of a batch that need a skill call it together: four conversations behind a
// 1-second skill take one second, not four, and each gets its own answer (here the skill's
// plain-text answer is no skill answer, so each gets the fallback).
TEST_F(ResponderHandlerTest, TheSkillsOfABatchAreCalledTogether) {
  testing::LateHttpServer skill;
  UseRules(SkillRules(skill.Url("/late?ms=1000"), 5000));
  const std::vector<std::string> users = {"u1", "u2", "u3", "u4"};
  std::vector<redis::StreamEntry> entries;
  std::vector<redis::BatchEntry> batch;
  for (const auto& user : users) entries.push_back(Deliver("weather?", katy::v1::EVENT_KIND_MESSAGE, 0, user));
  for (size_t i = 0; i < users.size(); ++i) {
    const std::string lease = keys_->Lease(ShardOf("p1", users[i], 4), "responder");
    ASSERT_TRUE(client_.Command({"SET", lease, "me"}).ok());
    batch.push_back({&entries[i], {lease, "me"}});
  }
  auto results = HandleBatch(batch);
  for (const auto& result : results) EXPECT_EQ(result.kind, redis::HandleResult::Kind::kDone);
  EXPECT_EQ(skill.Stats()["most_in_flight"].get<int>(), 4) << "the skills were called one after another";
  for (const auto& user : users) {
    ASSERT_EQ(Outbound(user).size(), 2u) << user;  // typing, then the fallback
    EXPECT_EQ(nlohmann::json::parse(Outbound(user)[1].message_json())["text"], "No weather today, there.") << user;
  }
}

TEST_F(ResponderHandlerTest, FailingOrSlowSkillGetsTheFallbackReply) {
  testing::ExampleSkill skill;
  UseRules(SkillRules(skill.Url("/broken"), 2000));
  ASSERT_EQ(Handle(Deliver("weather?")).kind, redis::HandleResult::Kind::kDone);
  UseRules(SkillRules(skill.Url("/slow"), 200));
  const auto started = std::chrono::steady_clock::now();
  ASSERT_EQ(Handle(Deliver("weather?")).kind, redis::HandleResult::Kind::kDone);
  EXPECT_LT(std::chrono::steady_clock::now() - started, std::chrono::milliseconds(1500));  // 2 x 200 ms, not 3 s
  UseRules(SkillRules("http://127.0.0.1:" + std::to_string(testing::FreePort()) + "/gone", 2000));
  ASSERT_EQ(Handle(Deliver("weather?")).kind, redis::HandleResult::Kind::kDone);
  const std::string fallback = "No weather today, there.";
  EXPECT_EQ(ReplyTexts(),
            (std::vector<std::string>{"<typing_on>", fallback, "<typing_on>", fallback, "<typing_on>", fallback}));
  for (const char* result : {"skill_http_500", "skill_timeout", "skill_unreachable"}) {
    EXPECT_EQ(metrics_.skill_calls.Add({{"rule", "weather"}, {"result", result}}).Value(), 1) << result;
  }
}

TEST_F(ResponderHandlerTest, FirstNameComesFromTheProfileApiOnceAndFallsBackWhenItFails) {
  testing::InProcessEmulator graph("token");
  ASSERT_TRUE(graph.server);
  graph.server->profiles().Set("u1", {"Ada", "Lovelace"});
  PageTokens tokens = PageTokens::FromMap("token", {});
  ProfileClient profiles(graph.graph_url(), tokens, std::chrono::milliseconds(300));
  MakeHandler(&profiles);
  UseRules("rules:\n  - when: { keywords: [hi] }\n    reply: \"Hi {{first_name}}!\"\nfallback:\n  reply: \"ok\"\n");
  ASSERT_EQ(Handle(Deliver("hi")).kind, redis::HandleResult::Kind::kDone);
  ASSERT_EQ(Handle(Deliver("something")).kind, redis::HandleResult::Kind::kDone);  // no name needed
  ASSERT_EQ(Handle(Deliver("hi again")).kind, redis::HandleResult::Kind::kDone);   // cached
  EXPECT_EQ(ConversationField("first_name"), "Ada");
  EXPECT_EQ(metrics_.profile_fetches.Add({{"result", "ok"}}).Value(), 1);

  // Another user, and the Graph API is gone: the reply still goes out, with a neutral word.
  graph.server->Shutdown();
  katy::v1::InboundEvent event;
  event.set_kind(katy::v1::EVENT_KIND_MESSAGE);
  event.set_page_id("p1");
  event.set_user_id("u2");
  event.set_text("hi");
  const std::string stream = keys_->InStream(ShardOf("p1", "u2", 4));
  ASSERT_TRUE(client_.Command({"SET", keys_->Lease(ShardOf("p1", "u2", 4), "responder"), "me"}).ok());
  ASSERT_TRUE(redis::EnsureGroup(client_, stream, KeySpace::kResponderGroup).ok());
  ASSERT_TRUE(redis::XAdd(client_, stream, {{"pb", event.SerializeAsString()}}).ok());
  auto read =
      redis::XReadGroup(client_, KeySpace::kResponderGroup, "c1", {stream}, {">"}, 1, std::chrono::milliseconds(0));
  ASSERT_TRUE(read.ok() && read->size() == 1);
  const auto started = std::chrono::steady_clock::now();
  redis::Fence fence{keys_->Lease(ShardOf("p1", "u2", 4), "responder"), "me"};
  ASSERT_EQ((*handler_)(client_, read->front(), fence).kind, redis::HandleResult::Kind::kDone);
  EXPECT_LT(std::chrono::steady_clock::now() - started, std::chrono::seconds(2));
  auto range = client_.Command({"XRANGE", keys_->OutStream(ShardOf("p1", "u2", 4)), "-", "+"});
  bool neutral = false;
  for (const auto& entry : redis::ParseEntries("", *range)) {
    katy::v1::OutboundMessage message;
    message.ParseFromString(*entry.Field("pb"));
    if (message.recipient_id() == "u2") neutral = nlohmann::json::parse(message.message_json())["text"] == "Hi there!";
  }
  EXPECT_TRUE(neutral);
}

// The first names a batch needs are fetched together on the event loop, then the skills the
// same events need: four new people behind a profile API that takes a second each are all
// asked at once (the late server's count), and each still gets its skill's answer. (The late
// server is no Graph API: its answer has no first name, so the name turns neutral.)
TEST_F(ResponderHandlerTest, TheProfilesOfABatchAreFetchedTogetherThenTheirSkills) {
  testing::LateHttpServer graph;
  testing::LateHttpServer skill;
  PageTokens tokens = PageTokens::FromMap("token", {});
  // The profile call's path and query follow this base ("/<psid>?fields=..."): they land in a
  // query parameter of its own, and the late server sees /late?ms=1000.
  ProfileClient profiles(graph.Url("/late?ms=1000&rest="), tokens, std::chrono::milliseconds(5000));
  MakeHandler(&profiles);
  UseRules("fallback:\n  skill:\n    url: \"" + skill.Url("/skill?ms=200") +
           "\"\n    timeout_ms: 5000\n    fallback: \"Sorry {{first_name}}\"\n");
  const std::vector<std::string> users = {"u1", "u2", "u3", "u4"};
  std::vector<redis::StreamEntry> entries;
  std::vector<redis::BatchEntry> batch;
  for (const auto& user : users) entries.push_back(Deliver("hello", katy::v1::EVENT_KIND_MESSAGE, 0, user));
  for (size_t i = 0; i < users.size(); ++i) {
    const std::string lease = keys_->Lease(ShardOf("p1", users[i], 4), "responder");
    ASSERT_TRUE(client_.Command({"SET", lease, "me"}).ok());
    batch.push_back({&entries[i], {lease, "me"}});
  }
  for (const auto& result : HandleBatch(batch)) EXPECT_EQ(result.kind, redis::HandleResult::Kind::kDone);
  EXPECT_EQ(graph.Stats()["most_in_flight"].get<int>(), 4) << "the profiles were fetched one after another";
  EXPECT_EQ(metrics_.profile_fetches.Add({{"result", "bad_answer"}}).Value(), 4);
  for (const auto& user : users) {
    ASSERT_EQ(Outbound(user).size(), 1u) << user;
    EXPECT_EQ(nlohmann::json::parse(Outbound(user)[0].message_json())["text"], "late 200") << user;
  }
}

// `typing: true` with a slow skill: typing_on is queued for the sender while the skill is
// still thinking, and the reply follows it once the skill answers, without a second typing_on.
TEST_F(ResponderHandlerTest, TypingGoesOutBeforeASlowSkillAnswers) {
  testing::LateHttpServer skill;
  UseRules("fallback:\n  typing: true\n  skill:\n    url: \"" + skill.Url("/skill?ms=500") +
           "\"\n    timeout_ms: 5000\n");
  const redis::StreamEntry entry = Deliver("tell me a story");
  const std::string lease = keys_->Lease(Shard(), "responder");
  ASSERT_TRUE(client_.Command({"SET", lease, "me"}).ok());
  std::promise<redis::Continuation> resumed;
  auto results =
      handler_->HandleBatch(client_, {{&entry, {lease, "me"}}},
                            redis::Resume([&](const redis::Continuation& next) { resumed.set_value(next); }));
  ASSERT_EQ(results.front().kind, redis::HandleResult::Kind::kLater);
  EXPECT_EQ(ReplyTexts(), (std::vector<std::string>{"<typing_on>"})) << "typing_on waited for the skill";
  auto finished = resumed.get_future().get()(client_, redis::Resume([](const redis::Continuation&) {}));
  ASSERT_EQ(finished.size(), 1u);
  EXPECT_EQ(finished[0].kind, redis::HandleResult::Kind::kDone);
  EXPECT_EQ(ReplyTexts(), (std::vector<std::string>{"<typing_on>", "late 500"}));
}

TEST_F(ResponderHandlerTest, UndecodableEntryIsPoison) {
  redis::StreamEntry garbage{keys_->InStream(0), "1-1", {{"pb", "\xff\xff not a protobuf"}}};
  EXPECT_EQ((*handler_)(client_, garbage, fence_).kind, redis::HandleResult::Kind::kPoison);
}

TEST_F(ResponderHandlerTest, BadRulesFileIsRefusedAndOldRulesStay) {
  std::ofstream(rules_path_) << "rules:\n  - when: { keywords: [x] }\n    reply: { text: a, quick_replies: [\"this "
                                "title is far too long\"] }\n";
  auto reloaded = rules_->Reload();
  ASSERT_FALSE(reloaded.ok());
  EXPECT_NE(reloaded.error().message.find("rules.yaml:3:"), std::string::npos) << reloaded.error().message;
  EXPECT_EQ(rules_->Current()->rules.size(), 2u);
}

}  // namespace
}  // namespace katy::responder
