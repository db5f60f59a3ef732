// Control and observability against real processes (issue 6): a standard gRPC health client,
// the real katyctl binary, promtool on real /metrics, and the logs of a whole run.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <csignal>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>

#include "common/clock.h"
#include "common/http/http_client.h"
#include "common/redis/redis_client.h"
#include "common/shard.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "katy/v1/control.grpc.pb.h"
#include "katy/v1/events.pb.h"
#include "katy/v1/outbound.grpc.pb.h"
#include "tests/support/katy_stack.h"

namespace katy {
namespace {

constexpr const char* kRules = R"(
rules:
  - when: { keywords: [hello] }
    reply: "hi there"
fallback:
  reply: "echo: {{text}}"
)";
const char* const kServices[] = {"ingress", "responder", "sender"};

// The health status of `address` (readiness), or of the named health service (liveness).
std::string Health(const std::string& address, const std::string& service = "") {
  auto stub = grpc::health::v1::Health::NewStub(grpc::CreateChannel(address, grpc::InsecureChannelCredentials()));
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(2));
  grpc::health::v1::HealthCheckRequest request;
  request.set_service(service);
  grpc::health::v1::HealthCheckResponse response;
  auto status = stub->Check(&context, request, &response);
  if (!status.ok()) return "ERROR " + status.error_message();
  return grpc::health::v1::HealthCheckResponse::ServingStatus_Name(response.status());
}

using testing::Katyctl;
using testing::RepliesTo;
using testing::ReplyTexts;
using testing::Say;

TEST(ControlTest, HealthIsServingOnlyWhileRedisAnswers) {
  testing::KatyStack stack({kRules, {}});
  ASSERT_TRUE(stack.ready());
  for (const char* service : kServices) {
    EXPECT_TRUE(
        testing::WaitFor([&] { return Health(stack.GrpcAddress(service)) == "SERVING"; }, std::chrono::seconds(5)))
        << service;
  }
  stack.StopRedis();
  for (const char* service : kServices) {
    EXPECT_TRUE(
        testing::WaitFor([&] { return Health(stack.GrpcAddress(service)) == "NOT_SERVING"; }, std::chrono::seconds(5)))
        << service << " still says " << Health(stack.GrpcAddress(service));
    // Unready, not dead: a liveness probe must not restart it for Redis's outage.
    EXPECT_EQ(Health(stack.GrpcAddress(service), "katy.liveness"), "SERVING") << service;
    // What KatyServiceNotServing and KatyRedisDown read, as a real /metrics says it.
    EXPECT_EQ(stack.MetricSum(service, "katy_serving"), 0) << service;
    EXPECT_EQ(stack.MetricSum(service, "katy_redis_up"), 0) << service;
  }
  stack.StartRedis();
  for (const char* service : kServices) {
    EXPECT_TRUE(
        testing::WaitFor([&] { return Health(stack.GrpcAddress(service)) == "SERVING"; }, std::chrono::seconds(5)))
        << service;
  }
  for (const char* service : kServices) {
    EXPECT_EQ(stack.MetricSum(service, "katy_serving"), 1) << service;
    EXPECT_EQ(stack.MetricSum(service, "katy_redis_up"), 1) << service;
  }
  // And the bot works again.
  Say(stack, "h1", "hello");
  EXPECT_TRUE(testing::WaitFor([&] { return RepliesTo(stack, "h1") == 1; }, std::chrono::seconds(15)));
}

TEST(ControlTest, ControlTokenIsRequiredWhenSetAndHealthStaysOpen) {
  testing::KatyStack stack({kRules, {{"KATY_CONTROL_TOKEN", "ctl-secret-token-1"}}});
  ASSERT_TRUE(stack.ready());
  for (const char* service : kServices) {
    auto refused = Katyctl(stack, service, "status");
    EXPECT_EQ(refused.status, 1) << service;
    EXPECT_NE(refused.output.find("--token"), std::string::npos) << refused.output;
    EXPECT_EQ(Katyctl(stack, service, "--token wrong status").status, 1) << service;
    EXPECT_EQ(Katyctl(stack, service, "--token ctl-secret-token-1 status").status, 0) << service;
    EXPECT_EQ(Katyctl(stack, service, "health").status, 0) << service;  // no token needed
  }
}

