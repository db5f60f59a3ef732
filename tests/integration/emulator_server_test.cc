#include "tools/emulator/emulator_server.h"

#include <gtest/gtest.h>

#include <thread>

#include <nlohmann/json.hpp>

#include "common/http/http_client.h"
#include "common/metrics/metrics.h"
#include "common/redis/client_pool.h"
#include "services/ingress/event_store.h"
#include "services/ingress/webhook_server.h"
#include "services/ingress/webhook_service.h"
#include "services/sender/error_classifier.h"
#include "tests/support/test_support.h"

namespace katy::emulator {
namespace {

class EmulatorServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    EmulatorOptions options;
    options.address = {"127.0.0.1", 0};
    options.app_secret = "secret";
    options.ingress_url = "http://127.0.0.1:1/webhook";
    auto started = EmulatorServer::Start(options);
    ASSERT_TRUE(started.ok());
    server_ = std::move(*started);
    base_ = "http://127.0.0.1:" + std::to_string(server_->port()) + "/v25.0";
  }
  std::unique_ptr<EmulatorServer> server_;
  std::string base_;
  http::Client http_;
};

TEST_F(EmulatorServerTest, SendApiTakesFormBodiesAndAnswersWithUsageHeaders) {
  auto response =
      http_.Post(base_ + "/1045/messages?access_token=t",
                 "recipient=%7B%22id%22%3A%2242%22%7D&messaging_type=RESPONSE&message=%7B%22text%22%3A%22hi%22%7D",
                 {"Content-Type: application/x-www-form-urlencoded"});
  ASSERT_TRUE(response.ok());
  EXPECT_EQ(response->status, 200) << response->body;
  EXPECT_EQ(nlohmann::json::parse(response->body)["recipient_id"], "42");
  ASSERT_EQ(server_->store().For("42").size(), 1u);
  auto usage = nlohmann::json::parse(response->Header("x-app-usage"));
  EXPECT_TRUE(usage.contains("call_count"));
  EXPECT_FALSE(response->Header("x-business-use-case-usage").empty());
  // The sender reads them like Meta's: a page at its limit is throttled.
  ASSERT_EQ(http_.Post(base_.substr(0, base_.size() - 6) + "/_emulator/faults", R"({"rate_limit":{"1045":2}})")->status,
            200);
  sender::SendResponse last;
  for (int i = 0; i < 3; ++i) {
    auto answer = http_.Post(base_ + "/1045/messages?access_token=t",
                             R"({"recipient":{"id":"42"},"messaging_type":"RESPONSE","message":{"text":"x"}})");
    last = {answer->status, "", answer->body, answer->headers};
  }
  EXPECT_EQ(sender::Classify(last).action, sender::SendAction::kThrottle);
  auto business = nlohmann::json::parse(last.headers["x-business-use-case-usage"])["1045"][0];
  EXPECT_EQ(business["call_count"], 100);
}

TEST_F(EmulatorServerTest, MessengerProfileRoundTrip) {
  const std::string url = base_ + "/me/messenger_profile?access_token=t";
  auto set =
      http_.Post(url, R"({"get_started":{"payload":"GET_STARTED"},"greeting":[{"locale":"default","text":"Meow"}]})",
                 {"Content-Type: application/json"});
  ASSERT_EQ(set->status, 200) << set->body;
  EXPECT_EQ(nlohmann::json::parse(set->body)["result"], "success");
  auto got = nlohmann::json::parse(http_.Get(base_ + "/me/messenger_profile?fields=get_started&access_token=t")->body);
  EXPECT_EQ(got["data"][0]["get_started"]["payload"], "GET_STARTED");
  EXPECT_FALSE(got["data"][0].contains("greeting"));
  EXPECT_EQ(http_.Request("DELETE", url, R"({"fields":["get_started"]})", {})->status, 200);
  auto after = nlohmann::json::parse(http_.Get(base_ + "/me/messenger_profile?access_token=t")->body);
  EXPECT_FALSE(after["data"][0].contains("get_started"));
  EXPECT_EQ(after["data"][0]["greeting"][0]["text"], "Meow");
  EXPECT_EQ(http_.Post(url, R"({"colour":"red"})")->status, 400);
  EXPECT_EQ(http_.Get(base_ + "/me/messenger_profile")->status, 400);  // no token
}

TEST(WebhookDeliveryIntegrationTest, RetriesLikeMetaUntilIngressStoresTheEvents) {
  // A real ingress whose private Redis is not running yet: it answers 503.
  const int redis_port = testing::FreePort();
  redis::Options redis_options;
  redis_options.port = redis_port;
  redis_options.socket_timeout = std::chrono::milliseconds(500);
  redis_options.connect_timeout = std::chrono::milliseconds(200);
  KeySpace keys("katy", 16);
  prometheus::Registry registry;
  ingress::IngressMetrics ingress_metrics(registry);
  ingress::WebhookService service({"secret", "v", false, 1 << 20}, ingress_metrics, [] { return int64_t{1}; });
  auto server = ingress::WebhookServer::Start({{"127.0.0.1", 0}, 2, 1 << 20, std::chrono::milliseconds(2000)}, service,
                                              {redis_options, keys, std::chrono::seconds(60)});
  ASSERT_TRUE(server.ok());

  WebhookDelivery delivery({"http://127.0.0.1:" + std::to_string((*server)->port()) + "/webhook", "secret", 10, 1, 20,
                            std::chrono::milliseconds(200)});
  std::atomic<int> done{0};
  std::atomic<int> status{0};
  for (int i = 0; i < 3; ++i) {
    delivery.Enqueue("1045",
                     {{"sender", {{"id", "u"}}},
                      {"recipient", {{"id", "1045"}}},
                      {"timestamp", i},
                      {"message", {{"mid", "m_retry_" + std::to_string(i)}, {"text", "t"}}}},
                     [&](int result) {
                       status = result;
                       ++done;
                     });
  }
  // Redis is down: ingress answers 503 and the delivery retries.
  ASSERT_TRUE(testing::WaitFor([&] { return delivery.retries() >= 2; }, std::chrono::seconds(10)));
  auto redis_process = testing::StartPrivateRedis(redis_port, testing::MakeTempDir("delivery"));
  ASSERT_TRUE(testing::WaitFor([&] { return done == 3; }, std::chrono::seconds(15)));
  EXPECT_EQ(status, 200);
  EXPECT_GE(delivery.retries(), 1);
  EXPECT_GE(delivery.posts(), delivery.retries() + 1);
  redis::Client check(redis_options);
  EXPECT_EQ(check.Command({"XLEN", keys.InStream(ShardOf("1045", "u", 16))})->integer, 3);
}

}  // namespace
}  // namespace katy::emulator
