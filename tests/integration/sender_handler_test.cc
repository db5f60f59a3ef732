#include "services/sender/sender_handler.h"

#include <gtest/gtest.h>

#include <pistache/endpoint.h>
#include <pistache/http.h>
#include <deque>
#include <map>
#include <numeric>
#include <thread>

#include "common/bucketed_marks.h"
#include "common/clock.h"
#include "common/http/http_client.h"
#include "common/redis/streams.h"

#include <nlohmann/json.hpp>
#include "katy/v1/events.pb.h"
#include "tests/support/in_process_emulator.h"
#include "tests/support/test_support.h"
#include "tools/emulator/emulator_server.h"

namespace katy::sender {
namespace {

// The sender's handler against a real emulator (HTTP on port 0) and a real Redis.
class SenderHandlerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    meta_ = std::make_unique<testing::InProcessEmulator>("page-token");
    ASSERT_TRUE(meta_->server);
    emulator_ = meta_->server.get();
    keys_ = std::make_unique<KeySpace>(testing::UniquePrefix("sender"), 4);
    SenderOptions sender_options;
    sender_options.graph_url = meta_->graph_url();
    sender_options.request_timeout = std::chrono::milliseconds(1000);
    limiter_ = std::make_unique<PageLimiter>(*keys_, 1000, 100);
    handler_ =
        std::make_unique<SenderHandler>(*keys_, sender_options, tokens_, *limiter_, metrics_, [this] { return now_; });
    fence_ = {keys_->Lease(ShardOf("p1", "u1", 4), "sender"), "me"};
    ASSERT_TRUE(client_.Command({"SET", fence_.lease_key, "me"}).ok());
  }

  redis::HandleResult Handle(const redis::StreamEntry& entry) { return (*handler_)(client_, entry, fence_); }

  redis::StreamEntry Queue(const std::string& id, const std::string& message_json, int64_t last_user_ms = 0,
                           const std::string& platform = "") {
    katy::v1::OutboundMessage message;
    message.set_platform(platform);
    message.set_id(id);
    message.set_page_id("p1");
    message.set_recipient_id("u1");
    message.set_messaging_type("RESPONSE");
    message.set_message_json(message_json);
    message.set_user_last_message_ms(last_user_ms);
    message.set_event_received_at_ms(now_ - 5);
    message.set_event_timestamp_ms(now_ - 2000);  // Meta took its time delivering the webhook
    message.set_created_at_ms(now_);
    const std::string stream = keys_->OutStream(ShardOf("p1", "u1", 4));
    EXPECT_TRUE(redis::EnsureGroup(client_, stream, KeySpace::kSenderGroup).ok());
    EXPECT_TRUE(redis::XAdd(client_, stream, {{"pb", message.SerializeAsString()}}).ok());
    auto read =
        redis::XReadGroup(client_, KeySpace::kSenderGroup, "c1", {stream}, {">"}, 1, std::chrono::milliseconds(0));
    EXPECT_TRUE(read.ok() && read->size() == 1);
    return read->front();
  }

  // A one-part reply to `recipient` (page p1), read from its shard's stream as the consumer
  // reads it, with that shard's fence (this instance holds every shard's lease).
  redis::BatchEntry QueueTo(const std::string& recipient, const std::string& id,
                            std::deque<redis::StreamEntry>& entries) {
    katy::v1::OutboundMessage message;
    message.set_id(id);
    message.set_page_id("p1");
    message.set_recipient_id(recipient);
    message.set_messaging_type("RESPONSE");
    message.set_message_json(R"({"text":"hi"})");
    message.set_in_reply_to_mid("m-" + recipient);
    message.set_user_last_message_ms(now_ - 1000);
    message.set_created_at_ms(now_);
    const int shard = ShardOf("p1", recipient, 4);
    const std::string stream = keys_->OutStream(shard);
    EXPECT_TRUE(redis::EnsureGroup(client_, stream, KeySpace::kSenderGroup).ok());
    EXPECT_TRUE(redis::XAdd(client_, stream, {{"pb", message.SerializeAsString()}}).ok());
    auto read =
        redis::XReadGroup(client_, KeySpace::kSenderGroup, "c1", {stream}, {">"}, 1, std::chrono::milliseconds(0));
    EXPECT_TRUE(read.ok() && read->size() == 1);
    entries.push_back(read->front());
    const std::string lease = keys_->Lease(shard, "sender");
    EXPECT_TRUE(client_.Command({"SET", lease, "me"}).ok());
    return {&entries.back(), {lease, "me"}, std::chrono::milliseconds(0)};
  }

  int64_t Pending(const std::string& stream) {
    return client_.Command({"XPENDING", stream, KeySpace::kSenderGroup})->elements[0].integer;
  }

  // The delivered mark of a reply created at now_ (in its bucket, DeliveredMark).
  bool DeliveredMarked(const std::string& id) {
    katy::v1::OutboundMessage message;
    message.set_id(id);
    message.set_page_id("p1");
    message.set_created_at_ms(now_);
    return client_.Command(DeliveredMark(*keys_, ShardOf("p1", "u1", 4), message, 0).Check())->integer == 1;
  }

  bool InFlightMarked(const std::string& id) {
    return client_.Command({"EXISTS", keys_->Sent(ShardOf("p1", "u1", 4), id) + ":inflight"})->integer == 1;
  }

  redis::Client client_{testing::TestRedisOptions()};
  prometheus::Registry registry_;
  SenderMetrics metrics_{registry_};
  PageTokens tokens_ = PageTokens::FromMap("page-token", {{"p-other", "wrong-token"}});
  std::unique_ptr<testing::InProcessEmulator> meta_;
  emulator::EmulatorServer* emulator_ = nullptr;  // meta_'s
  std::unique_ptr<KeySpace> keys_;
  std::unique_ptr<PageLimiter> limiter_;
  std::unique_ptr<SenderHandler> handler_;
  redis::Fence fence_;
  // The handler's clock, moved by hand; from the real time, since delivered marks' buckets
  // expire at a time Redis compares with its own clock.
  int64_t now_ = WallClockMs();
};

