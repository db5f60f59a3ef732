#include "tools/emulator/send_api.h"

#include <gtest/gtest.h>

#include <algorithm>

#include <nlohmann/json.hpp>

#include "services/ingress/webhook_parser.h"
#include "tools/emulator/webhook_builder.h"

namespace katy::emulator {
namespace {

int ErrorCode(const std::string& body) {
  auto verdict = ValidateSend(body);
  if (std::holds_alternative<AcceptedSend>(verdict)) return 0;
  return std::get<GraphError>(verdict).code;
}

TEST(SendApiTest, AcceptsValidMessagesAndSenderActions) {
  auto verdict = ValidateSend(R"({"recipient":{"id":"7"},"messaging_type":"RESPONSE","message":{"text":"hi"}})");
  ASSERT_TRUE(std::holds_alternative<AcceptedSend>(verdict));
  EXPECT_EQ(std::get<AcceptedSend>(verdict).recipient, "7");
  EXPECT_EQ(ErrorCode(R"({"recipient":{"id":"7"},"sender_action":"typing_on"})"), 0);
  EXPECT_EQ(ErrorCode(R"({"recipient":{"user_ref":"r"},"messaging_type":"UPDATE","message":{"text":"x"}})"), 0);
  EXPECT_EQ(
      ErrorCode(
          R"({"recipient":{"id":"7"},"messaging_type":"MESSAGE_TAG","tag":"HUMAN_AGENT","message":{"text":"x"}})"),
      0);
}

TEST(SendApiTest, RejectsLikeMeta) {
  EXPECT_EQ(ErrorCode("nope"), 100);
  EXPECT_EQ(ErrorCode(R"({"messaging_type":"RESPONSE","message":{"text":"x"}})"), 100);
  EXPECT_EQ(ErrorCode(R"({"recipient":{"id":"7"},"message":{"text":"x"}})"), 100);
  EXPECT_EQ(ErrorCode(R"({"recipient":{"id":"7"},"messaging_type":"PROMO","message":{"text":"x"}})"), 100);
  EXPECT_EQ(ErrorCode(R"({"recipient":{"id":"7"},"messaging_type":"MESSAGE_TAG","message":{"text":"x"}})"), 100);
  EXPECT_EQ(ErrorCode(R"({"recipient":{"id":"7"},"sender_action":"typing_on","message":{"text":"x"}})"), 100);
  EXPECT_EQ(ErrorCode(R"({"recipient":{"id":"7"},"sender_action":"dance"})"), 100);
  std::string long_text =
      nlohmann::json{
          {"recipient", {{"id", "7"}}}, {"messaging_type", "RESPONSE"}, {"message", {{"text", std::string(2000, 'a')}}}}
          .dump();
  EXPECT_EQ(ErrorCode(long_text), 100);
  nlohmann::json many{{"recipient", {{"id", "7"}}}, {"messaging_type", "RESPONSE"}, {"message", {{"text", "x"}}}};
  for (int i = 0; i < 14; ++i) {
    many["message"]["quick_replies"].push_back({{"content_type", "text"}, {"title", "t"}, {"payload", "p"}});
  }
  EXPECT_EQ(ErrorCode(many.dump()), 100);
  nlohmann::json long_title{
      {"recipient", {{"id", "7"}}},
      {"messaging_type", "RESPONSE"},
      {"message",
       {{"text", "x"},
        {"quick_replies", {{{"content_type", "text"}, {"title", std::string(21, 't')}, {"payload", "p"}}}}}}};
  EXPECT_EQ(ErrorCode(long_title.dump()), 100);
  GraphError error{400, 100, 2018001, "OAuthException", "m"};
  auto body = nlohmann::json::parse(error.Body());
  EXPECT_EQ(body["error"]["code"], 100);
  EXPECT_EQ(body["error"]["error_subcode"], 2018001);
}

TEST(WebhookBuilderTest, BuildsMetaWireFormThatIngressParses) {
  UserEvent event{"1045", "7100", "m_1", 1700000000000, "Ça va? https://x.y", "", "", "", ""};
  std::string body = BuildWebhookBody(event);
  EXPECT_NE(body.find("\\u00c7a va? https:\\/\\/x.y"), std::string::npos) << body;
  auto events = ingress::ParseWebhook(body, 0);
  ASSERT_TRUE(events.ok());
  ASSERT_EQ(events->size(), 1u);
  EXPECT_EQ((*events)[0].text(), "Ça va? https://x.y");
  EXPECT_EQ((*events)[0].user_id(), "7100");
  EXPECT_EQ((*events)[0].page_id(), "1045");
  EXPECT_EQ(SignBody("s", body).rfind("sha256=", 0), 0u);

  UserEvent postback{"1045", "7100", "m_2", 1, "", "", "GET_STARTED", "Get Started", "PROMO"};
  auto parsed = ingress::ParseWebhook(BuildWebhookBody(postback), 0);
  ASSERT_TRUE(parsed.ok());
  EXPECT_EQ((*parsed)[0].postback_payload(), "GET_STARTED");
  EXPECT_EQ((*parsed)[0].referral().ref(), "PROMO");  // a new thread opened through an m.me link

  UserEvent referral{"1045", "7100", "m_3", 2, "", "", "", "", "PROMO_SUMMER"};
  parsed = ingress::ParseWebhook(BuildWebhookBody(referral), 0);
  ASSERT_TRUE(parsed.ok());
  EXPECT_EQ((*parsed)[0].kind(), katy::v1::EVENT_KIND_REFERRAL);
  EXPECT_EQ((*parsed)[0].referral().source(), "SHORTLINK");
}

}  // namespace
}  // namespace katy::emulator

