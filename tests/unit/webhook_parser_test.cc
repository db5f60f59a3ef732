#include "services/ingress/webhook_parser.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <set>
#include <sstream>

#include "common/hmac.h"
#include "tests/support/test_support.h"

namespace katy::ingress {
namespace {

using katy::v1::InboundEvent;

std::vector<InboundEvent> Parse(const std::string& fixture) {
  auto events = ParseWebhook(testing::ReadFixture(fixture), 1234);
  EXPECT_TRUE(events.ok()) << fixture << ": " << (events.ok() ? "" : events.error().message);
  return events.ok() ? *events : std::vector<InboundEvent>{};
}

TEST(WebhookParserTest, TextMessage) {
  auto events = Parse("text_message.json");
  ASSERT_EQ(events.size(), 1u);
  const auto& e = events[0];
  EXPECT_EQ(e.kind(), katy::v1::EVENT_KIND_MESSAGE);
  EXPECT_EQ(e.page_id(), "104560000000001");
  EXPECT_EQ(e.user_id(), "7100000000000001");
  EXPECT_EQ(e.mid(), "m_text_0001");
  EXPECT_EQ(e.text(), "hello");
  EXPECT_EQ(e.timestamp_ms(), 1764230400000);
  EXPECT_EQ(e.entry_time_ms(), 1764230400000);
  EXPECT_EQ(e.received_at_ms(), 1234);
  EXPECT_FALSE(e.standby());
  EXPECT_EQ(e.dedupe_key(), "msg:m_text_0001");
  EXPECT_NE(e.raw_json().find("\"mid\":\"m_text_0001\""), std::string::npos);
  // The item as Meta sent it, minified, its keys in Meta's order.
  EXPECT_EQ(e.raw_json().rfind("{\"sender\":{\"id\":\"7100000000000001\"},\"recipient\":", 0), 0u) << e.raw_json();
}

TEST(WebhookParserTest, QuickReplyPayload) {
  auto events = Parse("quick_reply.json");
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].quick_reply_payload(), "WEATHER");
  EXPECT_EQ(events[0].text(), "Weather");
}

// Instagram Direct comes through the same webhook shape, keyed by the professional account;
// Meta unsubscribes a webhook that keeps failing, so it is never refused.
TEST(WebhookParserTest, InstagramEventsAreAcceptedAndMarked) {
  auto events = Parse("instagram.json");
  ASSERT_EQ(events.size(), 3u);
  for (const auto& event : events) {
    EXPECT_EQ(event.platform(), "instagram");
    EXPECT_EQ(event.page_id(), "17841400000000001");
    EXPECT_EQ(event.user_id(), "6100000000000001");
  }
  EXPECT_EQ(events[0].kind(), katy::v1::EVENT_KIND_MESSAGE);
  EXPECT_EQ(events[0].text(), "hi from instagram");
  EXPECT_EQ(events[1].kind(), katy::v1::EVENT_KIND_READ);
  EXPECT_NE(events[1].dedupe_key(), events[2].dedupe_key()) << "reads by mid are distinct events";
  EXPECT_TRUE(Parse("text_message.json")[0].platform().empty());
}