TEST_F(SenderHandlerTest, DeliversRecordsAndAcknowledges) {
  auto entry = Queue("1-0#0", R"({"text":"hello there"})", now_ - 1000);
  EXPECT_EQ(Handle(entry).kind, redis::HandleResult::Kind::kDone);
  auto received = emulator_->store().For("u1");
  ASSERT_EQ(received.size(), 1u);
  EXPECT_EQ(received[0].page_id, "p1");
  EXPECT_EQ(received[0].message_json, R"({"text":"hello there"})");
  EXPECT_EQ(Pending(entry.stream), 0);
  EXPECT_TRUE(DeliveredMarked("1-0#0"));
  // Kept KATY_SENT_MARK_TTL_S (2 days by default) from the end of its 5 s bucket.
  const std::string bucket = keys_->SentBucket(ShardOf("p1", "u1", 4), now_ / kSentBucketMs);
  const int64_t bucket_end_s = (now_ / kSentBucketMs + 1) * kSentBucketMs / 1000;
  const int64_t expected_ttl_s = bucket_end_s + 2 * 24 * 3600 - now_ / 1000;
  EXPECT_NEAR(static_cast<double>(client_.Command({"TTL", bucket})->integer), static_cast<double>(expected_ttl_s), 60);
  // Both latencies: from ingress receipt, and from the webhook's own timestamp.
  EXPECT_DOUBLE_EQ(metrics_.end_to_end.Collect().histogram.sample_sum, 0.005);
  EXPECT_DOUBLE_EQ(metrics_.webhook_to_send.Collect().histogram.sample_sum, 2.0);
}

TEST_F(SenderHandlerTest, LongTextGoesInOrderedPartsWithTypingAndMarkSeen) {
  SenderOptions options;
  options.graph_url = meta_->graph_url();
  options.typing = true;
  options.mark_seen = true;
  SenderHandler handler(*keys_, options, tokens_, *limiter_, metrics_, [this] { return now_; });
  std::string text;
  for (int i = 0; i < 700; ++i) text += "word" + std::to_string(i) + " ";  // ~5300 characters
  nlohmann::json message{{"text", text},
                         {"quick_replies", {{{"content_type", "text"}, {"title", "OK"}, {"payload", "OK"}}}}};
  auto entry = Queue("7-0#0", message.dump());
  ASSERT_EQ(handler(client_, entry, fence_).kind, redis::HandleResult::Kind::kDone);
  auto received = emulator_->store().For("u1");
  std::vector<std::string> kinds;
  std::string joined;
  for (const auto& item : received) {
    if (!item.sender_action.empty()) {
      kinds.push_back(item.sender_action);
      continue;
    }
    auto body = nlohmann::json::parse(item.message_json);
    kinds.emplace_back(body.contains("quick_replies") ? "text+qr" : "text");
    EXPECT_LT(body["text"].get<std::string>().size(), 2000u);
    joined += body["text"].get<std::string>() + " ";
  }
  EXPECT_EQ(kinds,
            (std::vector<std::string>{"mark_seen", "typing_on", "text", "typing_on", "text", "typing_on", "text+qr"}));
  EXPECT_EQ(joined, text);
  EXPECT_EQ(Pending(entry.stream), 0);
}

TEST_F(SenderHandlerTest, AlreadyDeliveredMessageIsNotSentAgain) {
  ASSERT_EQ(Handle(Queue("2-0#0", R"({"text":"once"})")).kind, redis::HandleResult::Kind::kDone);
  // The same reply queued again (a responder re-processed its event): skipped.
  auto again = Queue("2-0#0", R"({"text":"once"})");
  EXPECT_EQ(Handle(again).kind, redis::HandleResult::Kind::kDone);
  EXPECT_EQ(emulator_->store().For("u1").size(), 1u);
  EXPECT_EQ(Pending(again.stream), 0);
  EXPECT_FALSE(InFlightMarked("2-0#0"));  // the checks' round trip set one; it was cleared
}

// An upgrade from delivered marks of their own (docs/scaling.md): a message created before this
// sender started whose mark of its own says it went is not sent again; its bucket is not
// where that mark is.
TEST_F(SenderHandlerTest, ADeliveredMarkOfItsOwnFromBeforeBucketsIsHonoured) {
  const int shard = ShardOf("p1", "u1", 4);
  ASSERT_TRUE(client_.Command({"SET", keys_->Sent(shard, "3-0#0"), "m_earlier", "EX", "60"}).ok());
  now_ -= 1000;  // created before the handler started
  auto entry = Queue("3-0#0", R"({"text":"once"})");
  now_ += 1000;
  EXPECT_EQ(Handle(entry).kind, redis::HandleResult::Kind::kDone);
  EXPECT_TRUE(emulator_->store().For("u1").empty());
  EXPECT_EQ(metrics_.skipped.Value(), 1);
  EXPECT_EQ(Pending(entry.stream), 0);
}

// A mark found in its bucket after the record's EXPIREAT was lost (the pipeline cut after its
// SADD, so its XACK was lost too and the entry comes again) gets its lifetime back: no bucket
// outlives its TTL.
TEST_F(SenderHandlerTest, AMarkFoundWithoutItsLifetimeGetsItBack) {
  auto entry = Queue("4-0#0", R"({"text":"once"})");
  const std::string bucket = keys_->SentBucket(ShardOf("p1", "u1", 4), now_ / kSentBucketMs);
  ASSERT_TRUE(client_.Command({"SADD", bucket, std::to_string(MarkDigest("p1", "4-0#0"))}).ok());
  ASSERT_EQ(client_.Command({"TTL", bucket})->integer, -1);
  EXPECT_EQ(Handle(entry).kind, redis::HandleResult::Kind::kDone);
  EXPECT_TRUE(emulator_->store().For("u1").empty());
  EXPECT_GT(client_.Command({"TTL", bucket})->integer, 2 * 24 * 3600 - 60);
  EXPECT_EQ(Pending(entry.stream), 0);
}

// A message held a while (a rate wait, a pause, an earlier message of the conversation) is
// checked to be still pending before it goes: a person forgotten meanwhile had it deleted. One
// read just now is on its way, like one already called, and costs no XPENDING.
TEST_F(SenderHandlerTest, AMessageHeldAWhileGoesOnlyWhileItsEntryIsPending) {
  auto forget = [&](const redis::StreamEntry& entry) {
    ASSERT_TRUE(client_.Command({"XACK", entry.stream, KeySpace::kSenderGroup, entry.id}).ok());
    ASSERT_TRUE(client_.Command({"XDEL", entry.stream, entry.id}).ok());
  };
  auto held = Queue("5-0#0", R"({"text":"held"})");
  forget(held);
  EXPECT_EQ((*handler_)(client_, redis::BatchEntry{&held, fence_, SenderHandler::kPendingCheckAfter}).kind,
            redis::HandleResult::Kind::kDone);
  EXPECT_TRUE(emulator_->store().For("u1").empty());
  EXPECT_EQ(metrics_.sends.Add({{"result", "forgotten"}, {"code", "0"}}).Value(), 1);

  auto fresh = Queue("6-0#0", R"({"text":"just read"})");
  forget(fresh);
  EXPECT_EQ((*handler_)(client_, redis::BatchEntry{&fresh, fence_, std::chrono::milliseconds(2)}).kind,
            redis::HandleResult::Kind::kDone);
  EXPECT_EQ(emulator_->store().For("u1").size(), 1u);
}