#include "tools/emulator/load_runner.h"
#include "tools/emulator/webhook_delivery.h"

namespace katy::emulator {
namespace {

TEST(LoadRunnerTest, PercentilesAndReportJson) {
  std::vector<double> samples;
  for (int i = 100; i >= 1; --i) samples.push_back(i);
  LoadReport report;
  FillPercentiles(samples, &report);
  EXPECT_EQ(report.p50_ms, 50);
  EXPECT_EQ(report.p90_ms, 90);
  EXPECT_EQ(report.p99_ms, 99);
  EXPECT_EQ(report.max_ms, 100);
  report.sent = 3;
  auto json = nlohmann::json::parse(LoadReportJson(report));
  EXPECT_EQ(json.size(), 11u);
  EXPECT_EQ(json["sent"], 3);
  EXPECT_EQ(json["out_of_order"], 0);
  EXPECT_TRUE(json["pages"].is_array());
  std::vector<double> one{7};
  LoadReport single;
  FillPercentiles(one, &single);
  EXPECT_EQ(single.p50_ms, 7);
  EXPECT_EQ(single.p99_ms, 7);
}

TEST(LoadRunnerTest, ReplyRateAndTheBusiestSecond) {
  // 301 replies 10 ms apart (100/s), then 5 more within 40 ms of the last.
  std::vector<double> at_ms;
  for (int i = 0; i <= 300; ++i) at_ms.push_back(1000 + 10.0 * i);
  for (int i = 1; i <= 5; ++i) at_ms.push_back(4000 + 8.0 * i);
  std::reverse(at_ms.begin(), at_ms.end());
  auto figures = ReplyRateFigures("7", at_ms);
  EXPECT_EQ(figures.page, "7");
  EXPECT_EQ(figures.received, 306);
  EXPECT_NEAR(figures.reply_rate, 305 / 3.04, 1e-9);
  // The window (3040, 4040] ms holds 96 of the even replies (3050..4000) and the 5 late ones.
  EXPECT_EQ(figures.max_in_1s, 101);
  std::vector<double> none;
  EXPECT_EQ(ReplyRateFigures("7", none).max_in_1s, 0);
  std::vector<double> one{5};
  EXPECT_EQ(ReplyRateFigures("7", one).reply_rate, 0);
}

TEST(LoadRunnerTest, ParsesArguments) {
  auto options = ParseLoadArgs({"--ingress", "http://x/webhook", "--users", "5", "--rate", "20.5", "--duration", "2",
                                "--app-secret", "s", "--json"});
  ASSERT_TRUE(options.ok()) << options.error().message;
  EXPECT_EQ(options->users, 5);
  EXPECT_EQ(options->rate, 20.5);
  EXPECT_TRUE(options->json);
  EXPECT_FALSE(ParseLoadArgs({"--ingress", "http://x", "--app-secret", "s", "--rate", "fast"}).ok());
  EXPECT_FALSE(ParseLoadArgs({"--ingress", "http://x", "--app-secret", "s", "--users", "0"}).ok());
  EXPECT_FALSE(ParseLoadArgs({"--ingress", "http://x", "--app-secret", "s", "--colour", "red"}).ok());
  EXPECT_FALSE(ParseLoadArgs({"--ingress", "http://x", "--app-secret", "s", "--users", "2", "--pages", "3"}).ok());
  EXPECT_FALSE(ParseLoadArgs({"--ingress", "http://x", "--app-secret", "s", "--page", "my-page"}).ok());
  auto two = ParseLoadArgs({"--ingress", "http://x", "--app-secret", "s", "--pages", "2"});
  ASSERT_TRUE(two.ok());
  EXPECT_EQ(two->pages, 2);
}

}  // namespace
}  // namespace katy::emulator