// Every Instagram messaging kind Meta documents, and one it may add: each is one event, none
// is refused, and the Instagram-only fields reach the rules and skills.
TEST(WebhookParserTest, InstagramKindsAreEachKept) {
  auto events = Parse("instagram_kinds.json");
  ASSERT_EQ(events.size(), 11u);
  for (const auto& event : events) {
    EXPECT_EQ(event.platform(), "instagram");
    EXPECT_EQ(event.user_id(), "6100000000000001") << event.raw_json();
  }
  using katy::v1::EventKind;
  const std::vector<EventKind> kinds = {
      katy::v1::EVENT_KIND_MESSAGE,        katy::v1::EVENT_KIND_MESSAGE,  katy::v1::EVENT_KIND_MESSAGE,
      katy::v1::EVENT_KIND_MESSAGE,        katy::v1::EVENT_KIND_MESSAGE,  katy::v1::EVENT_KIND_POSTBACK,
      katy::v1::EVENT_KIND_MESSAGE,        katy::v1::EVENT_KIND_REACTION, katy::v1::EVENT_KIND_ECHO,
      katy::v1::EVENT_KIND_MESSAGE_DELETE, katy::v1::EVENT_KIND_UNKNOWN};
  for (size_t i = 0; i < kinds.size(); ++i) EXPECT_EQ(events[i].kind(), kinds[i]) << i;
  EXPECT_EQ(events[0].attachments(0).type(), "image");
  EXPECT_EQ(events[1].text(), "love this story");
  EXPECT_EQ(events[1].reply_to_story_id(), "17900000000000002");
  EXPECT_EQ(events[1].reply_to_story_url().rfind("https://lookaside.fbsbx.com/", 0), 0u);
  EXPECT_EQ(events[2].attachments(0).type(), "story_mention");
  ASSERT_EQ(events[3].attachments_size(), 2);
  EXPECT_EQ(events[3].attachments(1).type(), "ig_post");
  EXPECT_EQ(events[3].attachments(1).title(), "Caf\u00e9 opening \u2615");
  EXPECT_TRUE(events[4].unsupported());
  EXPECT_FALSE(events[0].unsupported());
  EXPECT_EQ(events[5].postback_payload(), "HOURS");
  EXPECT_EQ(events[6].quick_reply_payload(), "WEATHER");
  EXPECT_EQ(events[7].action(), "react");
  // The deletion names the deleted message's mid: under the message's own key it would be
  // dropped as a redelivery of that message.
  EXPECT_EQ(events[9].mid(), events[0].mid());
  EXPECT_NE(events[9].dedupe_key(), events[0].dedupe_key());
  EXPECT_EQ(events[10].kind_key(), "messaging_feedback_v2");
}

// Handover events name the thread's new owner, the one before and the metadata passed: the
// responder keeps track of who has the thread from them.
TEST(WebhookParserTest, HandoversNameTheOwners) {
  auto events = Parse("handover.json");
  ASSERT_EQ(events.size(), 3u);
  for (const auto& event : events) EXPECT_EQ(event.kind(), katy::v1::EVENT_KIND_HANDOVER);
  EXPECT_EQ(events[0].kind_key(), "pass_thread_control");
  EXPECT_EQ(events[0].app_id(), "263902037430900");
  EXPECT_EQ(events[0].previous_app_id(), "1517776481860111");
  EXPECT_EQ(events[0].metadata(), "handover: the user asked for a person");
  EXPECT_EQ(events[1].kind_key(), "request_thread_control");
  EXPECT_EQ(events[1].app_id(), "1517776481860111");
  EXPECT_EQ(events[2].kind_key(), "take_thread_control");
  EXPECT_EQ(events[2].app_id(), "1517776481860111");
  EXPECT_EQ(events[2].user_id(), "7100000000000001");
  EXPECT_NE(events[0].dedupe_key(), events[2].dedupe_key());
}

TEST(WebhookParserTest, ReferralAndOptinKeepTheirRef) {
  auto referral = Parse("referral.json");
  ASSERT_EQ(referral.size(), 1u);
  EXPECT_EQ(referral[0].kind(), katy::v1::EVENT_KIND_REFERRAL);
  EXPECT_EQ(referral[0].referral().ref(), "PROMO_SUMMER");
  EXPECT_EQ(referral[0].referral().source(), "SHORTLINK");
  auto optin = Parse("optin.json");
  ASSERT_EQ(optin.size(), 1u);
  EXPECT_EQ(optin[0].kind(), katy::v1::EVENT_KIND_OPTIN);
  EXPECT_EQ(optin[0].referral().ref(), "NEWSLETTER");
  EXPECT_EQ(optin[0].user_id(), "7100000000000001");
}

TEST(WebhookParserTest, PostbackWithReferral) {
  auto events = Parse("postback_get_started.json");
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].kind(), katy::v1::EVENT_KIND_POSTBACK);
  EXPECT_EQ(events[0].postback_payload(), "GET_STARTED");
  EXPECT_EQ(events[0].postback_title(), "Get Started");
  EXPECT_EQ(events[0].referral().ref(), "spring_ad");
  EXPECT_EQ(events[0].referral().source(), "SHORTLINK");
  EXPECT_EQ(events[0].referral().type(), "OPEN_THREAD");
  EXPECT_EQ(events[0].user_id(), "7100000000000002");
}