TEST_F(SenderHandlerTest, AnInstanceThatLostTheShardSendsNothing) {
  auto entry = Queue("6-0#0", R"({"text":"not mine"})");
  ASSERT_TRUE(client_.Command({"SET", fence_.lease_key, "someone-else"}).ok());
  EXPECT_EQ(Handle(entry).kind, redis::HandleResult::Kind::kAbandon);
  EXPECT_TRUE(emulator_->store().For("u1").empty());
  EXPECT_FALSE(InFlightMarked("6-0#0"));
  EXPECT_EQ(ConversationOfMessage(entry), "p1:u1");
}

// While the consumer's local bound says the shard's lease is surely this instance's (the TTL
// from before its last renewal, a tenth short), no other instance can hold it: the checks do
// not read the lease. So a lease key changed behind Redis's back (not possible by the lease
// protocol) is not seen then, and is again once the bound has passed.
TEST_F(SenderHandlerTest, ALeaseSurelyOursIsNotReadBeforeSending) {
  ASSERT_TRUE(client_.Command({"SET", fence_.lease_key, "someone-else"}).ok());
  redis::Fence sure = fence_;
  sure.surely_ours_until = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  EXPECT_EQ((*handler_)(client_, Queue("7-0#0", R"({"text":"mine for sure"})"), sure).kind,
            redis::HandleResult::Kind::kDone);
  EXPECT_EQ(emulator_->store().For("u1").size(), 1u);
  sure.surely_ours_until = std::chrono::steady_clock::now() - std::chrono::milliseconds(1);
  EXPECT_EQ((*handler_)(client_, Queue("8-0#0", R"({"text":"no longer sure"})"), sure).kind,
            redis::HandleResult::Kind::kAbandon);
  EXPECT_EQ(emulator_->store().For("u1").size(), 1u);
}