// One RPC of katy.v1.Control or katy.v1.Outbound, called with a given bearer token (none when
// empty); returns its status code.
using RpcCall = std::function<grpc::StatusCode(const std::string& address, const std::string& token)>;

template <typename Stub, typename Request, typename Response>
RpcCall Rpc(grpc::Status (Stub::*method)(grpc::ClientContext*, const Request&, Response*)) {
  return [method](const std::string& address, const std::string& token) {
    auto channel = grpc::CreateChannel(address, grpc::InsecureChannelCredentials());
    Stub stub(channel);
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
    if (!token.empty()) context.AddMetadata("authorization", "Bearer " + token);
    Request request;
    Response response;
    return (stub.*method)(&context, request, &response).error_code();
  };
}

// Every Control RPC on every service, and both Outbound RPCs, refuse a call without a token
// and one with the other API's token; the right token is let through (Drain only refused:
// letting it through would stop the service).
TEST(ControlTest, EveryRpcNeedsItsOwnApisToken) {
  constexpr const char* kControl = "control-token-0c1f2e3d";
  constexpr const char* kOutbound = "outbound-token-9a8b7c6d";
  testing::KatyStack stack({kRules, {{"KATY_CONTROL_TOKEN", kControl}, {"KATY_OUTBOUND_TOKEN", kOutbound}}});
  ASSERT_TRUE(stack.ready());
  using Control = katy::v1::Control::Stub;
  using Outbound = katy::v1::Outbound::Stub;
  const std::map<std::string, RpcCall> control = {
      {"GetStatus", Rpc(&Control::GetStatus)},
      {"Pause", Rpc(&Control::Pause)},
      {"Resume", Rpc(&Control::Resume)},
      {"SetRateLimit", Rpc(&Control::SetRateLimit)},
      {"ListDeadLetters", Rpc(&Control::ListDeadLetters)},
      {"ReplayDeadLetters", Rpc(&Control::ReplayDeadLetters)},
      {"ReloadRules", Rpc(&Control::ReloadRules)},
      {"Drain", Rpc(&Control::Drain)},
      {"GetConversation", Rpc(&Control::GetConversation)},
      {"SetConversationOwner", Rpc(&Control::SetConversationOwner)},
      {"CancelReminder", Rpc(&Control::CancelReminder)},
      {"Forget", Rpc(&Control::Forget)},
  };
  const std::map<std::string, RpcCall> outbound = {{"Send", Rpc(&Outbound::Send)},
                                                   {"GetMessage", Rpc(&Outbound::GetMessage)}};
  auto check = [](const std::string& address, const std::map<std::string, RpcCall>& rpcs, const std::string& right,
                  const std::string& other) {
    for (const auto& [name, call] : rpcs) {
      for (const std::string& token : {std::string(), other, right + "x"}) {
        EXPECT_EQ(call(address, token), grpc::StatusCode::UNAUTHENTICATED)
            << address << " " << name << " with '" << token << "'";
      }
      if (name != "Drain") {
        EXPECT_NE(call(address, right), grpc::StatusCode::UNAUTHENTICATED) << address << " " << name;
      }
    }
  };
  for (const char* service : kServices) check(stack.GrpcAddress(service), control, kControl, kOutbound);
  check(stack.GrpcAddress("sender"), outbound, kOutbound, kControl);
}