TEST(WebhookParserTest, BatchedYieldsEveryItemOfEveryEntry) {
  auto events = Parse("batched.json");
  ASSERT_EQ(events.size(), 5u);
  EXPECT_EQ(events[0].kind(), katy::v1::EVENT_KIND_MESSAGE);
  EXPECT_EQ(events[1].kind(), katy::v1::EVENT_KIND_DELIVERY);
  EXPECT_EQ(events[2].kind(), katy::v1::EVENT_KIND_MESSAGE);
  EXPECT_EQ(events[3].kind(), katy::v1::EVENT_KIND_READ);
  EXPECT_EQ(events[4].kind(), katy::v1::EVENT_KIND_POSTBACK);
  EXPECT_EQ(events[0].page_id(), "104560000000001");
  EXPECT_EQ(events[3].page_id(), "104560000000002");
  EXPECT_EQ(events[4].page_id(), "104560000000002");
  EXPECT_EQ(events[2].user_id(), "7100000000000002");
  EXPECT_EQ(events[4].postback_payload(), "MENU");
  EXPECT_EQ(events[1].watermark(), 1764230400005);
}

TEST(WebhookParserTest, EchoIsKeyedByTheUserNotThePage) {
  auto events = Parse("echo.json");
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].kind(), katy::v1::EVENT_KIND_ECHO);
  EXPECT_EQ(events[0].user_id(), "7100000000000001");  // the recipient: roles flip in echoes
  EXPECT_EQ(events[0].app_id(), "1517776481860111");
  EXPECT_EQ(events[0].metadata(), "katy:reply:m_text_0001#0");
  EXPECT_EQ(events[0].dedupe_key(), "echo:m_echo_0001");
}

TEST(WebhookParserTest, DeliveryWithoutMidsAndRead) {
  auto events = Parse("delivery_read.json");
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[0].kind(), katy::v1::EVENT_KIND_DELIVERY);
  EXPECT_EQ(events[0].dedupe_key(), "dlv:7100000000000001:1764230400029");
  EXPECT_EQ(events[1].kind(), katy::v1::EVENT_KIND_READ);
  EXPECT_EQ(events[1].dedupe_key(), "read:7100000000000001:1764230400030");
}

TEST(WebhookParserTest, Reaction) {
  auto events = Parse("reaction.json");
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].kind(), katy::v1::EVENT_KIND_REACTION);
  EXPECT_EQ(events[0].reaction(), "love");
  EXPECT_EQ(events[0].emoji(), "\u2764\ufe0f");
  EXPECT_EQ(events[0].action(), "react");
  EXPECT_EQ(events[0].dedupe_key(), "rx:m_out_0001:react:\u2764\ufe0f");
}

TEST(WebhookParserTest, StandbyIsMarked) {
  auto events = Parse("standby.json");
  ASSERT_EQ(events.size(), 1u);
  EXPECT_TRUE(events[0].standby());
  EXPECT_EQ(events[0].kind(), katy::v1::EVENT_KIND_MESSAGE);
  EXPECT_EQ(events[0].text(), "talking to a human");
}

TEST(WebhookParserTest, PolicyEnforcementWithoutSender) {
  auto events = Parse("policy_enforcement.json");
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].kind(), katy::v1::EVENT_KIND_POLICY_ENFORCEMENT);
  EXPECT_EQ(events[0].user_id(), "");
  EXPECT_EQ(events[0].action(), "block");
  // No id: the item's SHA-256 names it (a 64-bit hash could be made to collide).
  EXPECT_EQ(events[0].dedupe_key(), "sha:" + Sha256Hex(events[0].raw_json()));
}

TEST(WebhookParserTest, UnicodeEscapesDecode) {
  auto events = Parse("unicode_escaped.json");
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].text(),
            "\u00c7a va? \u2600\ufe0f m\u00e9t\u00e9o \u00e0 Z\u00fcrich: https://example.com/a?b=c <3 100% "
            "@katy \u65e5\u672c\u8a9e");
}