// A reusable image is uploaded once through the Attachment Upload API; its attachment_id is
// kept in Redis (a day short of Meta's 90) and both sends name it instead of the url.
TEST_F(SenderHandlerTest, AReusableAttachmentIsUploadedOnceForTwoSends) {
  const std::string image =
      R"({"attachment":{"type":"image","payload":{"url":"https://x.y/cat.jpg","is_reusable":true}}})";
  ASSERT_EQ(Handle(Queue("10-0#0", image)).kind, redis::HandleResult::Kind::kDone);
  ASSERT_EQ(Handle(Queue("11-0#0", image)).kind, redis::HandleResult::Kind::kDone);
  http::Client http;
  auto uploads = nlohmann::json::parse(
      http.Get("http://127.0.0.1:" + std::to_string(emulator_->port()) + "/_emulator/attachments")->body);
  ASSERT_EQ(uploads.size(), 1u);
  EXPECT_EQ(uploads[0]["url"], "https://x.y/cat.jpg");
  EXPECT_EQ(uploads[0]["page"], "p1");
  const std::string id = uploads[0]["attachment_id"];
  auto received = emulator_->store().For("u1");
  ASSERT_EQ(received.size(), 2u);
  for (const auto& message : received) {
    EXPECT_EQ(nlohmann::json::parse(message.message_json)["attachment"]["payload"],
              nlohmann::json({{"attachment_id", id}}));
  }
  const std::string cache_key = keys_->Attachment("p1", "https://x.y/cat.jpg");
  EXPECT_EQ(client_.Command({"GET", cache_key})->str, id);
  EXPECT_GT(client_.Command({"TTL", cache_key})->integer, 88LL * 24 * 3600);
  EXPECT_EQ(metrics_.media_uploads.Value(), 1);
  EXPECT_EQ(metrics_.media_reused.Value(), 1);

  // Not reusable: sent by url every time, nothing uploaded.
  ASSERT_EQ(Handle(Queue("12-0#0", R"({"attachment":{"type":"image","payload":{"url":"https://x.y/dog.jpg"}}})")).kind,
            redis::HandleResult::Kind::kDone);
  EXPECT_EQ(nlohmann::json::parse(
                http.Get("http://127.0.0.1:" + std::to_string(emulator_->port()) + "/_emulator/attachments")->body)
                .size(),
            1u);
}

// An Instagram account's reply goes to the Instagram Send API base when one is set.
TEST_F(SenderHandlerTest, InstagramMessagesGoToTheirOwnSendApiBase) {
  SenderOptions options;
  options.graph_url = "http://127.0.0.1:1/v25.0";  // nobody there: Messenger calls would fail
  options.instagram_graph_url = meta_->graph_url();
  SenderHandler handler(*keys_, options, tokens_, *limiter_, metrics_, [this] { return now_; });
  auto entry = Queue("14-0#0", R"({"text":"hi on instagram"})", 0, "instagram");
  EXPECT_EQ(handler(client_, entry, fence_).kind, redis::HandleResult::Kind::kDone);
  ASSERT_EQ(emulator_->store().For("u1").size(), 1u);
  EXPECT_EQ(emulator_->store().For("u1")[0].message_json, R"({"text":"hi on instagram"})");
}

// What Instagram has no shape for (a media template, here from a skill) is dead-lettered
// before any call, with its reason; a long text goes out in parts Instagram takes.
TEST_F(SenderHandlerTest, InstagramLimitsAreKeptBeforeCallingMeta) {
  auto refused =
      Queue("15-0#0", R"({"attachment":{"type":"template","payload":{"template_type":"media"}}})", 0, "instagram");
  auto result = Handle(refused);
  EXPECT_EQ(result.kind, redis::HandleResult::Kind::kPoison);
  EXPECT_EQ(result.reason, "instagram_unsupported");
  EXPECT_TRUE(emulator_->store().For("u1").empty());
  auto long_text = Queue("15-1#0", nlohmann::json{{"text", std::string(1500, 'a')}}.dump(), 0, "instagram");
  EXPECT_EQ(Handle(long_text).kind, redis::HandleResult::Kind::kDone);
  ASSERT_EQ(emulator_->store().For("u1").size(), 2u);
  EXPECT_EQ(nlohmann::json::parse(emulator_->store().For("u1")[0].message_json)["text"].get<std::string>().size(),
            1000u);
}

// A private reply goes to recipient.comment_id, with neither mark_seen nor typing (there is no
// conversation yet); a second message to the same comment (another rule, a replayed outbound
// entry) is refused before any call, while the first one's own retry still goes.
TEST_F(SenderHandlerTest, APrivateReplyClaimsItsCommentOnceAndAPublicReplyGoesUnderIt) {
  emulator::Comment written;
  written.page_id = "p1";
  written.author = "u1";
  written.text = "price?";
  written.created_ms = WallClockMs();
  const std::string comment = emulator_->comments().Add(written).id;
  auto to_comment = [&](const std::string& id, const std::string& text, bool public_reply) {
    katy::v1::OutboundMessage message;
    message.set_id(id);
    message.set_page_id("p1");
    message.set_recipient_id("u1");
    message.set_recipient_comment_id(comment);
    message.set_comment_created_ms(now_ - 3600 * 1000);
    message.set_public_reply(public_reply);
    message.set_message_json(nlohmann::json{{"text", text}}.dump());
    return message;
  };
  auto queue = [&](const katy::v1::OutboundMessage& message) {
    const std::string stream = keys_->OutStream(ShardOf("p1", "u1", 4));
    EXPECT_TRUE(redis::EnsureGroup(client_, stream, KeySpace::kSenderGroup).ok());
    EXPECT_TRUE(redis::XAdd(client_, stream, {{"pb", message.SerializeAsString()}}).ok());
    auto read =
        redis::XReadGroup(client_, KeySpace::kSenderGroup, "c1", {stream}, {">"}, 1, std::chrono::milliseconds(0));
    return read->front();
  };
  SenderOptions options;
  options.graph_url = meta_->graph_url();
  options.mark_seen = true;
  options.typing = true;
  SenderHandler handler(*keys_, options, tokens_, *limiter_, metrics_, [this] { return now_; });
  auto first = queue(to_comment("40-0#0", "the price is 20", false));
  EXPECT_EQ(handler(client_, first, fence_).kind, redis::HandleResult::Kind::kDone);
  auto received = emulator_->store().For("u1");
  ASSERT_EQ(received.size(), 1u);  // no mark_seen, no typing_on: the message alone
  EXPECT_EQ(received[0].comment_id, comment);
  EXPECT_EQ(received[0].message_json, R"({"text":"the price is 20"})");

  auto second = handler(client_, queue(to_comment("41-0#0", "another answer", false)), fence_);
  EXPECT_EQ(second.kind, redis::HandleResult::Kind::kPoison);
  EXPECT_EQ(second.reason, "comment_already_answered");
  auto refusals = [&](const char* code) {
    return metrics_.sends.Add({{"result", "comment_already_answered"}, {"code", code}}).Value();
  };
  EXPECT_EQ(refusals("0"), 1);  // refused by Katy's claim: Meta was not called
  EXPECT_EQ(refusals("10900"), 0);
  EXPECT_EQ(emulator_->store().For("u1").size(), 1u);
  // The claim is the first message's: its retry (its sent mark lost, say) is not refused by
  // Katy, and Meta's own refusal of a second private reply is read as such.
  ASSERT_TRUE(client_.Command({"DEL", keys_->Sent(ShardOf("p1", "u1", 4), "40-0#0")}).ok());
  auto retried = handler(client_, queue(to_comment("40-0#0", "the price is 20", false)), fence_);
  EXPECT_EQ(retried.kind, redis::HandleResult::Kind::kPoison);
  EXPECT_EQ(retried.reason, "comment_already_answered");
  EXPECT_EQ(refusals("10900"), 1);  // this time Meta's answer
  EXPECT_EQ(emulator_->store().For("u1").size(), 1u);

  EXPECT_EQ(handler(client_, queue(to_comment("40-0#public", "Check your inbox!", true)), fence_).kind,
            redis::HandleResult::Kind::kDone);
  EXPECT_EQ(emulator_->comments().Find(comment)->public_replies, std::vector<std::string>{"Check your inbox!"});

  auto late = to_comment("42-0#0", "too late", false);
  late.set_comment_created_ms(now_ - 8 * 24 * 3600 * 1000LL);
  auto refused = handler(client_, queue(late), fence_);
  EXPECT_EQ(refused.kind, redis::HandleResult::Kind::kPoison);
  EXPECT_EQ(refused.reason, "outside_comment_window");
}

// A Send API that answers every call as if for someone else: a server or proxy that mixed up
// its connections (the emulator did, under Pistache, until it checked for hung-up clients).
class CrossedSendApi : public Pistache::Http::Handler {
 public:
  HTTP_PROTOTYPE(CrossedSendApi)
  void onRequest(const Pistache::Http::Request&, Pistache::Http::ResponseWriter response) override {
    response.send(Pistache::Http::Code::Ok, R"({"recipient_id":"someone-else","message_id":"m_not_yours"})");
  }
};

// Taking such an answer for this message's would record a delivery Meta never made: the
// message would be lost. It is retried, with its in-flight mark, as a possible duplicate.
TEST_F(SenderHandlerTest, AnAnswerForAnotherRecipientIsNotTakenForThisMessagesDelivery) {
  Pistache::Http::Endpoint crossed(Pistache::Address(Pistache::Ipv4::loopback(), Pistache::Port(0)));
  crossed.init(Pistache::Http::Endpoint::options().threads(1));
  crossed.setHandler(Pistache::Http::make_handler<CrossedSendApi>());
  crossed.serveThreaded();
  SenderOptions options;
  options.graph_url = "http://127.0.0.1:" + std::to_string(static_cast<uint16_t>(crossed.getPort())) + "/v25.0";
  options.request_timeout = std::chrono::milliseconds(1000);
  SenderHandler confused(*keys_, options, tokens_, *limiter_, metrics_, [this] { return now_; });
  auto entry = Queue("9-0#0", R"({"text":"mine"})");
  auto result = confused(client_, entry, fence_);
  crossed.shutdown();
  EXPECT_EQ(result.kind, redis::HandleResult::Kind::kRetry);
  EXPECT_EQ(result.reason, "crossed_answer");
  const int shard = ShardOf("p1", "u1", 4);
  EXPECT_FALSE(DeliveredMarked("9-0#0"));
  EXPECT_EQ(client_.Command({"EXISTS", keys_->Sent(shard, "9-0#0") + ":inflight"})->integer, 1);
  EXPECT_EQ(Pending(entry.stream), 1);
  EXPECT_EQ(metrics_.sends.Add({{"result", "crossed_answer"}, {"code", "0"}}).Value(), 1);

  now_ += 1500;  // past the request timeout: the unknown attempt cannot land any more
  EXPECT_EQ(Handle(entry).kind, redis::HandleResult::Kind::kDone);
  EXPECT_EQ(emulator_->store().For("u1").size(), 1u);
  EXPECT_EQ(metrics_.possible_duplicates.Value(), 1);
  EXPECT_EQ(Pending(entry.stream), 0);
}

TEST_F(SenderHandlerTest, PermanentErrorsArePoisonTransientOnesRetry) {
  std::string too_many = R"({"text":"x","quick_replies":[)";
  for (int i = 0; i < 14; ++i)
    too_many += std::string(i ? "," : "") + R"({"content_type":"text","title":"t","payload":"p"})";
  too_many += "]}";
  auto rejected = Handle(Queue("3-0#0", too_many));
  EXPECT_EQ(rejected.kind, redis::HandleResult::Kind::kPoison);
  EXPECT_EQ(rejected.reason, "bad_request");

  auto outside = Handle(Queue("4-0#0", R"({"text":"late"})", now_ - 25LL * 3600 * 1000));
  EXPECT_EQ(outside.kind, redis::HandleResult::Kind::kPoison);
  EXPECT_EQ(outside.reason, "outside_window");

  emulator_->Shutdown();  // nobody answers: a transient failure
  auto unreachable = Handle(Queue("5-0#0", R"({"text":"x"})"));
  EXPECT_EQ(unreachable.kind, redis::HandleResult::Kind::kRetry);
  EXPECT_TRUE(emulator_->store().For("u1").empty());
}

// The conversation's last_user_ms is read only when the message's own time of the user's last
// message cannot show it inside the window; when it is read, a later message of the user still
// keeps the window open, and a message that carries none is still held to it.
TEST_F(SenderHandlerTest, TheWindowIsReadFromTheConversationOnlyWhenTheMessageCannotTell) {
  constexpr int64_t kHour = 3600 * 1000;
  const std::string conversation = keys_->Conversation(ShardOf("p1", "u1", 4), "p1", "u1");
  ASSERT_TRUE(client_.Command({"HSET", conversation, "last_user_ms", std::to_string(now_ - kHour)}).ok());
  EXPECT_EQ(Handle(Queue("6-0#0", R"({"text":"kept open"})", now_ - 25 * kHour)).kind,
            redis::HandleResult::Kind::kDone);
  ASSERT_TRUE(client_.Command({"HSET", conversation, "last_user_ms", std::to_string(now_ - 25 * kHour)}).ok());
  auto outside = Handle(Queue("7-0#0", R"({"text":"none carried"})"));
  EXPECT_EQ(outside.kind, redis::HandleResult::Kind::kPoison);
  EXPECT_EQ(outside.reason, "outside_window");

  katy::v1::OutboundMessage reply;
  reply.set_messaging_type("RESPONSE");
  reply.set_in_reply_to_mid("m.1");  // an answer to the person's message
  const int64_t window = 24 * kHour;
  reply.set_user_last_message_ms(now_ - kHour);
  EXPECT_FALSE(NeedsWindowRead(reply, now_, window));
  reply.set_user_last_message_ms(now_ - window + 30 * 1000);  // within a minute of the end
  EXPECT_TRUE(NeedsWindowRead(reply, now_, window));
  reply.set_user_last_message_ms(0);
  EXPECT_TRUE(NeedsWindowRead(reply, now_, window));
  // Anything but an answer reads the conversation, for the person's opt-out at least.
  reply.set_in_reply_to_mid("");
  reply.set_user_last_message_ms(now_ - kHour);
  EXPECT_TRUE(NeedsWindowRead(reply, now_, window)) << "the outbound API's message";
  reply.set_messaging_type("MESSAGE_TAG");
  reply.set_tag("ACCOUNT_UPDATE");
  EXPECT_TRUE(NeedsWindowRead(reply, now_, window)) << "no window applies, but an opt-out may";
  reply.set_recipient_comment_id("c1");
  EXPECT_FALSE(NeedsWindowRead(reply, now_, window)) << "a comment's message has no conversation yet";
}

// A conversation an ad started (its first message after the click) has a standard window of 7
// days from that message: a reply 3 days after goes; the same reply in an ordinary
// conversation is dead-lettered outside_window.
TEST_F(SenderHandlerTest, AReplyThreeDaysIntoAnAdStartedConversationGoes) {
  constexpr int64_t kDay = 24LL * 3600 * 1000;
  const std::string conversation = keys_->Conversation(ShardOf("p1", "u1", 4), "p1", "u1");
  ASSERT_TRUE(client_.Command({"HSET", conversation, "last_user_ms", std::to_string(now_ - 3 * kDay)}).ok());
  auto ordinary = Handle(Queue("11-0#0", R"({"text":"three days later"})", now_ - 3 * kDay));
  EXPECT_EQ(ordinary.kind, redis::HandleResult::Kind::kPoison);
  EXPECT_EQ(ordinary.reason, "outside_window");

  ASSERT_TRUE(client_.Command({"HSET", conversation, "ad_window_until_ms", std::to_string(now_ + 4 * kDay)}).ok());
  EXPECT_EQ(Handle(Queue("12-0#0", R"({"text":"three days later"})", now_ - 3 * kDay)).kind,
            redis::HandleResult::Kind::kDone);
  EXPECT_EQ(emulator_->store().For("u1").size(), 1u);

  now_ += 4 * kDay + 1;  // past the 7 days
  auto late = Handle(Queue("13-0#0", R"({"text":"a week later"})", now_ - 7 * kDay));
  EXPECT_EQ(late.kind, redis::HandleResult::Kind::kPoison);
  EXPECT_EQ(late.reason, "outside_window");
}

// A busy page's slots are reserved ahead for the parts that ask, each due an interval after
// the last; a part asking again when its slot is due goes without taking another.
TEST_F(SenderHandlerTest, AcquireReservesSlotsAheadAndThePartGoesWhenItsSlotIsDue) {
  PageLimiter limiter(*keys_, 10, 1);  // 100 ms apart, a tolerance of 50 ms
  // Each answer with the moments (local ms) just before and after the call: the script read
  // Redis's clock in between, so every expected wait is bounded by measured times, never by a
  // guess of how long a call takes.
  struct Asked {
    PageGate gate;
    double before = 0;
    double after = 0;
  };
  const auto start = std::chrono::steady_clock::now();
  auto local_ms = [&] {
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  };
  auto acquire = [&](const std::string& part) {
    Asked asked;
    asked.before = local_ms();
    auto gate = limiter.Acquire(client_, "busy", false, part);
    asked.after = local_ms();
    EXPECT_TRUE(gate.ok());
    asked.gate = gate ? *gate : PageGate{PageGate::Kind::kPaused, {}, {}};
    return asked;
  };
  // A wait the script computed as `due_after_first` ms after the first call's clock, less the
  // time that passed between the two calls (rounded up).
  auto expect_wait = [](const Asked& first, const Asked& asked, double due_after_first, const std::string& what) {
    const auto wait = static_cast<double>(asked.gate.wait.count());
    EXPECT_GE(wait, due_after_first - (asked.after - first.before) - 1) << what;
    EXPECT_LE(wait, due_after_first - (asked.before - first.after) + 1) << what;
  };
  const Asked first = acquire("part0");
  ASSERT_EQ(first.gate.kind, PageGate::Kind::kGo);
  std::vector<Asked> reserved;
  for (int part = 1; part <= 5; ++part) {
    reserved.push_back(acquire("part" + std::to_string(part)));
    ASSERT_EQ(reserved.back().gate.kind, PageGate::Kind::kWait);
    // Part k's slot: k intervals after the first, less the tolerance.
    expect_wait(first, reserved.back(), 100.0 * part - 50, "part" + std::to_string(part));
  }
  std::this_thread::sleep_for(reserved[0].gate.wait + std::chrono::milliseconds(5));
  EXPECT_EQ(acquire("part1").gate.kind, PageGate::Kind::kGo);  // its reserved slot
  // part2 holds its reservation: its wait is counted on this process's clock from its own ask.
  const Asked early = acquire("part2");
  EXPECT_EQ(early.gate.kind, PageGate::Kind::kWait);
  const double part2_due_from = reserved[1].before + static_cast<double>(reserved[1].gate.wait.count());
  const double part2_due_to = reserved[1].after + static_cast<double>(reserved[1].gate.wait.count());
  EXPECT_GE(static_cast<double>(early.gate.wait.count()), part2_due_from - early.after - 1);
  EXPECT_LE(static_cast<double>(early.gate.wait.count()), part2_due_to - early.before + 1);
  // A new part queues behind the five reserved slots: due 550 ms after the first.
  const Asked next = acquire("part6");
  EXPECT_EQ(next.gate.kind, PageGate::Kind::kWait);
  expect_wait(first, next, 550, "part6");
}

// The production limiter (its Lua script on Redis's clock, not the C++ Gcra the unit test
// checks) driven for 4 s by 30 parts that ask as the sender does: each goes when told kGo and
// asks again when a kWait says. At 50/s no 1-second window takes more than the rate and its
// tolerance (half an interval), and a backlogged page runs at the rate.
TEST_F(SenderHandlerTest, TheLimitersScriptKeepsEverySecondAtTheRateOnRedisClock) {
  PageLimiter limiter(*keys_, 50, 1);
  using Clock = std::chrono::steady_clock;
  const auto start = Clock::now();
  auto elapsed_ms = [&] { return std::chrono::duration<double, std::milli>(Clock::now() - start).count(); };
  std::map<std::string, double> asking;  // part -> when it asks next (ms since start)
  std::vector<double> sent;
  int next_part = 0;
  while (elapsed_ms() < 4000) {
    while (asking.size() < 30) asking["part" + std::to_string(next_part++)] = elapsed_ms();
    for (auto it = asking.begin(); it != asking.end();) {
      if (it->second > elapsed_ms()) {
        ++it;
        continue;
      }
      auto gate = limiter.Acquire(client_, "busy50", false, it->first);
      ASSERT_TRUE(gate.ok());
      if (gate->kind == PageGate::Kind::kGo) {
        sent.push_back(elapsed_ms());
        it = asking.erase(it);
      } else {
        ASSERT_EQ(gate->kind, PageGate::Kind::kWait);
        it->second = elapsed_ms() + static_cast<double>(gate->wait.count());
        ++it;
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  EXPECT_LE(testing::BusiestSecond(sent), 51u);
  EXPECT_GE(sent.size(), static_cast<size_t>(50 * 4 * 0.95));
  EXPECT_LE(sent.size(), static_cast<size_t>(50 * 4 + 1));
}

// A one-part message asks for its slot and sets its in-flight mark in the same round trip as
// the checks. When the page's limit makes it wait, the mark is cleared (else its next attempt
// would take it for an earlier attempt's and hold back a request timeout), and the next attempt
// goes on the reserved slot without counting a possible duplicate.
TEST_F(SenderHandlerTest, AMessageWaitingForItsSlotLeavesNoInFlightMarkAndGoesOnItsSlot) {
  PageLimiter limiter(*keys_, 10, 1);  // 100 ms apart
  SenderOptions options;
  options.graph_url = meta_->graph_url();
  SenderHandler handler(*keys_, options, tokens_, limiter, metrics_, [this] { return now_; });
  ASSERT_EQ(handler(client_, Queue("11-0#0", R"({"text":"first"})"), fence_).kind, redis::HandleResult::Kind::kDone);
  EXPECT_EQ(metrics_.slot_lateness.Collect().histogram.sample_count, 0u) << "a slot free now is not reserved";
  auto second = Queue("12-0#0", R"({"text":"second"})");
  auto waited = handler(client_, second, fence_);
  ASSERT_EQ(waited.kind, redis::HandleResult::Kind::kWait);
  EXPECT_EQ(waited.reason, "rate_limited");
  EXPECT_FALSE(InFlightMarked("12-0#0"));
  std::this_thread::sleep_for(waited.wait);
  EXPECT_EQ(handler(client_, second, fence_).kind, redis::HandleResult::Kind::kDone);
  EXPECT_EQ(emulator_->store().For("u1").size(), 2u);
  // The call on the reserved slot: how long after the slot fell due it left.
  EXPECT_EQ(metrics_.slot_lateness.Collect().histogram.sample_count, 1u);
  EXPECT_GE(metrics_.slot_lateness.Collect().histogram.sample_sum, 0.0);
  EXPECT_EQ(metrics_.possible_duplicates.Value(), 0);
  EXPECT_FALSE(InFlightMarked("12-0#0"));
}

// An in-flight mark younger than the request timeout is an attempt that may still reach Meta
// (an instance that died or lost the shard mid-call): a resend now could land this message
// after the user's next one (the chaos test once saw n10, n11, n10). So the resend waits out
// that timeout, sends nothing meanwhile, and then goes as a counted possible duplicate.
TEST_F(SenderHandlerTest, AResendWaitsOutTheEarlierAttemptsRequestTimeout) {
  auto entry = Queue("14-0#0", R"({"text":"once, in its place"})");
  const std::string mark = keys_->Sent(ShardOf("p1", "u1", 4), "14-0#0") + ":inflight";
  ASSERT_TRUE(client_.Command({"SET", mark, std::to_string(now_), "PX", "60000"}).ok());  // begun just now

  auto result = Handle(entry);
  EXPECT_EQ(result.kind, redis::HandleResult::Kind::kWait);
  EXPECT_EQ(result.reason, "in_flight_elsewhere");
  EXPECT_EQ(result.wait, std::chrono::milliseconds(1000));
  now_ += 600;
  result = Handle(entry);
  EXPECT_EQ(result.kind, redis::HandleResult::Kind::kWait);
  EXPECT_EQ(result.wait, std::chrono::milliseconds(400));
  EXPECT_TRUE(emulator_->store().For("u1").empty()) << "sent while the earlier attempt could still land";
  EXPECT_EQ(metrics_.possible_duplicates.Value(), 0);

  now_ += 500;  // past the request timeout
  EXPECT_EQ(Handle(entry).kind, redis::HandleResult::Kind::kDone);
  EXPECT_EQ(emulator_->store().For("u1").size(), 1u);
  EXPECT_EQ(metrics_.possible_duplicates.Value(), 1);
}

// The limiter's script goes in a pipeline by its SHA; a Redis that no longer holds it (a
// restart, SCRIPT FLUSH) answers NOSCRIPT there, and the script is run again, loading it.
TEST_F(SenderHandlerTest, AFlushedScriptCacheIsReloadedOnTheWay) {
  // A Redis of its own: a flush on the shared one fails the scripts of tests running beside it.
  const int port = testing::FreePort();
  auto redis = testing::StartPrivateRedis(port, testing::MakeTempDir("sender-flush"));
  redis::Options options;
  options.port = port;
  client_ = redis::Client(options);
  ASSERT_TRUE(client_.Command({"SET", fence_.lease_key, "me"}).ok());
  EXPECT_EQ(Handle(Queue("13-0#0", R"({"text":"before a flush"})")).kind, redis::HandleResult::Kind::kDone);
  ASSERT_TRUE(client_.Command({"SCRIPT", "FLUSH"}).ok());
  EXPECT_EQ(Handle(Queue("13-1#0", R"({"text":"after a flush"})")).kind, redis::HandleResult::Kind::kDone);
  EXPECT_EQ(emulator_->store().For("u1").size(), 2u);
}

// Every sender keeps katy:rate:* (pause-all, the default rate) for kGlobalRefresh: the one that
// pauses every page stops at once, another sender within the refresh, and both resume.
// A page's limiter hash expires a day after its last send unless an operator set its rate or
// paused it: page ids that stop sending leave no key behind, and a pause is never forgotten.
TEST_F(SenderHandlerTest, AnUnusedPagesLimiterStateExpiresAndOperatorSettingsStay) {
  auto ttl = [&](const std::string& page) { return client_.Command({"PTTL", keys_->Rate(page)})->integer; };
  ASSERT_TRUE(limiter_->Acquire(client_, "quiet", false, "part-q").ok());
  EXPECT_GT(ttl("quiet"), 23LL * 3600 * 1000);
  EXPECT_LE(ttl("quiet"), 24LL * 3600 * 1000);
  ASSERT_TRUE(limiter_->Throttle(client_, "throttled", std::chrono::milliseconds(5000)).ok());
  EXPECT_GT(ttl("throttled"), 0);
  ASSERT_TRUE(limiter_->Acquire(client_, "tuned", false, "part-t").ok());
  ASSERT_TRUE(limiter_->SetRate(client_, "tuned", 5).ok());
  EXPECT_EQ(ttl("tuned"), -1);
  ASSERT_TRUE(limiter_->Acquire(client_, "tuned", false, "part-t2").ok());
  EXPECT_EQ(ttl("tuned"), -1);  // a send keeps the operator's rate
  ASSERT_TRUE(limiter_->Acquire(client_, "held", false, "part-h").ok());
  ASSERT_TRUE(limiter_->Pause(client_, "held", "operator").ok());
  EXPECT_EQ(ttl("held"), -1);
}

// The idle lifetime is renewed when the page's slots move into another minute, not by every
// slot: one PEXPIRE a minute per page instead of one a message.
TEST_F(SenderHandlerTest, ALimitersIdleLifetimeIsRenewedOnceAMinuteNotByEverySlot) {
  const std::string hash = keys_->Rate("busy");
  auto ttl = [&] { return client_.Command({"PTTL", hash})->integer; };
  ASSERT_TRUE(limiter_->Acquire(client_, "busy", false, "part-1").ok());
  ASSERT_TRUE(client_.Command({"PEXPIRE", hash, "3600000"}).ok());
  ASSERT_TRUE(limiter_->Acquire(client_, "busy", false, "part-2").ok());
  EXPECT_LE(ttl(), 3600LL * 1000) << "renewed within the minute";
  // The page's last slot two minutes ago: this one is in another minute.
  auto redis_now = client_.Command({"TIME"});
  const int64_t now_ms = std::stoll(redis_now->elements[0].str) * 1000;
  ASSERT_TRUE(client_.Command({"HSET", hash, "tat", std::to_string(now_ms - 120000)}).ok());
  ASSERT_TRUE(limiter_->Acquire(client_, "busy", false, "part-3").ok());
  EXPECT_GT(ttl(), 23LL * 3600 * 1000);
}

TEST_F(SenderHandlerTest, PausingEveryPageReachesEverySenderWithinTheRefresh) {
  PageLimiter other(*keys_, 1000, 100);  // another sender instance
  auto gate = [&](const PageLimiter& limiter) {
    auto acquired = limiter.Acquire(client_, "p1", false, "part");
    EXPECT_TRUE(acquired.ok());
    return acquired ? acquired->kind : PageGate::Kind::kWait;
  };
  ASSERT_EQ(gate(other), PageGate::Kind::kGo);  // it has read katy:rate:* now
  ASSERT_TRUE(limiter_->Pause(client_, PageLimiter::kAllPages, "operator").ok());
  EXPECT_EQ(gate(*limiter_), PageGate::Kind::kPaused);
  EXPECT_TRUE(testing::WaitFor([&] { return gate(other) == PageGate::Kind::kPaused; }, std::chrono::seconds(5)));
  ASSERT_TRUE(limiter_->Resume(client_, PageLimiter::kAllPages).ok());
  EXPECT_EQ(gate(*limiter_), PageGate::Kind::kGo);
  EXPECT_TRUE(testing::WaitFor([&] { return gate(other) == PageGate::Kind::kGo; }, std::chrono::seconds(5)));
}

}  // namespace
}  // namespace katy::sender

namespace katy::sender {
namespace {

// A batch of messages to different people whose calls answer at different times (20-900 ms):
// checked together, each then finishes in the continuation after its own answer, not with the
// batch's slowest, and every one is delivered once, marked and acknowledged.
TEST_F(SenderHandlerTest, ABatchsMessagesEachFinishOnTheirOwnAnswerAndAreRecorded) {
  emulator::FaultConfig faults;
  faults.seed = 7;
  faults.latency_min_ms = 20;
  faults.latency_max_ms = 900;
  emulator_->faults().Set(faults);
  constexpr int kPeople = 8;
  std::deque<redis::StreamEntry> entries;
  std::vector<redis::BatchEntry> batch;
  for (int n = 0; n < kPeople; ++n) {
    batch.push_back(QueueTo("p" + std::to_string(n), std::to_string(n) + "-0#0", entries));
  }
  std::vector<int> finished_by_each;  // how many messages each continuation finished
  auto results = redis::RunToEnd(client_, [&](const redis::Resume& resume) {
    redis::Resume counting([&, resume](const redis::Continuation& finish) {
      resume([&, finish](redis::Client& client, const redis::Resume& next) {
        auto finished = finish(client, next);
        finished_by_each.push_back(static_cast<int>(std::count_if(finished.begin(), finished.end(), [](const auto& r) {
          return r.kind != redis::HandleResult::Kind::kLater;
        })));
        return finished;
      });
    });
    return handler_->HandleBatch(client_, batch, counting);
  });
  ASSERT_EQ(results.size(), static_cast<size_t>(kPeople));
  for (const auto& result : results) EXPECT_EQ(result.kind, redis::HandleResult::Kind::kDone) << result.reason;
  EXPECT_GE(finished_by_each.size(), 3U) << "the messages waited for each other's answers";
  EXPECT_EQ(std::accumulate(finished_by_each.begin(), finished_by_each.end(), 0), kPeople);
  for (int n = 0; n < kPeople; ++n) {
    const std::string person = "p" + std::to_string(n);
    EXPECT_EQ(emulator_->store().For(person).size(), 1U) << person;
    katy::v1::OutboundMessage message;
    message.set_id(std::to_string(n) + "-0#0");
    message.set_page_id("p1");
    message.set_created_at_ms(now_);
    EXPECT_EQ(client_.Command(DeliveredMark(*keys_, ShardOf("p1", person, 4), message, 0).Check())->integer, 1)
        << person;
    EXPECT_FALSE(
        client_.Command({"EXISTS", keys_->Sent(ShardOf("p1", person, 4), message.id()) + ":inflight"})->integer)
        << person;
  }
  for (int shard = 0; shard < 4; ++shard) {
    if (client_.Command({"EXISTS", keys_->OutStream(shard)})->integer == 1) {
      EXPECT_EQ(Pending(keys_->OutStream(shard)), 0);
    }
  }
}

}  // namespace
}  // namespace katy::sender

namespace katy::sender {
namespace {

// A page's messages in a steady run take their slots from Redis a run at a time: a script call
// gives the message that asked its slot and, for the page's next messages here, as many more
// as the page was asked for in the last window (due within SlotPool::kWindow). Redis's state
// (the page's tat) moves once a run, not once a message.
TEST_F(SenderHandlerTest, ABusyPagesSlotsComeFromRedisARunAtATime) {
  const std::string rate_key = keys_->Rate("busy");
  constexpr int kAsks = 150;
  int script_calls = 0;
  std::string tat;
  for (int i = 0; i < kAsks; ++i) {
    auto gate = limiter_->Acquire(client_, "busy", false, "part" + std::to_string(i));
    ASSERT_TRUE(gate.ok());
    EXPECT_NE(gate->kind, PageGate::Kind::kPaused);
    const std::string now_tat = client_.Command({"HGET", rate_key, "tat"})->str;
    if (now_tat != tat) ++script_calls;
    tat = now_tat;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));  // a steady run over several windows
  }
  EXPECT_LE(script_calls, kAsks / 2) << "each message asked Redis for its own slot";
  // Meta's throttle drops what the pool holds: the next ask goes to Redis (and waits).
  ASSERT_TRUE(limiter_->Throttle(client_, "busy", std::chrono::milliseconds(500)).ok());
  auto after = limiter_->Acquire(client_, "busy", false, "after-throttle");
  ASSERT_TRUE(after.ok());
  EXPECT_EQ(after->kind, PageGate::Kind::kWait);
  EXPECT_GT(after->wait, std::chrono::milliseconds(400));
}

}  // namespace
}  // namespace katy::sender

namespace katy::sender {
namespace {

// A delivered mark's bucket gets its EXPIREAT with the first mark this sender writes to it,
// then at most once a second (BucketExpiries), not with every mark: with the bucket's expiry
// removed behind the sender's back, the next mark within the second leaves it so, and one
// after the second gives it back.
TEST_F(SenderHandlerTest, ABucketsExpiryGoesWithItsFirstMarkThenOnceASecond) {
  ASSERT_EQ(Handle(Queue("21-0#0", R"({"text":"one"})", now_ - 1000)).kind, redis::HandleResult::Kind::kDone);
  const std::string bucket = keys_->SentBucket(ShardOf("p1", "u1", 4), now_ / kSentBucketMs);
  EXPECT_GT(client_.Command({"TTL", bucket})->integer, 0);
  ASSERT_EQ(client_.Command({"PERSIST", bucket})->integer, 1);
  ASSERT_EQ(Handle(Queue("22-0#0", R"({"text":"two"})", now_ - 1000)).kind, redis::HandleResult::Kind::kDone);
  EXPECT_EQ(client_.Command({"TTL", bucket})->integer, -1) << "an EXPIREAT went with every mark";
  std::this_thread::sleep_for(BucketExpiries::kRenewEvery);
  ASSERT_EQ(Handle(Queue("23-0#0", R"({"text":"three"})", now_ - 1000)).kind, redis::HandleResult::Kind::kDone);
  EXPECT_GT(client_.Command({"TTL", bucket})->integer, 0) << "the expiry was not set again a second later";
}

}  // namespace
}  // namespace katy::sender

namespace katy::sender {
namespace {

// A page with no token of its own and no default one cannot send: its message is dead-lettered
// as no_page_token once the checks have passed, and Meta is not called.
TEST_F(SenderHandlerTest, APageWithoutATokenIsDeadLetteredWithoutCallingMeta) {
  const PageTokens none = PageTokens::FromMap("", {});
  SenderOptions options;
  options.graph_url = meta_->graph_url();
  SenderHandler without_tokens(*keys_, options, none, *limiter_, metrics_, [this] { return now_; });
  auto result = without_tokens(client_, Queue("31-0#0", R"({"text":"hi"})", now_ - 1000), fence_);
  EXPECT_EQ(result.kind, redis::HandleResult::Kind::kPoison);
  EXPECT_EQ(result.reason, "no_page_token");
  EXPECT_TRUE(emulator_->store().For("u1").empty());
}

}  // namespace
}  // namespace katy::sender