// A service whose gRPC port others can reach refuses to start without a token, and every
// service refuses the examples' placeholder secrets, naming the setting.
TEST(ControlTest, ServicesRefuseToStartOpenOrWithAPlaceholderSecret) {
  const std::string redis = "KATY_REDIS_URL=redis://127.0.0.1:1/0 ";
  const std::string ingress = "KATY_APP_SECRET=a-real-looking-app-secret KATY_VERIFY_TOKEN=verify-me-123 ";
  const std::string sender = "KATY_PAGE_TOKEN=page-token ";
  struct Case {
    std::string env;
    std::string binary;
    std::string says;
  };
  const std::vector<Case> cases = {
      {ingress + "KATY_GRPC_ADDR=0.0.0.0:0", "katy-ingress", "KATY_CONTROL_TOKEN is required"},
      {"KATY_GRPC_ADDR=0.0.0.0:0", "katy-responder", "KATY_CONTROL_TOKEN is required"},
      {sender + "KATY_GRPC_ADDR=0.0.0.0:0 KATY_CONTROL_TOKEN=control-token-0123", "katy-sender",
       "KATY_OUTBOUND_TOKEN is required"},
      {sender + "KATY_CONTROL_TOKEN=same-token-01234567 KATY_OUTBOUND_TOKEN=same-token-01234567", "katy-sender",
       "must differ"},
      {"KATY_APP_SECRET=change-me KATY_VERIFY_TOKEN=verify-me-123", "katy-ingress", "KATY_APP_SECRET is a placeholder"},
      {"KATY_APP_SECRET=a-real-looking-app-secret KATY_VERIFY_TOKEN=change-me", "katy-ingress",
       "KATY_VERIFY_TOKEN is a placeholder"},
      {"KATY_CONTROL_TOKEN=change-me", "katy-responder", "KATY_CONTROL_TOKEN is a placeholder"},
      {sender + "KATY_APP_SECRET=change-me", "katy-sender", "KATY_APP_SECRET is a placeholder"},
  };
  for (const auto& c : cases) {
    auto run = testing::RunCommand("env -i " + redis + c.env + " " + testing::BinaryPath(c.binary));
    EXPECT_EQ(run.status, 2) << c.binary << " " << c.env << ": " << run.output;
    EXPECT_NE(run.output.find(c.says), std::string::npos) << c.binary << " " << c.env << ": " << run.output;
  }
}

// With a certificate, every service's gRPC port speaks TLS only: katyctl trusting the
// certificate is served, a plaintext client is not; a certificate without its key refuses
// to start.
TEST(ControlTest, GrpcSpeaksTlsWhenGivenACertificate) {
  const std::string dir = testing::MakeTempDir("tls");
  auto made = testing::RunCommand(
      "openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=localhost "
      "-addext subjectAltName=IP:127.0.0.1,DNS:localhost -keyout " +
      dir + "/key.pem -out " + dir + "/cert.pem");
  ASSERT_EQ(made.status, 0) << made.output;
  testing::KatyStack stack(
      {kRules, {{"KATY_GRPC_TLS_CERT_FILE", dir + "/cert.pem"}, {"KATY_GRPC_TLS_KEY_FILE", dir + "/key.pem"}}});
  ASSERT_TRUE(stack.ready());
  for (const char* service : kServices) {
    EXPECT_EQ(Katyctl(stack, service, "--tls-ca " + dir + "/cert.pem status").status, 0) << service;
    EXPECT_EQ(Katyctl(stack, service, "status").status, 1) << service;  // plaintext: refused
  }
  Say(stack, "t1", "hello");
  EXPECT_TRUE(testing::WaitFor([&] { return RepliesTo(stack, "t1") == 1; }, std::chrono::seconds(15)));
  auto half = testing::RunCommand("env -i KATY_GRPC_TLS_CERT_FILE=" + dir + "/cert.pem " +
                                  testing::BinaryPath("katy-responder"));
  EXPECT_EQ(half.status, 2) << half.output;
  EXPECT_NE(half.output.find("go together"), std::string::npos) << half.output;
}

