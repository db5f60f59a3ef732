#include "tools/emulator/emulator_server.h"

#include <gtest/gtest.h>

#include <condition_variable>
#include <mutex>
#include <thread>

#include <pistache/endpoint.h>
#include <pistache/http.h>

#include <nlohmann/json.hpp>

#include "common/http/async_client.h"
#include "common/http/http_client.h"
#include "common/metrics/metrics.h"
#include "common/redis/client_pool.h"
#include "services/ingress/event_store.h"
#include "services/ingress/webhook_server.h"
#include "services/ingress/webhook_service.h"
#include "services/sender/error_classifier.h"
#include "tests/support/in_process_emulator.h"
#include "tests/support/test_support.h"

namespace katy::emulator {
namespace {

class EmulatorServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    meta_ = std::make_unique<testing::InProcessEmulator>();
    ASSERT_TRUE(meta_->server);
    server_ = meta_->server.get();
    base_ = meta_->graph_url();
  }
  std::unique_ptr<testing::InProcessEmulator> meta_;
  EmulatorServer* server_ = nullptr;  // meta_'s
  std::string base_;
  http::Client http_;
};

// A slow Meta at scale: with 300 ms of injected latency, 2,000 Send API calls at once are all
// held on timers by the emulator's 8 I/O threads (a thread per call would hold 8), and each is
// answered and recorded once. The client keeps them in flight on one loop thread.
TEST_F(EmulatorServerTest, TheSendApiHoldsThousandsOfSlowCallsOnTimersNotThreads) {
  ASSERT_EQ(http_.Post(meta_->root_url() + "/_emulator/faults", R"({"latency_ms":[300,300]})")->status, 200);
  constexpr int kCalls = 2000;
  http::AsyncClient client({.max_connections_per_host = kCalls, .max_total_connections = kCalls});
  std::mutex mutex;
  std::condition_variable all_done;
  int ok = 0;
  int done = 0;
  for (int i = 0; i < kCalls; ++i) {
    http::Request call;
    call.method = "POST";
    call.url = base_ + "/1045/messages?access_token=t";
    call.body =
        R"({"recipient":{"id":"slow)" + std::to_string(i) + R"("},"messaging_type":"RESPONSE","message":{"text":"x"}})";
    call.timeout = std::chrono::seconds(30);
    client.Submit(std::move(call), [&](Result<http::Response> answer) {
      std::lock_guard lock(mutex);
      if (answer.ok() && answer->status == 200) ++ok;
      if (++done == kCalls) all_done.notify_all();
    });
  }
  {
    std::unique_lock lock(mutex);
    ASSERT_TRUE(all_done.wait_for(lock, std::chrono::seconds(60), [&] { return done == kCalls; }));
  }
  EXPECT_EQ(ok, kCalls);
  EXPECT_EQ(server_->store().size(), static_cast<size_t>(kCalls));
  auto faults = nlohmann::json::parse(http_.Get(meta_->root_url() + "/_emulator/faults")->body);
  // A thread per call would hold 8 at once. Half of them at once held under the plain build, and
  // 991 of the 1,000 under ASan, whose client opens its connections slower than 300 ms allows:
  // a quarter is still a hundredfold the threads.
  EXPECT_GE(faults["most_held_calls"].get<int>(), kCalls / 4) << "the calls were held a few at a time";
  EXPECT_EQ(faults["slow_calls"].get<int>(), kCalls);
}

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