TEST(WebhookParserTest, Attachments) {
  auto events = Parse("attachments.json");
  ASSERT_EQ(events.size(), 1u);
  ASSERT_EQ(events[0].attachments_size(), 2);
  EXPECT_EQ(events[0].attachments(0).type(), "image");
  EXPECT_EQ(events[0].attachments(0).url(), "https://scontent.example.net/v/t1/abc.jpg?x=1");
  EXPECT_EQ(events[0].attachments(1).type(), "fallback");
  EXPECT_EQ(events[0].attachments(1).url(), "https://example.com/article");
  EXPECT_EQ(events[0].attachments(1).title(), "A shared link");
}

TEST(WebhookParserTest, UserRefSender) {
  auto events = Parse("user_ref.json");
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].user_id(), "chat_plugin_user_42");
  EXPECT_TRUE(events[0].user_is_ref());
}

TEST(WebhookParserTest, StringTimestampsAreNumbers) {
  auto events = Parse("string_timestamps.json");
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].timestamp_ms(), 1764230400100);
  EXPECT_EQ(events[0].entry_time_ms(), 1764230400100);
  EXPECT_EQ(events[0].postback_payload(), "HELP");
}

TEST(WebhookParserTest, MessageEditIsNotADuplicateOfTheOriginal) {
  auto edit = Parse("message_edit.json");
  auto original = Parse("text_message.json");
  ASSERT_EQ(edit.size(), 1u);
  EXPECT_EQ(edit[0].kind(), katy::v1::EVENT_KIND_MESSAGE_EDIT);
  EXPECT_EQ(edit[0].text(), "hello again");
  EXPECT_EQ(edit[0].mid(), original[0].mid());
  EXPECT_NE(edit[0].dedupe_key(), original[0].dedupe_key());
}

TEST(WebhookParserTest, UnknownKindIsKeptRaw) {
  auto events = Parse("unknown_event_kind.json");
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].kind(), katy::v1::EVENT_KIND_UNKNOWN);
  EXPECT_EQ(events[0].kind_key(), "messaging_feedback");
  EXPECT_NE(events[0].raw_json().find("feedback_screens"), std::string::npos);
}

TEST(WebhookParserTest, PageFeedComment) {
  auto events = Parse("feed_comment.json");
  ASSERT_EQ(events.size(), 1u);
  const auto& e = events[0];
  EXPECT_EQ(e.kind(), katy::v1::EVENT_KIND_COMMENT);
  EXPECT_EQ(e.kind_key(), "feed");
  EXPECT_EQ(e.page_id(), "104560000000001");
  EXPECT_EQ(e.user_id(), "7100000000000001");
  EXPECT_EQ(e.user_name(), "Ana Example");
  EXPECT_EQ(e.comment_id(), "900000000000001_1200000000000001");
  EXPECT_EQ(e.mid(), e.comment_id());
  EXPECT_EQ(e.post_id(), "104560000000001_900000000000001");
  EXPECT_EQ(e.parent_id(), "104560000000001_900000000000001");
  EXPECT_EQ(e.verb(), "add");
  EXPECT_EQ(e.text(), "How much is it? price please");
  EXPECT_EQ(e.timestamp_ms(), 1764230400000);  // created_time, in seconds
  EXPECT_FALSE(e.by_page());
  EXPECT_EQ(e.platform(), "");
  EXPECT_EQ(e.dedupe_key(), "cmt:900000000000001_1200000000000001:add");
  EXPECT_EQ(e.raw_json().rfind(R"({"field":"feed","value":{"from":)", 0), 0u) << e.raw_json();
}

TEST(WebhookParserTest, VisitorPostIsACommentEventWithOnlyAPostId) {
  auto events = Parse("feed_visitor_post.json");
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].kind(), katy::v1::EVENT_KIND_COMMENT);
  EXPECT_EQ(events[0].comment_id(), "");
  EXPECT_EQ(events[0].post_id(), "104560000000001_900000000000002");
  EXPECT_EQ(events[0].mid(), events[0].post_id());
  EXPECT_EQ(events[0].user_id(), "7100000000000002");
  EXPECT_EQ(events[0].dedupe_key(), "cmt:104560000000001_900000000000002:add");
}