TEST(ControlTest, KatyctlStatusPauseResumeRateRulesAndDrain) {
  testing::KatyStack stack({kRules, {}});
  ASSERT_TRUE(stack.ready());
  Say(stack, "k1", "hello");
  ASSERT_TRUE(testing::WaitFor([&] { return RepliesTo(stack, "k1") == 1; }, std::chrono::seconds(15)));

  auto status = Katyctl(stack, "ingress", "--json status");
  ASSERT_EQ(status.status, 0) << status.output;
  auto json = nlohmann::json::parse(status.output);
  EXPECT_EQ(json["service"], "ingress");
  EXPECT_EQ(json["streams"].size(), 32u);
  EXPECT_EQ(json["dead_letters"].size(), 16u);
  EXPECT_EQ(json["leases"].size(), 32u);
  int64_t inbound = 0;
  for (const auto& stream : json["streams"]) {
    if (stream["group"] == "responders") inbound += std::stoll(stream["length"].get<std::string>());
  }
  EXPECT_EQ(inbound, 1);
  auto table = Katyctl(stack, "responder", "status");
  EXPECT_EQ(table.status, 0);
  EXPECT_NE(table.output.find("owns shards 0-15"), std::string::npos) << table.output;

  // Pause the page in the sender: replies wait; resume: they go.
  ASSERT_EQ(Katyctl(stack, "sender", "pause 1045").status, 0);
  Say(stack, "k2", "hello");
  // The reply reached the sender and was held back (a wait, not a send).
  EXPECT_TRUE(testing::WaitFor(
      [&] { return stack.MetricSum("sender", "katy_consumer_entries_total", "outcome=\"wait\"") >= 1; },
      std::chrono::seconds(10)));
  EXPECT_EQ(RepliesTo(stack, "k2"), 0u);
  auto paused = Katyctl(stack, "sender", "status");
  EXPECT_NE(paused.output.find("yes (operator)"), std::string::npos) << paused.output;
  EXPECT_EQ(stack.MetricSum("ingress", "katy_page_paused", "page=\"1045\""), 1);  // the alert's source
  ASSERT_EQ(Katyctl(stack, "sender", "resume 1045").status, 0);
  EXPECT_TRUE(testing::WaitFor([&] { return RepliesTo(stack, "k2") == 1; }, std::chrono::seconds(10)));
  EXPECT_EQ(stack.MetricSum("ingress", "katy_page_paused", "page=\"1045\""), 0);

  // Pause the responder as a whole: events wait in the stream (lag), then flow.
  ASSERT_EQ(Katyctl(stack, "responder", "pause").status, 0);
  // Once the responder has stopped reading, the event is stored and left in the stream.
  ASSERT_TRUE(testing::WaitFor([&] { return stack.MetricSum("responder", "katy_consumer_paused") == 1; },
                               std::chrono::seconds(10)));
  Say(stack, "k3", "hello");
  EXPECT_TRUE(
      testing::WaitFor([&] { return stack.MetricSum("ingress", "katy_stream_lag", "group=\"responders\"") >= 1; },
                       std::chrono::seconds(10)));
  EXPECT_EQ(RepliesTo(stack, "k3"), 0u);
  EXPECT_EQ(Katyctl(stack, "responder", "pause 1045").status, 1);  // pages pause in the sender
  ASSERT_EQ(Katyctl(stack, "responder", "resume").status, 0);
  EXPECT_TRUE(testing::WaitFor([&] { return RepliesTo(stack, "k3") == 1; }, std::chrono::seconds(10)));

  ASSERT_EQ(Katyctl(stack, "sender", "rate 1045 7").status, 0);
  auto pages = nlohmann::json::parse(Katyctl(stack, "sender", "--json status").output)["pages"];
  bool seen = false;
  for (const auto& page : pages) seen = seen || (page["page_id"] == "1045" && page["rate"] == 7);
  EXPECT_TRUE(seen) << pages.dump();
  EXPECT_EQ(Katyctl(stack, "sender", "rate 1045 0").status, 2);
  EXPECT_EQ(Katyctl(stack, "responder", "rate 1045 5").status, 1);  // UNIMPLEMENTED there

  std::ofstream(stack.dir() + "/rules.yaml") << "fallback:\n  reply: \"v2: {{text}}\"\n";
  auto reloaded = Katyctl(stack, "responder", "rules reload");
  EXPECT_EQ(reloaded.status, 0) << reloaded.output;
  Say(stack, "k4", "anything");
  EXPECT_TRUE(testing::WaitFor([&] { return RepliesTo(stack, "k4") == 1; }, std::chrono::seconds(10)));
  EXPECT_EQ(ReplyTexts(stack, "k4"), std::vector<std::string>{"v2: anything"}) << "the reloaded rules did not answer";
  std::ofstream(stack.dir() + "/rules.yaml") << "rules: [\n";
  auto refused = Katyctl(stack, "responder", "rules reload");
  EXPECT_EQ(refused.status, 1);
  EXPECT_NE(refused.output.find("rules.yaml:"), std::string::npos) << refused.output;

  auto top = Katyctl(stack, "ingress", "top --interval 0.2 --count 2");
  EXPECT_EQ(top.status, 0) << top.output;
  EXPECT_NE(top.output.find("rates:"), std::string::npos) << top.output;
  EXPECT_NE(Katyctl(stack, "ingress", "--help").output.find("usage: katyctl"), std::string::npos);
  EXPECT_EQ(Katyctl(stack, "ingress", "fly").status, 2);

  EXPECT_EQ(Katyctl(stack, "ingress", "drain").status, 0);
  EXPECT_EQ(stack.process("ingress").Stop(0, std::chrono::seconds(10)), 0);
}

