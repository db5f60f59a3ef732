// The outbound API's decisions and the tags table: what may be queued, and how.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "common/message_tags.h"
#include "services/sender/outbound_service.h"
#include "services/sender/send_request.h"
#include "services/sender/sender_handler.h"
#include "tools/katyctl/katyctl_format.h"

namespace katy {
namespace {

constexpr int64_t kDay = 24LL * 3600 * 1000;
constexpr int64_t kNow = 100 * kDay;

TEST(MessageTagsTest, WindowsAndTheTagTable) {
  EXPECT_FALSE(TagRefusal({"", false, false, kNow - kDay + 1}, kNow));
  EXPECT_NE(TagRefusal({"", false, false, kNow - kDay - 1}, kNow)->find("needs a tag"), std::string::npos);
  EXPECT_NE(TagRefusal({"", false, false, 0}, kNow)->find("never written"), std::string::npos);
  EXPECT_FALSE(TagRefusal({"HUMAN_AGENT", true, false, kNow - 7 * kDay}, kNow));
  EXPECT_NE(TagRefusal({"HUMAN_AGENT", true, false, kNow - 8 * kDay}, kNow)->find("within 7 days"), std::string::npos);
  EXPECT_NE(TagRefusal({"HUMAN_AGENT", false, false, kNow}, kNow)->find("a person wrote"), std::string::npos);
  EXPECT_NE(TagRefusal({"SHIPPING_UPDATE", false, false, kNow}, kNow)->find("retired"), std::string::npos);
  EXPECT_NE(TagRefusal({"NO_SUCH_TAG", false, false, kNow}, kNow)->find("unknown"), std::string::npos);
  EXPECT_FALSE(TagRefusal({"ACCOUNT_UPDATE", false, false, 0}, kNow));  // any time, for its purpose
  EXPECT_NE(TagRefusal({"CONFIRMED_EVENT_UPDATE", false, true, 0}, kNow)->find("Instagram"), std::string::npos);
}

// An ad-started conversation's standard window lasts 7 days from its first message; each later
// message still gives 24 h, and the later end wins.
TEST(MessageTagsTest, AnAdStartedConversationsWindowLastsSevenDays) {
  EXPECT_EQ(StandardWindowEnd({}), 0);
  EXPECT_EQ(StandardWindowEnd({kNow, 0}), kNow + kDay);
  EXPECT_EQ(StandardWindowEnd({kNow, kNow + 7 * kDay}), kNow + 7 * kDay);
  EXPECT_EQ(StandardWindowEnd({kNow + 7 * kDay, kNow + 7 * kDay}), kNow + 8 * kDay);
  const UserWindow ad_three_days_ago{kNow - 3 * kDay, kNow + 4 * kDay};
  EXPECT_FALSE(TagRefusal({"", false, false, ad_three_days_ago}, kNow));
  EXPECT_NE(TagRefusal({"", false, false, ad_three_days_ago}, kNow + 4 * kDay + 1)->find("7 days are over"),
            std::string::npos);
  EXPECT_TRUE(TagRefusal({"", false, false, {kNow - 3 * kDay, 0}}, kNow));
}

// A person who opted out gets nothing from the outbound API, tagged or not, until they opt in;
// from the sender, only answers to their own messages since the opt-out go.
TEST(OutboundCheckTest, APersonWhoOptedOutIsSentNothingButAnswers) {
  katy::v1::OutboundSendRequest request;
  request.set_page_id("1045");
  request.set_recipient_id("u1");
  request.set_text("Your order shipped");
  request.set_idempotency_key("order-42");
  UserWindow opted_out{kNow - 3600 * 1000, 0, kNow - 60 * 1000};
  auto refused = sender::CheckOutbound(request, opted_out, kNow);
  EXPECT_EQ(refused.refusal.rfind("opted_out:", 0), 0u) << refused.refusal;
  EXPECT_FALSE(refused.invalid_argument);
  request.set_tag("ACCOUNT_UPDATE");
  EXPECT_EQ(sender::CheckOutbound(request, opted_out, kNow).refusal.rfind("opted_out:", 0), 0u);
  opted_out.opted_out_ms = 0;
  EXPECT_TRUE(sender::CheckOutbound(request, opted_out, kNow).refusal.empty());

  const int64_t stop_at = kNow - 60 * 1000;
  katy::v1::OutboundMessage answer;
  answer.set_messaging_type("RESPONSE");
  answer.set_in_reply_to_mid("m.stop");
  answer.set_user_last_message_ms(stop_at);
  EXPECT_FALSE(sender::OptOutStops(answer, stop_at)) << "the opt-out's own confirmation";
  EXPECT_FALSE(sender::OptOutStops(answer, 0));
  answer.set_user_last_message_ms(stop_at - 1);
  EXPECT_TRUE(sender::OptOutStops(answer, stop_at)) << "an answer to a message from before the opt-out";
  katy::v1::OutboundMessage reminder;
  reminder.set_messaging_type("UPDATE");
  EXPECT_TRUE(sender::OptOutStops(reminder, stop_at));
  katy::v1::OutboundMessage api = answer;
  api.set_in_reply_to_mid("");
  api.set_user_last_message_ms(kNow);
  EXPECT_TRUE(sender::OptOutStops(api, stop_at)) << "the outbound API's message answers nothing";
}

TEST(OutboundCheckTest, QueuesWhatMayGoAndRefusesTheRest) {
  katy::v1::OutboundSendRequest request;
  request.set_page_id("1045");
  request.set_recipient_id("u1");
  request.set_text("Your order shipped");
  request.set_idempotency_key("order-42");
  auto ok = sender::CheckOutbound(request, {kNow - 3600 * 1000}, kNow);
  ASSERT_TRUE(ok.refusal.empty()) << ok.refusal;
  EXPECT_EQ(ok.message.id(), "api:1045:u1:order-42");
  EXPECT_EQ(ok.message.messaging_type(), "RESPONSE");
  EXPECT_EQ(nlohmann::json::parse(ok.message.message_json())["text"], "Your order shipped");
  EXPECT_EQ(sender::ConversationOfOutboundId(ok.message.id()), (std::pair<std::string, std::string>{"1045", "u1"}));
  EXPECT_EQ(sender::ConversationOfOutboundId("1045#0").first, "");

  auto late = sender::CheckOutbound(request, {kNow - 2 * kDay}, kNow);
  EXPECT_FALSE(late.refusal.empty());
  EXPECT_FALSE(late.invalid_argument);
  request.set_tag("HUMAN_AGENT");
  request.set_from_person(true);
  auto human = sender::CheckOutbound(request, {kNow - 2 * kDay}, kNow);
  ASSERT_TRUE(human.refusal.empty()) << human.refusal;
  EXPECT_EQ(human.message.messaging_type(), "MESSAGE_TAG");
  EXPECT_EQ(human.message.tag(), "HUMAN_AGENT");

  request.set_idempotency_key("");
  EXPECT_TRUE(sender::CheckOutbound(request, {kNow}, kNow).invalid_argument);
  request.set_idempotency_key("k");
  request.set_message_json(R"({"text":"both"})");
  EXPECT_TRUE(sender::CheckOutbound(request, {kNow}, kNow).invalid_argument);  // text and message_json
  request.clear_text();
  request.set_platform("instagram");
  request.set_message_json(R"({"attachment":{"type":"template","payload":{"template_type":"receipt"}}})");
  EXPECT_NE(sender::CheckOutbound(request, {kNow}, kNow).refusal.find("'receipt'"), std::string::npos);
}

// Ids go into Graph paths and Redis keys; text into at most ten of Meta's messages.
TEST(OutboundCheckTest, RefusesIdsThatAreNotIdsAndTextBeyondTenMessages) {
  katy::v1::OutboundSendRequest request;
  request.set_recipient_id("u1");
  request.set_text("hi");
  request.set_idempotency_key("k");
  for (const char* page : {"1045/../4242", "1045:9", "abc", "", "1045 "}) {
    request.set_page_id(page);
    auto check = sender::CheckOutbound(request, {kNow}, kNow);
    EXPECT_TRUE(check.invalid_argument) << page;
  }
  request.set_page_id("1045");
  for (const char* recipient : {"u:1", "a/b", "u 1"}) {
    request.set_recipient_id(recipient);
    EXPECT_TRUE(sender::CheckOutbound(request, {kNow}, kNow).invalid_argument) << recipient;
  }
  request.set_recipient_id("u1");
  request.set_text(std::string(10 * 1999, 'a'));
  EXPECT_TRUE(sender::CheckOutbound(request, {kNow}, kNow).refusal.empty());
  request.set_text(std::string(10 * 1999 + 1, 'a'));
  auto long_text = sender::CheckOutbound(request, {kNow}, kNow);
  EXPECT_TRUE(long_text.invalid_argument);
  EXPECT_NE(long_text.refusal.find("10 messages"), std::string::npos) << long_text.refusal;
}

TEST(OutboundCheckTest, IdempotencyKeysAreScopedToPageAndRecipient) {
  const std::string mine = sender::ScopedIdempotencyKey("1045", "u1", "order-1");
  EXPECT_EQ(mine, sender::ScopedIdempotencyKey("1045", "u1", "order-1"));
  EXPECT_NE(mine, sender::ScopedIdempotencyKey("1045", "u2", "order-1"));
  EXPECT_NE(mine, sender::ScopedIdempotencyKey("1046", "u1", "order-1"));
  // The separator keeps "1", "04" from meeting "10", "4".
  EXPECT_NE(sender::ScopedIdempotencyKey("1", "04", "k"), sender::ScopedIdempotencyKey("10", "4", "k"));
  EXPECT_EQ(mine.size(), 64u);
}

// A handover is a thread-control call on the page, with the same recipient.
TEST(OutboundCheckTest, ThreadControlCallsAreBuiltLikeMeta) {
  katy::v1::OutboundMessage pass;
  pass.set_page_id("1045");
  pass.set_recipient_id("u1");
  pass.set_thread_control("pass_thread_control");
  pass.set_target_app_id("263902037430900");
  pass.set_thread_metadata("asked for a person");
  auto request = sender::BuildSendRequest(pass, "http://g/v25.0", "tok", "");
  ASSERT_TRUE(request);
  EXPECT_EQ(request->url, "http://g/v25.0/1045/pass_thread_control?access_token=tok");
  EXPECT_EQ(nlohmann::json::parse(request->body),
            nlohmann::json::parse(
                R"({"recipient":{"id":"u1"},"target_app_id":"263902037430900","metadata":"asked for a person"})"));
  pass.set_thread_control("take_thread_control");
  EXPECT_FALSE(
      nlohmann::json::parse(sender::BuildSendRequest(pass, "http://g", "t", "")->body).contains("target_app_id"));
  pass.set_thread_control("delete_everything");
  EXPECT_FALSE(sender::BuildSendRequest(pass, "http://g", "t", ""));
}

TEST(ConversationFormatTest, ShowsOwnerWindowsAndEvents) {
  katy::v1::Conversation conversation;
  conversation.set_page_id("1045");
  conversation.set_user_id("u1");
  conversation.set_shard(3);
  conversation.set_owner("263902037430900");
  const auto now = std::chrono::system_clock::time_point(std::chrono::milliseconds(kNow));
  conversation.set_owner_since_ms(kNow - 90 * 60 * 1000);
  conversation.set_last_user_ms(kNow - 2 * 3600 * 1000);
  conversation.set_window_open(true);
  conversation.set_window_closes_ms(kNow + 22 * 3600 * 1000);
  conversation.set_human_agent_window_open(true);
  (*conversation.mutable_fields())["state"] = "asking_name";
  (*conversation.mutable_fields())["var:city"] = "Lyon";
  auto* event = conversation.add_events();
  event->set_stream_id("1-0");
  event->set_kind("message");
  event->set_text("hi");
  const std::string shown = ctl::RenderConversation(conversation, now);
  EXPECT_NE(shown.find("thread:      the Page Inbox (263902037430900), for 1h30m"), std::string::npos) << shown;
  EXPECT_NE(shown.find("bot window:  open, 22h0m left"), std::string::npos) << shown;
  EXPECT_NE(shown.find("HUMAN_AGENT: open, 6d22h"), std::string::npos) << shown;
  EXPECT_NE(shown.find("state:       asking_name"), std::string::npos) << shown;
  EXPECT_NE(shown.find("city:"), std::string::npos) << shown;
  EXPECT_NE(shown.find("1-0"), std::string::npos) << shown;
  EXPECT_EQ(shown.find("ad window"), std::string::npos) << shown;
  EXPECT_EQ(shown.find("reminder:"), std::string::npos) << shown;

  auto* reminder = conversation.add_reminders();
  reminder->set_name("NUDGE");
  reminder->set_due_ms(kNow + 45 * 1000);
  reminder->set_keep(true);
  EXPECT_NE(ctl::RenderConversation(conversation, now).find("reminder:    NUDGE in 45s (kept when the person writes)"),
            std::string::npos)
      << ctl::RenderConversation(conversation, now);

  conversation.set_ad_window_until_ms(kNow + 4 * kDay);
  conversation.set_window_closes_ms(kNow + 4 * kDay);
  const std::string ad_started = ctl::RenderConversation(conversation, now);
  EXPECT_NE(ad_started.find("bot window:  open, 4d0h left"), std::string::npos) << ad_started;
  EXPECT_NE(ad_started.find("ad window:   started by an ad: 7 days, 4d0h left"), std::string::npos) << ad_started;
}

}  // namespace
}  // namespace katy
