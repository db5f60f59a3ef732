#include "tools/emulator/send_api.h"

#include <gtest/gtest.h>

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
  EXPECT_EQ(ErrorCode(R"({"recipient":{"id":"7"},"messaging_type":"MESSAGE_TAG","tag":"HUMAN_AGENT","message":{"text":"x"}})"), 0);
}

TEST(SendApiTest, RejectsLikeMeta) {
  EXPECT_EQ(ErrorCode("nope"), 100);
  EXPECT_EQ(ErrorCode(R"({"messaging_type":"RESPONSE","message":{"text":"x"}})"), 100);
  EXPECT_EQ(ErrorCode(R"({"recipient":{"id":"7"},"message":{"text":"x"}})"), 100);
  EXPECT_EQ(ErrorCode(R"({"recipient":{"id":"7"},"messaging_type":"PROMO","message":{"text":"x"}})"), 100);
  EXPECT_EQ(ErrorCode(R"({"recipient":{"id":"7"},"messaging_type":"MESSAGE_TAG","message":{"text":"x"}})"), 100);
  EXPECT_EQ(ErrorCode(R"({"recipient":{"id":"7"},"sender_action":"typing_on","message":{"text":"x"}})"), 100);
  EXPECT_EQ(ErrorCode(R"({"recipient":{"id":"7"},"sender_action":"dance"})"), 100);
  std::string long_text = nlohmann::json{{"recipient", {{"id", "7"}}}, {"messaging_type", "RESPONSE"},
                                         {"message", {{"text", std::string(2000, 'a')}}}}.dump();
  EXPECT_EQ(ErrorCode(long_text), 100);
  nlohmann::json many{{"recipient", {{"id", "7"}}}, {"messaging_type", "RESPONSE"}, {"message", {{"text", "x"}}}};
  for (int i = 0; i < 14; ++i) {
    many["message"]["quick_replies"].push_back({{"content_type", "text"}, {"title", "t"}, {"payload", "p"}});
  }
  EXPECT_EQ(ErrorCode(many.dump()), 100);
  nlohmann::json long_title{{"recipient", {{"id", "7"}}}, {"messaging_type", "RESPONSE"},
                            {"message", {{"text", "x"}, {"quick_replies", {{{"content_type", "text"},
                                                                            {"title", std::string(21, 't')},
                                                                            {"payload", "p"}}}}}}};
  EXPECT_EQ(ErrorCode(long_title.dump()), 100);
  GraphError error{400, 100, 2018001, "OAuthException", "m"};
  auto body = nlohmann::json::parse(error.Body());
  EXPECT_EQ(body["error"]["code"], 100);
  EXPECT_EQ(body["error"]["error_subcode"], 2018001);
}

TEST(WebhookBuilderTest, BuildsMetaWireFormThatIngressParses) {
  UserEvent event{"1045", "7100", "m_1", 1700000000000, "Ça va? https://x.y", "", "", ""};
  std::string body = BuildWebhookBody(event);
  EXPECT_NE(body.find("\\u00c7a va? https:\\/\\/x.y"), std::string::npos) << body;
  auto events = ingress::ParseWebhook(body, 0);
  ASSERT_TRUE(events.ok());
  ASSERT_EQ(events->size(), 1u);
  EXPECT_EQ((*events)[0].text(), "Ça va? https://x.y");
  EXPECT_EQ((*events)[0].user_id(), "7100");
  EXPECT_EQ((*events)[0].page_id(), "1045");
  EXPECT_EQ(SignBody("s", body).rfind("sha256=", 0), 0u);

  UserEvent postback{"1045", "7100", "m_2", 1, "", "", "GET_STARTED", "Get Started"};
  auto parsed = ingress::ParseWebhook(BuildWebhookBody(postback), 0);
  ASSERT_TRUE(parsed.ok());
  EXPECT_EQ((*parsed)[0].postback_payload(), "GET_STARTED");
}

}  // namespace
}  // namespace katy::emulator

#include "tools/emulator/load_runner.h"

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
  EXPECT_EQ(json.size(), 9u);
  EXPECT_EQ(json["sent"], 3);
  std::vector<double> one{7};
  LoadReport single;
  FillPercentiles(one, &single);
  EXPECT_EQ(single.p50_ms, 7);
  EXPECT_EQ(single.p99_ms, 7);
}

TEST(LoadRunnerTest, ParsesArguments) {
  auto options = ParseLoadArgs({"--ingress", "http://x/webhook", "--users", "5", "--rate", "20.5", "--duration",
                                "2", "--app-secret", "s", "--json"});
  ASSERT_TRUE(options.ok()) << options.error().message;
  EXPECT_EQ(options->users, 5);
  EXPECT_EQ(options->rate, 20.5);
  EXPECT_TRUE(options->json);
  EXPECT_FALSE(ParseLoadArgs({"--ingress", "http://x", "--app-secret", "s", "--rate", "fast"}).ok());
  EXPECT_FALSE(ParseLoadArgs({"--ingress", "http://x", "--app-secret", "s", "--users", "0"}).ok());
  EXPECT_FALSE(ParseLoadArgs({"--ingress", "http://x", "--app-secret", "s", "--colour", "red"}).ok());
}

}  // namespace
}  // namespace katy::emulator
