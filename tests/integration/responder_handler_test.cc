#include "services/responder/responder_handler.h"

#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "common/redis/streams.h"
#include "tests/support/test_support.h"

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
    handler_ = std::make_unique<ResponderHandler>(*keys_, *rules_, metrics_, [] { return int64_t{5000}; });
    fence_ = {keys_->Lease(Shard(), "responder"), "me"};
    ASSERT_TRUE(client_.Command({"SET", fence_.lease_key, "me"}).ok());
  }

  redis::HandleResult Handle(const redis::StreamEntry& entry) { return (*handler_)(client_, entry, fence_); }

  // Adds an event to its shard's inbound stream and reads it back through the group.
  redis::StreamEntry Deliver(const std::string& text, katy::v1::EventKind kind = katy::v1::EVENT_KIND_MESSAGE) {
    katy::v1::InboundEvent event;
    event.set_kind(kind);
    event.set_page_id("p1");
    event.set_user_id("u1");
    event.set_mid("m" + std::to_string(++mids_));
    event.set_text(text);
    event.set_timestamp_ms(4000);
    event.set_received_at_ms(4100);
    const std::string stream = keys_->InStream(Shard());
    EXPECT_TRUE(redis::EnsureGroup(client_, stream, KeySpace::kResponderGroup).ok());
    EXPECT_TRUE(redis::XAdd(client_, stream, {{"pb", event.SerializeAsString()}}).ok());
    auto read = redis::XReadGroup(client_, KeySpace::kResponderGroup, "c1", {stream}, {">"}, 1,
                                  std::chrono::milliseconds(0));
    EXPECT_TRUE(read.ok() && read->size() == 1);
    return read->front();
  }

  int Shard() const { return ShardOf("p1", "u1", 4); }

  std::vector<katy::v1::OutboundMessage> Outbound() {
    auto range = client_.Command({"XRANGE", keys_->OutStream(Shard()), "-", "+"});
    std::vector<katy::v1::OutboundMessage> out;
    for (const auto& entry : redis::ParseEntries("", *range)) {
      katy::v1::OutboundMessage message;
      EXPECT_TRUE(message.ParseFromString(*entry.Field("pb")));
      out.push_back(message);
    }
    return out;
  }

  std::string ConversationField(const std::string& field) {
    auto value = client_.Command({"HGET", keys_->Conversation(Shard(), "p1", "u1"), field});
    return value->IsNil() ? "<nil>" : value->str;
  }

  redis::Client client_{testing::TestRedisOptions()};
  metrics::Registry registry_;
  ResponderMetrics metrics_{registry_};
  std::string rules_path_;
  std::unique_ptr<RulesHolder> rules_;
  std::unique_ptr<KeySpace> keys_;
  std::unique_ptr<ResponderHandler> handler_;
  redis::Fence fence_;
  int mids_ = 0;
};

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
  ASSERT_EQ(Handle(Deliver("", katy::v1::EVENT_KIND_READ)).kind, redis::HandleResult::Kind::kDone);
  EXPECT_TRUE(Outbound().empty());
  EXPECT_EQ(ConversationField("read_watermark"), "0");
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

TEST_F(ResponderHandlerTest, UndecodableEntryIsPoison) {
  redis::StreamEntry garbage{keys_->InStream(0), "1-1", {{"pb", "\xff\xff not a protobuf"}}};
  EXPECT_EQ((*handler_)(client_, garbage, fence_).kind, redis::HandleResult::Kind::kPoison);
}

TEST_F(ResponderHandlerTest, BadRulesFileIsRefusedAndOldRulesStay) {
  std::ofstream(rules_path_) << "rules:\n  - when: { keywords: [x] }\n    reply: { text: a, quick_replies: [\"this title is far too long\"] }\n";
  auto reloaded = rules_->Reload();
  ASSERT_FALSE(reloaded.ok());
  EXPECT_NE(reloaded.error().message.find("rules.yaml:3:"), std::string::npos) << reloaded.error().message;
  EXPECT_EQ(rules_->Current()->rules.size(), 2u);
}

}  // namespace
}  // namespace katy::responder