TEST(WebhookParserTest, EditsRemovalsAndThePagesOwnCommentAreTheirOwnEvents) {
  const auto added = Parse("feed_comment.json");
  const auto edited = Parse("feed_comment_edit.json");
  const auto removed = Parse("feed_comment_remove.json");
  ASSERT_EQ(edited.size(), 1u);
  ASSERT_EQ(removed.size(), 1u);
  EXPECT_EQ(edited[0].verb(), "edited");
  EXPECT_EQ(removed[0].verb(), "remove");
  EXPECT_EQ(removed[0].text(), "");
  // Same comment, another verb (or another edit): not a redelivery of the first.
  std::set<std::string> keys = {added[0].dedupe_key(), edited[0].dedupe_key(), removed[0].dedupe_key()};
  EXPECT_EQ(keys.size(), 3u);
  auto second_edit = testing::ReadFixture("feed_comment_edit.json");
  second_edit.replace(second_edit.find("(edited)"), 8, "(again!)");
  auto again = ParseWebhook(second_edit, 0);
  ASSERT_TRUE(again.ok());
  EXPECT_NE((*again)[0].dedupe_key(), edited[0].dedupe_key());

  const auto own = Parse("feed_own_comment.json");
  ASSERT_EQ(own.size(), 1u);
  EXPECT_EQ(own[0].kind(), katy::v1::EVENT_KIND_COMMENT);
  EXPECT_TRUE(own[0].by_page());
}

TEST(WebhookParserTest, OtherFeedChangesAndUnknownFieldsAreKeptRaw) {
  auto events = Parse("feed_other_changes.json");
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[0].kind(), katy::v1::EVENT_KIND_FEED);
  EXPECT_EQ(events[0].reaction(), "like");
  EXPECT_EQ(events[1].kind(), katy::v1::EVENT_KIND_UNKNOWN);
  EXPECT_EQ(events[1].kind_key(), "ratings");
  EXPECT_NE(events[1].raw_json().find("review_text"), std::string::npos);
  EXPECT_NE(events[0].dedupe_key(), events[1].dedupe_key());
}

TEST(WebhookParserTest, AnEntryWithMessagingAndChangesYieldsBoth) {
  auto events = Parse("mixed_messaging_and_changes.json");
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[0].kind(), katy::v1::EVENT_KIND_MESSAGE);
  EXPECT_EQ(events[0].user_id(), "7100000000000001");
  EXPECT_EQ(events[1].kind(), katy::v1::EVENT_KIND_COMMENT);
  EXPECT_EQ(events[1].user_id(), "7100000000000002");
  EXPECT_EQ(events[1].text(), "price?");
}

TEST(WebhookParserTest, InstagramCommentsAndLiveComments) {
  for (const char* fixture : {"instagram_comment.json", "instagram_live_comment.json"}) {
    auto events = Parse(fixture);
    ASSERT_EQ(events.size(), 1u) << fixture;
    const auto& e = events[0];
    EXPECT_EQ(e.kind(), katy::v1::EVENT_KIND_COMMENT) << fixture;
    EXPECT_EQ(e.platform(), "instagram");
    EXPECT_EQ(e.page_id(), "17841400000000001");
    EXPECT_EQ(e.user_id(), "6100000000000001");  // the Instagram-scoped id, as in Direct messages
    EXPECT_EQ(e.user_name(), "ana.example");
    EXPECT_EQ(e.verb(), "add");
    EXPECT_FALSE(e.comment_id().empty());
    EXPECT_EQ(e.dedupe_key(), "cmt:" + e.comment_id() + ":add");
    EXPECT_EQ(e.timestamp_ms(), 0);  // Instagram sends no creation time
  }
  auto comment = Parse("instagram_comment.json");
  EXPECT_EQ(comment[0].post_id(), "18000000000000001");
  EXPECT_EQ(comment[0].text(), "price? \u2764\ufe0f");
  EXPECT_EQ(Parse("instagram_live_comment.json")[0].kind_key(), "live_comments");
}