TEST(ControlTest, DeadLettersAreListedShownAndReplayedInOrder) {
  testing::KatyStack stack({kRules, {}});
  ASSERT_TRUE(stack.ready());
  http::Client http;
  ASSERT_EQ(http.Post(stack.emulator_url() + "/_emulator/faults",
                      R"({"fail_next":2,"error":{"http_status":400,"code":100,"message":"(#100) bad"}})")
                ->status,
            200);
  Say(stack, "d1", "first");
  Say(stack, "d1", "second");
  auto list = [&] { return nlohmann::json::parse(Katyctl(stack, "ingress", "--json dlq list").output); };
  ASSERT_TRUE(testing::WaitFor([&] { return list()["letters"].size() == 2; }, std::chrono::seconds(15)));
  auto letters = list()["letters"];
  EXPECT_EQ(letters[0]["reason"], "bad_request");
  EXPECT_EQ(letters[0]["stage"], "sender");
  const std::string ref = letters[0]["dlq_stream"].get<std::string>() + "/" + letters[0]["id"].get<std::string>();
  auto shown = Katyctl(stack, "ingress", "dlq show " + ref);
  ASSERT_EQ(shown.status, 0) << shown.output;
  auto entry = nlohmann::json::parse(nlohmann::json::parse(shown.output)["entry_json"].get<std::string>());
  EXPECT_EQ(nlohmann::json::parse(entry["message_json"].get<std::string>())["text"], "echo: first");
  EXPECT_EQ(Katyctl(stack, "ingress", "dlq").status, 0);  // list is the default

  auto replayed = Katyctl(stack, "ingress", "dlq replay --all");
  ASSERT_EQ(replayed.status, 0) << replayed.output;
  EXPECT_NE(replayed.output.find("replayed 2"), std::string::npos) << replayed.output;
  ASSERT_TRUE(testing::WaitFor([&] { return RepliesTo(stack, "d1") == 2; }, std::chrono::seconds(15)));
  auto texts = nlohmann::json::parse(http.Get(stack.emulator_url() + "/_emulator/messages?psid=d1")->body);
  EXPECT_EQ(texts[0]["message"]["text"], "echo: first");
  EXPECT_EQ(texts[1]["message"]["text"], "echo: second");
  EXPECT_TRUE(list()["letters"].empty());
  EXPECT_EQ(Katyctl(stack, "ingress", "dlq replay " + ref).status, 1);  // gone now
}

// Dead letters of many people on several shards, from both stages, replayed at once: each goes
// back to the stream it came from (a sender's to the outbound stream, a responder's to the
// inbound one, where it is answered), and each person's replies come in their order.
TEST(ControlTest, DeadLettersOfManyPeopleOnSeveralShardsAndBothStagesReplayInOrder) {
  testing::KatyStack stack({kRules, {}});
  ASSERT_TRUE(stack.ready());
  http::Client http;
  constexpr int kUsers = 6;
  ASSERT_EQ(http.Post(stack.emulator_url() + "/_emulator/faults",
                      R"({"fail_next":12,"error":{"http_status":400,"code":100,"message":"(#100) bad"}})")
                ->status,
            200);
  for (const char* text : {"first", "second"}) {
    for (int user = 0; user < kUsers; ++user) Say(stack, "r" + std::to_string(user), text);
  }
  // A letter the responder stage left (it dead-letters events it cannot decode; this one is
  // whole, as after a fix), written as the consumer writes one.
  const KeySpace keys("katy", 16);
  const int shard = ShardOf("1045", "r9", 16);
  katy::v1::InboundEvent event;
  event.set_kind(katy::v1::EVENT_KIND_MESSAGE);
  event.set_page_id("1045");
  event.set_user_id("r9");
  event.set_mid("m_replayed_r9");
  event.set_text("from the responder's letters");
  event.set_timestamp_ms(WallClockMs());
  event.set_received_at_ms(WallClockMs());
  redis::Client redis(*redis::ParseUrl(stack.redis_url()));
  ASSERT_TRUE(redis
                  .Command({"XADD", keys.DeadLetters(shard), "*", "pb", event.SerializeAsString(), "stream",
                            keys.InStream(shard), "id", "1-0", "stage", "responder", "reason", "undecodable_event",
                            "attempts", "1"})
                  .ok());
  auto list = [&] { return nlohmann::json::parse(Katyctl(stack, "ingress", "--json dlq list").output); };
  ASSERT_TRUE(testing::WaitFor([&] { return list()["letters"].size() == 13; }, std::chrono::seconds(15)))
      << "logs in " << stack.dir();
  std::set<std::string> dlq_streams;
  const auto letters = list()["letters"];
  for (const auto& letter : letters) dlq_streams.insert(letter["dlq_stream"].get<std::string>());
  EXPECT_GE(dlq_streams.size(), 3u) << "the letters should span several shards";

  auto replayed = Katyctl(stack, "ingress", "dlq replay --all");
  ASSERT_EQ(replayed.status, 0) << replayed.output;
  EXPECT_NE(replayed.output.find("replayed 13"), std::string::npos) << replayed.output;
  ASSERT_TRUE(stack.WaitUntilDrained(std::chrono::seconds(15))) << "logs in " << stack.dir();
  for (int user = 0; user < kUsers; ++user) {
    const std::string psid = "r" + std::to_string(user);
    EXPECT_EQ(testing::ReplyTexts(stack, psid), (std::vector<std::string>{"echo: first", "echo: second"})) << psid;
  }
  EXPECT_EQ(testing::ReplyTexts(stack, "r9"), std::vector<std::string>{"echo: from the responder's letters"});
  EXPECT_TRUE(list()["letters"].empty());
}

TEST(ControlTest, PromtoolAcceptsEveryServicesMetrics) {
  testing::KatyStack stack({kRules, {}});
  ASSERT_TRUE(stack.ready());
  Say(stack, "m1", "hello");
  ASSERT_TRUE(testing::WaitFor([&] { return RepliesTo(stack, "m1") == 1; }, std::chrono::seconds(15)));
  for (const char* service : kServices) {
    auto checked = testing::RunCommand("curl -sf " + stack.AdminUrl(service) + "/metrics | promtool check metrics");
    EXPECT_EQ(checked.status, 0) << service << ": " << checked.output;
    EXPECT_GT(stack.MetricSum(service, "katy_stream_length"), 0) << service;
    EXPECT_EQ(stack.MetricSum(service, "katy_redis_up"), 1) << service;
    EXPECT_EQ(stack.MetricSum(service, "katy_serving"), 1) << service;
  }
  EXPECT_EQ(stack.MetricSum("ingress", "katy_ingress_events_total"), 1);
  // KatyNoWebhook's input: labelled by page, in seconds since the epoch (not milliseconds).
  const double now_s = std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  const double last_webhook_s =
      stack.MetricSum("ingress", "katy_ingress_last_webhook_timestamp_seconds", "page=\"1045\"");
  EXPECT_GT(last_webhook_s, now_s - 60);
  EXPECT_LE(last_webhook_s, now_s + 1);
  EXPECT_GE(stack.MetricSum("sender", "katy_sender_end_to_end_seconds_count"), 1);
  http::Client http;
  EXPECT_EQ(http.Get(stack.AdminUrl("sender") + "/healthz")->status, 200);
}

// Nor does what people write, or what the bot answers them (the fallback echoes it), at the
// most verbose level, unless KATY_LOG_MESSAGE_TEXT allows it (docs/privacy.md).
constexpr const char* kPrivateWords = "my-own-words-3b7f";

TEST(ControlTest, SecretsNeverReachTheLogs) {
  const std::map<std::string, std::string> secrets = {{"KATY_CONTROL_TOKEN", "ctl-token-5e3f9a"}};
  testing::KatyStack stack({kRules, secrets});
  ASSERT_TRUE(stack.ready());
  Say(stack, "s1", "hello");
  ASSERT_TRUE(testing::WaitFor([&] { return RepliesTo(stack, "s1") == 1; }, std::chrono::seconds(15)));
  Say(stack, "s1", kPrivateWords);
  ASSERT_TRUE(testing::WaitFor([&] { return RepliesTo(stack, "s1") == 2; }, std::chrono::seconds(15)));
  // Some failures too: a bad signature, a wrong control token, a Send API error.
  http::Client http;
  auto forged = http.Post(stack.ingress_url(), "{}", {"X-Hub-Signature-256: sha256=" + std::string(64, '0')});
  ASSERT_TRUE(forged.ok());
  EXPECT_EQ(forged->status, 403);
  Katyctl(stack, "sender", "--token nope status");
  auto faults = http.Post(stack.emulator_url() + "/_emulator/faults",
                          R"({"fail_next":1,"error":{"code":190,"http_status":400}})");
  ASSERT_TRUE(faults.ok() && faults->status == 200);
  Say(stack, "s2", "hello");
  // The injected 190 paused the page: every service has logged its part of this story.
  EXPECT_TRUE(testing::WaitFor([&] { return stack.MetricSum("sender", "katy_sender_page_pauses_total") >= 1; },
                               std::chrono::seconds(10)));
  for (const char* service : kServices) stack.process(service).Stop(SIGTERM, std::chrono::seconds(10));
  const std::string logs = stack.AllLogs();
  ASSERT_GT(logs.size(), 1000u);
  for (const char* secret : {testing::KatyStack::kAppSecret, testing::KatyStack::kPageToken,
                             testing::KatyStack::kVerifyToken, "ctl-token-5e3f9a"}) {
    EXPECT_EQ(logs.find(secret), std::string::npos) << "a secret is in the logs: " << secret;
  }
  EXPECT_NE(logs.find("[redacted]"), std::string::npos);  // the config lines are there, redacted
  EXPECT_EQ(logs.find(kPrivateWords), std::string::npos) << "message text is in the logs";
}

// The operator may let message text into the logs, for debugging: then it is there.
TEST(ControlTest, MessageTextReachesTheLogsOnlyWhenAllowed) {
  testing::KatyStack stack({kRules, {{"KATY_LOG_MESSAGE_TEXT", "true"}}});
  ASSERT_TRUE(stack.ready());
  Say(stack, "t1", kPrivateWords);
  ASSERT_TRUE(testing::WaitFor([&] { return RepliesTo(stack, "t1") == 1; }, std::chrono::seconds(15)));
  ASSERT_TRUE(testing::WaitFor([&] { return stack.AllLogs().find(kPrivateWords) != std::string::npos; },
                               std::chrono::seconds(5)));
}

// A Redis password holding every character a URL gives meaning to ('/', '@', ':', '%') works,
// and reaches no log line or error message, whichever path prints the URL: the start-up
// configuration, Redis going away, a wrong password, a malformed URL, a wrong scheme.
TEST(ControlTest, RedisPasswordsNeverReachTheLogsOrErrors) {
  const std::string password = "p/ss@w:rd%41-0a1b2c3d";
  const std::string wrong = "wr/ng@pa:ss%25-9z8y7x";
  testing::KatyStack stack({kRules, {}, {}, password});
  ASSERT_TRUE(stack.ready());
  Say(stack, "pw1", "hello");
  ASSERT_TRUE(testing::WaitFor([&] { return RepliesTo(stack, "pw1") == 1; }, std::chrono::seconds(15)));
  // Redis goes away and comes back: every service logs its reconnections.
  stack.StopRedis();
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  stack.StartRedis();
  Say(stack, "pw2", "hello");
  ASSERT_TRUE(testing::WaitFor([&] { return RepliesTo(stack, "pw2") == 1; }, std::chrono::seconds(20)));
  std::string output = stack.AllLogs();
  // A wrong password: the responder runs, cannot get in, and says so when stopped.
  const std::string port = stack.redis_url().substr(stack.redis_url().rfind(':') + 1, 5);
  const std::string host = "127.0.0.1:" + port.substr(0, port.find('/'));
  {
    auto env = stack.ServiceEnv();
    env["KATY_REDIS_URL"] = "redis://:" + wrong + "@" + host + "/0";
    env["KATY_DRAIN_TIMEOUT_S"] = "0";
    const std::string log_path = stack.dir() + "/wrong-password.log";
    testing::Process refused(testing::BinaryPath("katy-responder"), {}, env, log_path);
    auto read_log = [&] {
      std::ifstream in(log_path);
      return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    };
    EXPECT_TRUE(
        testing::WaitFor([&] { return read_log().find("WRONGPASS") != std::string::npos; }, std::chrono::seconds(15)))
        << read_log();
    refused.Stop(SIGTERM, std::chrono::seconds(10));
    const std::string log = read_log();
    output += log;
  }
  // A malformed URL, a wrong scheme and TLS, each refused at start-up with the password in it.
  for (const std::string& url : {"redis://:" + password + "@" + host + ":x/0", "http://:" + password + "@" + host,
                                 "rediss://:" + password + "@" + host}) {
    auto result = testing::RunCommand("env -i 'KATY_REDIS_URL=" + url + "' " + testing::BinaryPath("katy-responder"));
    EXPECT_EQ(result.status, 2) << result.output;
    output += result.output;
  }
  ASSERT_GT(output.size(), 1000u);
  for (const std::string& secret : {password, wrong}) {
    EXPECT_EQ(output.find(secret), std::string::npos) << "a Redis password is in the output";
    EXPECT_EQ(output.find(secret.substr(0, 6)), std::string::npos) << "part of a Redis password is in the output";
  }
  EXPECT_NE(output.find("redis://[redacted]@127.0.0.1"), std::string::npos);
}

TEST(ControlTest, SigtermHandsShardsOverAtOnce) {
  // A lease TTL far longer than the test: a takeover by expiry would take 30 s.
  testing::KatyStack stack({kRules, {{"KATY_LEASE_TTL_MS", "30000"}}});
  ASSERT_TRUE(stack.ready());
  stack.StartExtra("responder", "katy-responder");
  auto owners = [&] { return testing::LeaseOwners(stack, "responder"); };
  ASSERT_TRUE(testing::WaitFor([&] { return owners().size() == 2; }, std::chrono::seconds(30)));
  const auto started = std::chrono::steady_clock::now();
  ASSERT_EQ(stack.process("responder").Stop(SIGTERM, std::chrono::seconds(15)), 0);
  ASSERT_TRUE(testing::WaitFor(
      [&] {
        auto now = owners();
        return now.size() == 1 && now.begin()->second == 16;
      },
      std::chrono::seconds(20)));
  EXPECT_LT(std::chrono::steady_clock::now() - started, std::chrono::seconds(15)) << "the leases were not released";
  Say(stack, "t1", "hello");
  EXPECT_TRUE(testing::WaitFor([&] { return RepliesTo(stack, "t1") == 1; }, std::chrono::seconds(10)));
}

}  // namespace
}  // namespace katy