// A web page in the operator's browser cannot make the emulator sign webhooks: a text/plain
// POST (which needs no preflight) and any call from a foreign Origin are refused and change
// nothing; the chat page's own calls (JSON, its own origin) still work.
TEST_F(EmulatorServerTest, CrossSiteCallsAreRefusedAndChangeNothing) {
  const std::string root = base_.substr(0, base_.size() - 6);
  const std::string faults = R"({"fail_next":3,"error":{"code":2,"http_status":500}})";
  auto plain = http_.Post(root + "/_emulator/faults", faults, {"Content-Type: text/plain"});
  ASSERT_TRUE(plain.ok());
  EXPECT_EQ(plain->status, 403) << plain->body;
  auto foreign =
      http_.Post(root + "/_emulator/faults", faults, {"Content-Type: application/json", "Origin: http://evil.example"});
  ASSERT_TRUE(foreign.ok());
  EXPECT_EQ(foreign->status, 403) << foreign->body;
  auto inbox = http_.Post(root + "/_emulator/inbox/take", R"({"page":"1045","psid":"42"})",
                          {"Content-Type: text/plain", "Origin: http://evil.example"});
  EXPECT_EQ(inbox->status, 403);
  EXPECT_EQ(nlohmann::json::parse(http_.Get(root + "/_emulator/faults")->body).value("fail_next", 0), 0);
  const std::string own = "Origin: http://127.0.0.1:" + std::to_string(server_->port());
  auto same = http_.Post(root + "/_emulator/faults", faults, {"Content-Type: application/json", own});
  EXPECT_EQ(same->status, 200) << same->body;
  EXPECT_EQ(nlohmann::json::parse(http_.Get(root + "/_emulator/faults")->body).value("fail_next", 0), 3);
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

// Keeps every webhook body POSTed to it, and answers 200.
class WebhookCapture : public Pistache::Http::Handler {
 public:
  HTTP_PROTOTYPE(WebhookCapture)
  explicit WebhookCapture(std::shared_ptr<std::vector<std::string>> bodies, std::shared_ptr<std::mutex> mutex)
      : bodies_(std::move(bodies)), mutex_(std::move(mutex)) {}
  void onRequest(const Pistache::Http::Request& request, Pistache::Http::ResponseWriter response) override {
    {
      std::lock_guard lock(*mutex_);
      bodies_->push_back(request.body());
    }
    response.send(Pistache::Http::Code::Ok, "EVENT_RECEIVED");
  }

 private:
  std::shared_ptr<std::vector<std::string>> bodies_;
  std::shared_ptr<std::mutex> mutex_;
};

// The emulator's Instagram account: its webhooks are Instagram's (object, reads by mid, no
// delivery receipts) and its Send API refuses what Instagram refuses, with Instagram's error type.
TEST(EmulatorInstagramTest, AnInstagramAccountHasInstagramsWebhooksAndLimits) {
  auto bodies = std::make_shared<std::vector<std::string>>();
  auto mutex = std::make_shared<std::mutex>();
  Pistache::Http::Endpoint capture(Pistache::Address(Pistache::Ipv4::loopback(), Pistache::Port(0)));
  capture.init(Pistache::Http::Endpoint::options().threads(1));
  capture.setHandler(Pistache::Http::make_handler<WebhookCapture>(bodies, mutex));
  capture.serveThreaded();
  EmulatorOptions options;
  options.address = {"127.0.0.1", 0};
  options.app_secret = "secret";
  options.ingress_url = "http://127.0.0.1:" + std::to_string(static_cast<uint16_t>(capture.getPort())) + "/webhook";
  options.echoes = true;
  auto server = EmulatorServer::Start(options);
  ASSERT_TRUE(server.ok());
  const std::string root = "http://127.0.0.1:" + std::to_string((*server)->port());
  http::Client http;
  const std::vector<std::string> json_type = {"Content-Type: application/json"};
  const std::string account = options.chat_instagram_id;

  auto said = http.Post(root + "/_emulator/say", R"({"page":")" + account + R"(","psid":"ig-1","text":"hi"})");
  ASSERT_EQ(said->status, 200) << said->body;
  auto refused = http.Post(root + "/v25.0/" + account + "/messages?access_token=t",
                           nlohmann::json{{"recipient", {{"id", "ig-1"}}},
                                          {"messaging_type", "RESPONSE"},
                                          {"message", {{"text", std::string(1001, 'a')}}}}
                               .dump(),
                           json_type);
  EXPECT_EQ(refused->status, 400);
  auto error = nlohmann::json::parse(refused->body)["error"];
  EXPECT_EQ(error["type"], "IGApiException");
  EXPECT_NE(error["message"].get<std::string>().find("at most 1000 bytes"), std::string::npos);
  // The same text is a Messenger page's to send.
  auto page_send = http.Post(root + "/v25.0/1045/messages?access_token=t",
                             nlohmann::json{{"recipient", {{"id", "fb-1"}}},
                                            {"messaging_type", "RESPONSE"},
                                            {"message", {{"text", std::string(1001, 'a')}}}}
                                 .dump(),
                             json_type);
  EXPECT_EQ(page_send->status, 200) << page_send->body;
  auto sent =
      http.Post(root + "/v25.0/" + account + "/messages?access_token=t",
                R"({"recipient":{"id":"ig-1"},"messaging_type":"RESPONSE","message":{"text":"hello"}})", json_type);
  ASSERT_EQ(sent->status, 200) << sent->body;
  const std::string mid = nlohmann::json::parse(sent->body)["message_id"];
  EXPECT_EQ(http.Post(root + "/_emulator/read", R"({"page":")" + account + R"(","psid":"ig-1"})")->status, 200);
  EXPECT_EQ(http.Post(root + "/_emulator/delivered", R"({"page":")" + account + R"(","psid":"ig-1"})")->status, 400);
  auto profile = nlohmann::json::parse(http.Get(root + "/v25.0/ig-1?fields=name&access_token=t")->body);
  EXPECT_TRUE(profile.contains("name"));
  EXPECT_FALSE(profile.contains("first_name"));

  // The message, the echo and the read, each with Instagram's object; the page's echo is a page's.
  ASSERT_TRUE(testing::WaitFor(
      [&] {
        std::lock_guard lock(*mutex);
        return bodies->size() >= 4;
      },
      std::chrono::seconds(10)));
  (*server)->Shutdown();
  capture.shutdown();
  int instagram = 0;
  bool read_by_mid = false;
  for (const auto& body : *bodies) {
    auto webhook = nlohmann::json::parse(body);
    const bool from_account = webhook["entry"][0]["id"] == account;
    EXPECT_EQ(webhook["object"], from_account ? "instagram" : "page") << body;
    instagram += from_account;
    const auto& item = webhook["entry"][0]["messaging"][0];
    if (item.contains("read")) read_by_mid = item["read"]["mid"] == mid;
  }
  EXPECT_EQ(instagram, 3);
  EXPECT_TRUE(read_by_mid);
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