TEST(WebhookParserTest, EveryFixtureParsesAndIsCovered) {
  // A fixture added to the folder without a test above fails here.
  const std::set<std::string> covered = {"text_message.json",
                                         "quick_reply.json",
                                         "postback_get_started.json",
                                         "batched.json",
                                         "echo.json",
                                         "delivery_read.json",
                                         "reaction.json",
                                         "standby.json",
                                         "policy_enforcement.json",
                                         "unicode_escaped.json",
                                         "attachments.json",
                                         "user_ref.json",
                                         "string_timestamps.json",
                                         "message_edit.json",
                                         "unknown_event_kind.json",
                                         "referral.json",
                                         "optin.json",
                                         "instagram.json",
                                         "instagram_kinds.json",
                                         "handover.json",
                                         "feed_comment.json",
                                         "feed_visitor_post.json",
                                         "feed_comment_edit.json",
                                         "feed_comment_remove.json",
                                         "feed_own_comment.json",
                                         "feed_other_changes.json",
                                         "mixed_messaging_and_changes.json",
                                         "instagram_comment.json",
                                         "instagram_live_comment.json"};
  auto names = testing::FixtureNames();
  EXPECT_EQ(names.size(), covered.size());
  for (const auto& name : names) {
    EXPECT_TRUE(covered.count(name)) << name << " has no parser test";
    EXPECT_FALSE(Parse(name).empty()) << name;
  }
}

// The repository's fixtures are the source of truth: each is in Meta's wire form (as the
// README promises, since signatures are over exact bytes) and each is described there.
TEST(WebhookParserTest, EveryFixtureIsInMetasWireFormAndDescribed) {
  std::ifstream readme_file(testing::FixturesDir() + "/README.md");
  std::stringstream readme;
  readme << readme_file.rdbuf();
  const auto names = testing::FixtureNames();
  ASSERT_FALSE(names.empty());
  for (const auto& name : names) {
    const std::string body = testing::ReadFixture(name);
    ASSERT_FALSE(body.empty()) << name;
    EXPECT_NE(body.back(), '\n') << name << " ends with a newline";
    EXPECT_TRUE(std::all_of(body.begin(), body.end(), [](char c) { return static_cast<unsigned char>(c) < 0x80; }))
        << name << " has raw non-ASCII bytes (Meta escapes them as \\uXXXX)";
    EXPECT_NE(readme.str().find("| " + name + " |"), std::string::npos) << name << " is not in the README's table";
  }
}

TEST(WebhookParserTest, DuplicateDeliveryHasTheSameKeyDespiteNewTime) {
  std::string body = testing::ReadFixture("text_message.json");
  std::string redelivered = body;
  redelivered.replace(redelivered.find("\"time\":1764230400000"), 20, "\"time\":1764230499999");
  auto a = ParseWebhook(body, 1);
  auto b = ParseWebhook(redelivered, 2);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ((*a)[0].dedupe_key(), (*b)[0].dedupe_key());
}