namespace katy::emulator {
namespace {

TEST(SendApiFidelityTest, FormBodiesTemplatesAndAttachments) {
  std::string form =
      "recipient=%7B%22id%22%3A%227%22%7D&messaging_type=RESPONSE&message=%7B%22text%22%3A%22hi+there%22%7D";
  auto json = nlohmann::json::parse(FormToJson(form));
  EXPECT_EQ(json["recipient"]["id"], "7");
  EXPECT_EQ(json["message"]["text"], "hi there");
  EXPECT_EQ(ErrorCode(FormToJson(form)), 0);

  auto with_attachment = [](nlohmann::json attachment) {
    return ErrorCode(nlohmann::json{
        {"recipient", {{"id", "7"}}}, {"messaging_type", "RESPONSE"}, {"message", {{"attachment", attachment}}}}
                         .dump());
  };
  nlohmann::json button{{"type", "postback"}, {"title", "Help"}, {"payload", "HELP"}};
  EXPECT_EQ(with_attachment({{"type", "template"},
                             {"payload", {{"template_type", "button"}, {"text", "Pick"}, {"buttons", {button}}}}}),
            0);
  EXPECT_EQ(with_attachment(
                {{"type", "template"},
                 {"payload",
                  {{"template_type", "button"}, {"text", "Pick"}, {"buttons", {button, button, button, button}}}}}),
            100);
  nlohmann::json elements = nlohmann::json::array();
  for (int i = 0; i < 11; ++i) elements.push_back({{"title", "card"}});
  EXPECT_EQ(
      with_attachment({{"type", "template"}, {"payload", {{"template_type", "generic"}, {"elements", elements}}}}),
      100);
  elements.erase(elements.begin());
  EXPECT_EQ(
      with_attachment({{"type", "template"}, {"payload", {{"template_type", "generic"}, {"elements", elements}}}}), 0);
  EXPECT_EQ(with_attachment({{"type", "image"}, {"payload", {{"url", "https://example.com/a.png"}}}}), 0);
  EXPECT_EQ(with_attachment({{"type", "image"}, {"payload", nlohmann::json::object()}}), 100);
  EXPECT_EQ(with_attachment({{"type", "hologram"}}), 100);
}

TEST(SendApiFidelityTest, UsageHeadersAndMessengerProfile) {
  auto usage = MakeUsageHeaders("1045", 150, 300, false);
  EXPECT_EQ(nlohmann::json::parse(usage.app_usage)["call_count"], 50);
  auto business = nlohmann::json::parse(usage.business_use_case_usage)["1045"][0];
  EXPECT_EQ(business["type"], "messenger");
  EXPECT_EQ(business["estimated_time_to_regain_access"], 0);
  auto throttled = MakeUsageHeaders("1045", 10, 300, true);
  EXPECT_EQ(nlohmann::json::parse(throttled.business_use_case_usage)["1045"][0]["call_count"], 100);
  EXPECT_LT(nlohmann::json::parse(throttled.app_usage)["call_count"], 100);
  EXPECT_EQ(nlohmann::json::parse(MakeUsageHeaders("p", 300, 300, false).app_usage)["call_count"], 99);

  EXPECT_FALSE(ValidateMessengerProfile(
      {{"get_started", {{"payload", "GET_STARTED"}}}, {"greeting", {{{"locale", "default"}, {"text", "Hi!"}}}}}));
  EXPECT_TRUE(ValidateMessengerProfile({{"get_started", {{"title", "x"}}}}));
  EXPECT_TRUE(ValidateMessengerProfile({{"whitelisted_domains", {"http://insecure.example"}}}));
  EXPECT_TRUE(ValidateMessengerProfile({{"colour", "red"}}));
  EXPECT_TRUE(ValidateMessengerProfile(nlohmann::json::object()));
}

TEST(WebhookDeliveryTest, BatchesGroupItemsByPageInMetaWireForm) {
  std::vector<BatchItem> items{{"p1", {{"message", {{"mid", "a"}, {"text", "Ça/va"}}}}},
                               {"p2", {{"message", {{"mid", "b"}}}}},
                               {"p1", {{"message", {{"mid", "c"}}}}},
                               {"p1", {{"message", {{"mid", "d"}}}}, true}};
  std::string body = BuildBatchBody(items, 42);
  EXPECT_NE(body.find("\\u00c7a\\/va"), std::string::npos) << body;
  auto parsed = ingress::ParseWebhook(body, 0);
  ASSERT_TRUE(parsed.ok());
  ASSERT_EQ(parsed->size(), 4u);
  EXPECT_EQ((*parsed)[0].page_id(), "p1");
  EXPECT_EQ((*parsed)[1].page_id(), "p1");  // grouped: p1's entry holds a and c
  EXPECT_EQ((*parsed)[1].mid(), "c");
  EXPECT_EQ((*parsed)[2].page_id(), "p2");
  EXPECT_EQ((*parsed)[3].mid(), "d");  // another app has d's thread: its own entry, in standby[]
  EXPECT_TRUE((*parsed)[3].standby());
  EXPECT_EQ(nlohmann::json::parse(body)["entry"].size(), 3u);
}

}  // namespace
}  // namespace katy::emulator