TEST(WebhookParserTest, RejectsBadBodies) {
  EXPECT_EQ(ParseWebhook("{not json", 0).error().reason, "invalid_json");
  EXPECT_EQ(ParseWebhook("", 0).error().reason, "invalid_json");
  EXPECT_EQ(
      ParseWebhook(
          "{\"object\":\"page\",\"entry\":[{\"id\":\"1\",\"messaging\":[{\"message\":{\"text\":\"\xff\xfe\"}}]}]}", 0)
          .error()
          .reason,
      "invalid_json");
  EXPECT_EQ(ParseWebhook("[1,2]", 0).error().reason, "not_an_object");
  EXPECT_EQ(ParseWebhook("\"page\"", 0).error().reason, "not_an_object");
  EXPECT_EQ(ParseWebhook("{\"object\":\"user\",\"entry\":[]}", 0).error().reason, "wrong_object");
  EXPECT_EQ(ParseWebhook("{\"entry\":[]}", 0).error().reason, "wrong_object");
  EXPECT_EQ(ParseWebhook("{\"object\":\"page\"}", 0).error().reason, "bad_shape");
  EXPECT_EQ(ParseWebhook("{\"object\":\"page\",\"entry\":{}}", 0).error().reason, "bad_shape");
  EXPECT_EQ(ParseWebhook("{\"object\":\"page\",\"entry\":[{\"time\":1}]}", 0).error().reason, "bad_shape");
  EXPECT_EQ(ParseWebhook("{\"object\":\"page\",\"entry\":[{\"id\":\"1\",\"messaging\":[1]}]}", 0).error().reason,
            "bad_shape");
  EXPECT_EQ(ParseWebhook("{\"object\":\"page\",\"entry\":[{\"id\":\"1\",\"messaging\":{}}]}", 0).error().reason,
            "bad_shape");
  EXPECT_EQ(ParseWebhook(R"({"object":"page","entry":[{"id":"1","changes":{}}]})", 0).error().reason, "bad_shape");
  EXPECT_EQ(ParseWebhook(R"({"object":"page","entry":[{"id":"1","changes":[1]}]})", 0).error().reason, "bad_shape");
  // An entry with neither messaging, standby nor changes yields no events.
  auto none = ParseWebhook(R"({"object":"page","entry":[{"id":"1","time":1}]})", 0);
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->empty());
}

TEST(WebhookParserTest, OutOfRangeTimestampsBecomeZero) {
  // Found by the fuzzer: a float timestamp beyond int64 was cast (undefined behaviour).
  for (const char* value :
       {"1.76423e+20", "-1e300", "18446744073709551615", "\"99999999999999999999\"", "\"12ab\"", "true", "null"}) {
    std::string body = std::string(R"({"object":"page","entry":[{"id":"1","time":)") + value +
                       R"(,"messaging":[{"sender":{"id":"u"},"timestamp":)" + value +
                       R"(,"message":{"mid":"m","text":"t"}}]}]})";
    auto events = ParseWebhook(body, 0);
    ASSERT_TRUE(events.ok()) << value;
    EXPECT_EQ((*events)[0].timestamp_ms(), 0) << value;
    EXPECT_EQ((*events)[0].entry_time_ms(), 0) << value;
  }
  auto fractional = ParseWebhook(R"({"object":"page","entry":[{"id":"1","time":1764230400000.7,"messaging":[]}]})", 0);
  ASSERT_TRUE(fractional.ok());
}

TEST(WebhookParserTest, RejectsDeepNestingCheaply) {
  std::string deep = R"({"object":"page","entry":)" + std::string(100000, '[') + std::string(100000, ']') + "}";
  auto result = ParseWebhook(deep, 0);
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.error().reason, "too_deep");
  EXPECT_EQ(JsonDepth("{\"a\":\"[[[[\"}"), 1);  // brackets inside strings do not count
  EXPECT_EQ(JsonDepth("{\"a\":\"\\\"[[\"}"), 1);
  EXPECT_EQ(JsonDepth("[[{}]]"), 3);
}

// The limit is kMaxJsonDepth (64) exactly: a webhook nesting 64 levels is parsed, 65 refused.
TEST(WebhookParserTest, TheDepthLimitIsSixtyFourLevels) {
  auto nesting = [](int levels) {  // the object, entry's array and the entry: 3 levels, then arrays
    const int arrays = levels - 3;
    return R"({"object":"page","entry":[{"id":"1","time":1764230400000,"messaging":[],"extra":)" +
           std::string(static_cast<size_t>(arrays), '[') + std::string(static_cast<size_t>(arrays), ']') + "}]}";
  };
  ASSERT_EQ(JsonDepth(nesting(kMaxJsonDepth)), 64);
  auto at_limit = ParseWebhook(nesting(kMaxJsonDepth), 0);
  EXPECT_TRUE(at_limit.ok()) << at_limit.error().message;
  auto beyond = ParseWebhook(nesting(kMaxJsonDepth + 1), 0);
  ASSERT_FALSE(beyond.ok());
  EXPECT_EQ(beyond.error().reason, "too_deep");
  EXPECT_EQ(kMaxJsonDepth, 64);
}

}  // namespace
}  // namespace katy::ingress
