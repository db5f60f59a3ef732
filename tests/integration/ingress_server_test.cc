#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <map>
#include <random>
#include <set>
#include <thread>

#include "common/clock.h"
#include "common/hmac.h"
#include "common/http/http_client.h"
#include "common/metrics/metrics.h"
#include "common/redis/client_pool.h"
#include "common/redis/streams.h"
#include "services/ingress/event_store.h"
#include "services/ingress/webhook_server.h"
#include "services/ingress/webhook_service.h"
#include "tests/support/raw_http.h"
#include "tests/support/test_support.h"

namespace katy::ingress {
namespace {

using testing::ChaosConnection;
using testing::ConnectLoopback;
using testing::RawClient;

constexpr const char* kSecret = "integration-secret";
constexpr int kShards = 16;

// Holds every write command sent to the private Redis at `options` until ResumeWrites (CLIENT
// PAUSE WRITE; reads and this client itself go on). A command held there counts in INFO's
// blocked_clients, which is how a test knows a request has reached Redis.
void PauseWrites(const redis::Options& options) {
  ASSERT_TRUE(redis::Client(options).Command({"CLIENT", "PAUSE", "60000", "WRITE"}).ok());
}
void ResumeWrites(const redis::Options& options) {
  ASSERT_TRUE(redis::Client(options).Command({"CLIENT", "UNPAUSE"}).ok());
}
int BlockedClients(const redis::Options& options) {
  auto info = redis::Client(options).Command({"INFO", "clients"});
  if (!info) return -1;
  const size_t at = info->str.find("blocked_clients:");
  return at == std::string::npos ? -1 : std::atoi(info->str.c_str() + at + 16);
}

std::string SignedPost(const std::string& body, const std::string& extra_headers = "") {
  return "POST /webhook HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nX-Hub-Signature-256: sha256=" +
         HmacSha256Hex(kSecret, body) + "\r\nContent-Length: " + std::to_string(body.size()) + "\r\n" + extra_headers +
         "\r\n" + body;
}

// A real ingress (its HTTP loops on port 0) over a real Redis, with its own key prefix.
class IngressServerTest : public ::testing::Test {
 protected:
  void SetUp() override { Start(testing::TestRedisOptions()); }

  void Start(redis::Options redis_options) {
    redis_options_ = redis_options;
    server_.reset();
    service_.reset();
    redis_options.socket_timeout = store_timeout_;
    redis_options.connect_timeout = std::chrono::milliseconds(500);
    keys_ = std::make_unique<KeySpace>(testing::UniquePrefix("ingress"), kShards);
    registry_ = std::make_unique<prometheus::Registry>();
    metrics_ = std::make_unique<IngressMetrics>(*registry_);
    service_ = std::make_unique<WebhookService>(WebhookOptions{kSecret, "verify-me", false, max_body_bytes_}, *metrics_,
                                                WallClockMs);
    auto started = WebhookServer::Start(server_options_, *service_,
                                        {redis_options, *keys_, dedupe_ttl_, legacy_marks_before_ms_}, registry_.get());
    ASSERT_TRUE(started.ok()) << started.error().message;
    server_ = std::move(*started);
    url_ = "http://127.0.0.1:" + std::to_string(server_->port()) + "/webhook";
  }

  void TearDown() override { server_.reset(); }

  // Starts ingress on a throwaway Redis of its own, for tests that stall it or drop its
  // connections; that Redis lives until the test ends. Returns how to reach it.
  redis::Options StartOnPrivateRedis(const std::string& tag, const std::vector<std::string>& extra_args = {}) {
    const int port = testing::FreePort();
    private_redis_ = testing::StartPrivateRedis(port, testing::MakeTempDir(tag), extra_args);
    redis::Options options;
    options.port = port;
    Start(options);
    return options;
  }

  Result<http::Response> PostSigned(const std::string& body) {
    return http_.Post(url_, body,
                      {"Content-Type: application/json; charset=utf-8",
                       "X-Hub-Signature-256: sha256=" + HmacSha256Hex(kSecret, body)});
  }

  // Every event in every inbound stream of this test's prefix (in the Redis ingress uses), by shard.
  std::map<int, std::vector<katy::v1::InboundEvent>> Stored() {
    redis::Client client(redis_options_);
    std::map<int, std::vector<katy::v1::InboundEvent>> out;
    for (int shard = 0; shard < kShards; ++shard) {
      auto range = client.Command({"XRANGE", keys_->InStream(shard), "-", "+"});
      EXPECT_TRUE(range.ok());
      for (const auto& entry : redis::ParseEntries(keys_->InStream(shard), *range)) {
        katy::v1::InboundEvent event;
        EXPECT_TRUE(event.ParseFromString(*entry.Field("pb")));
        out[shard].push_back(event);
      }
    }
    return out;
  }

  // Sends `request` on a connection of its own; what came back before the server closed it.
  std::string Exchange(const std::string& request) {
    RawClient client(server_->port());
    EXPECT_TRUE(client.Send(request));
    return client.ReadUntilClosed();
  }

  size_t StoredCount() {
    size_t n = 0;
    for (const auto& [shard, events] : Stored()) n += events.size();
    return n;
  }

  // katy_ingress_rejections_total{reason=...}, read from the family itself.
  double Rejections(const std::string& reason) { return metrics_->rejections.Add({{"reason", reason}}).Value(); }

  // What Start() gives the server; a test may change it and Start() again.
  size_t max_body_bytes_ = 64 * 1024;
  std::chrono::milliseconds store_timeout_{1000};
  std::chrono::seconds dedupe_ttl_{60};
  int64_t legacy_marks_before_ms_ = 0;
  ServerOptions server_options_{{"127.0.0.1", 0}, 2, 64 * 1024, std::chrono::milliseconds(2000)};
  redis::Options redis_options_;
  std::unique_ptr<testing::Process> private_redis_;
  std::unique_ptr<KeySpace> keys_;
  std::unique_ptr<prometheus::Registry> registry_;
  std::unique_ptr<IngressMetrics> metrics_;
  std::unique_ptr<WebhookService> service_;
  std::unique_ptr<WebhookServer> server_;
  std::string url_;
  http::Client http_;
};

TEST_F(IngressServerTest, EveryFixtureIsEnqueuedOnceEvenWhenReplayed) {
  // Events per fixture; every file in tests/fixtures/webhooks must be here, so a new fixture
  // cannot be left out of this test unnoticed.
  const std::map<std::string, size_t> expected = {{"text_message.json", 1},
                                                  {"quick_reply.json", 1},
                                                  {"postback_get_started.json", 1},
                                                  {"batched.json", 5},
                                                  {"echo.json", 1},
                                                  {"delivery_read.json", 2},
                                                  {"reaction.json", 1},
                                                  {"standby.json", 1},
                                                  {"policy_enforcement.json", 1},
                                                  {"unicode_escaped.json", 1},
                                                  {"attachments.json", 1},
                                                  {"user_ref.json", 1},
                                                  {"string_timestamps.json", 1},
                                                  {"message_edit.json", 1},
                                                  {"unknown_event_kind.json", 1},
                                                  {"handover.json", 3},
                                                  {"instagram.json", 3},
                                                  {"instagram_kinds.json", 11},
                                                  {"optin.json", 1},
                                                  {"referral.json", 1},
                                                  {"feed_comment.json", 1},
                                                  {"feed_visitor_post.json", 1},
                                                  {"feed_comment_edit.json", 1},
                                                  {"feed_comment_remove.json", 1},
                                                  {"feed_own_comment.json", 1},
                                                  {"feed_other_changes.json", 2},
                                                  {"mixed_messaging_and_changes.json", 2},
                                                  {"instagram_comment.json", 1},
                                                  {"instagram_live_comment.json", 1}};
  std::vector<std::string> listed;
  for (const auto& [name, count] : expected) listed.push_back(name);
  ASSERT_EQ(listed, testing::FixtureNames());
  size_t total = 0;
  for (const auto& [name, count] : expected) {
    auto response = PostSigned(testing::ReadFixture(name));
    ASSERT_TRUE(response.ok());
    EXPECT_EQ(response->status, 200) << name << ": " << response->body;
    EXPECT_EQ(response->body, "EVENT_RECEIVED");
    total += count;
    EXPECT_EQ(StoredCount(), total) << name;
  }
  for (const auto& [name, count] : expected) {
    auto response = PostSigned(testing::ReadFixture(name));
    ASSERT_TRUE(response.ok());
    EXPECT_EQ(response->status, 200) << name;
  }
  EXPECT_EQ(StoredCount(), total) << "a replay enqueued something again";
  EXPECT_GT(metrics_->events.Add({{"kind", "message"}, {"result", "duplicate"}}).Value(), 0);
}

// One request's events of several shards, each on its own shard's stream. The batch is the
// second request: the first found out that Redis is one node, not a cluster, so the batch's
// shards share one script call, each stream named before its events (PlanEnqueue).
TEST_F(IngressServerTest, BatchedEventsLandOnTheirConversationsShards) {
  ASSERT_EQ(PostSigned(testing::ReadFixture("text_message.json"))->status, 200);
  ASSERT_EQ(PostSigned(testing::ReadFixture("batched.json"))->status, 200);
  size_t seen = 0;
  for (const auto& [shard, events] : Stored()) {
    for (const auto& event : events) {
      EXPECT_EQ(shard, ShardOf(event.page_id(), event.user_id(), kShards));
      ++seen;
    }
  }
  EXPECT_EQ(seen, 1u + 5u);
}

TEST_F(IngressServerTest, SameMidWithNewTimeIsADuplicate) {
  std::string body = testing::ReadFixture("text_message.json");
  ASSERT_EQ(PostSigned(body)->status, 200);
  body.replace(body.find("\"time\":1764230400000"), 20, "\"time\":1764230499999");
  ASSERT_EQ(PostSigned(body)->status, 200);
  EXPECT_EQ(StoredCount(), 1u);
}

// A text message webhook from user `psid` with message id `mid` at `timestamp_ms`.
std::string MessageAt(const std::string& psid, const std::string& mid, int64_t timestamp_ms) {
  return R"({"object":"page","entry":[{"id":"1045","time":)" + std::to_string(timestamp_ms) +
         R"(,"messaging":[{"sender":{"id":")" + psid + R"("},"recipient":{"id":"1045"},"timestamp":)" +
         std::to_string(timestamp_ms) + R"(,"message":{"mid":")" + mid + R"(","text":"hi"}}]}]})";
}

// Marks live in buckets of the events' own timestamps, packed as integer sets: two events on
// either side of a bucket boundary land in two buckets, and their redeliveries, whenever they
// come, find them there; no event has a key of its own.
TEST_F(IngressServerTest, ARedeliveryFindsItsMarkInItsEventsBucketAcrossTheBoundary) {
  // A boundary buckets ago: every delivery here arrives in a later bucket than both events.
  const int64_t boundary = (WallClockMs() / kSeenBucketMs - 2) * kSeenBucketMs;
  const std::string before = MessageAt("71", "m_before", boundary - 1);
  const std::string after = MessageAt("71", "m_after", boundary);
  ASSERT_EQ(PostSigned(before)->status, 200);
  ASSERT_EQ(PostSigned(after)->status, 200);
  ASSERT_EQ(PostSigned(after)->status, 200);
  ASSERT_EQ(PostSigned(before)->status, 200);
  EXPECT_EQ(StoredCount(), 2u);
  redis::Client admin(redis_options_);
  const int shard = ShardOf("1045", "71", kShards);
  for (const int64_t bucket : {boundary / kSeenBucketMs - 1, boundary / kSeenBucketMs}) {
    const std::string key = keys_->SeenBucket(shard, bucket);
    EXPECT_EQ(admin.Command({"SCARD", key})->integer, 1) << key;
    EXPECT_EQ(admin.Command({"OBJECT", "ENCODING", key})->str, "intset") << key;
    EXPECT_GT(admin.Command({"TTL", key})->integer, 0) << key;
  }
  EXPECT_EQ(admin.Command({"KEYS", keys_->prefix() + ":*seen:*"})->elements.size(), 0u);
}

// A bucket expires with its marks: an event redelivered after that is taken again (as with
// a mark of its own, past KATY_DEDUPE_TTL_S).
TEST_F(IngressServerTest, AnExpiredBucketIsGoneAndItsEventsAreTakenAgain) {
  dedupe_ttl_ = std::chrono::seconds(1);
  Start(redis_options_);
  const int64_t now = WallClockMs();
  const std::string old_event = MessageAt("72", "m_old", now - 3 * kSeenBucketMs);
  ASSERT_EQ(PostSigned(old_event)->status, 200);
  ASSERT_EQ(PostSigned(old_event)->status, 200);
  EXPECT_EQ(StoredCount(), 1u) << "a duplicate while the bucket lives";
  redis::Client admin(redis_options_);
  const std::string bucket =
      keys_->SeenBucket(ShardOf("1045", "72", kShards), (now - 3 * kSeenBucketMs) / kSeenBucketMs);
  EXPECT_TRUE(testing::WaitFor(
      [&] {
        return admin.Command({"EXISTS", bucket})->integer == 0;
      },
      std::chrono::seconds(5)));
  ASSERT_EQ(PostSigned(old_event)->status, 200);
  EXPECT_EQ(StoredCount(), 2u);
}

// After an upgrade from marks of their own: an event from before this ingress started whose
// old mark is still there is a duplicate; a new event never looks for one.
TEST_F(IngressServerTest, MarksOfTheEarlierLayoutAreHonouredForEventsBeforeTheStart) {
  legacy_marks_before_ms_ = WallClockMs();
  Start(redis_options_);
  redis::Client admin(redis_options_);
  const int64_t earlier = legacy_marks_before_ms_ - 60 * 1000;
  const int shard = ShardOf("1045", "73", kShards);
  ASSERT_TRUE(admin.Command({"SET", keys_->SeenPrefix(shard) + "1045:msg:m_upgraded", "1", "EX", "60"}).ok());
  ASSERT_EQ(PostSigned(MessageAt("73", "m_upgraded", earlier))->status, 200);
  EXPECT_EQ(StoredCount(), 0u) << "the old mark was not honoured";
  ASSERT_EQ(PostSigned(MessageAt("73", "m_unmarked", earlier))->status, 200);
  EXPECT_EQ(StoredCount(), 1u);
}

// The enqueue script marks an event before its XADD; an XADD that fails must take the mark
// back, or Meta's retry would be answered 200 as a duplicate of an event never stored.
TEST_F(IngressServerTest, EventRedisCannotAppendLeavesNoMarkAndItsRetryIsStored) {
  redis::Client admin(redis_options_);
  for (int shard = 0; shard < kShards; ++shard) {  // every inbound stream key holds a string
    ASSERT_TRUE(admin.Command({"SET", keys_->InStream(shard), "not a stream"}).ok());
  }
  const std::string body = testing::ReadFixture("batched.json");
  auto refused = PostSigned(body);
  ASSERT_TRUE(refused.ok());
  EXPECT_EQ(refused->status, 503);
  auto marks = admin.Command({"KEYS", keys_->prefix() + ":*seen*"});
  ASSERT_TRUE(marks.ok());
  EXPECT_EQ(marks->elements.size(), 0u) << "a mark outlived its failed XADD";

  for (int shard = 0; shard < kShards; ++shard) ASSERT_TRUE(admin.Command({"DEL", keys_->InStream(shard)}).ok());
  EXPECT_EQ(PostSigned(body)->status, 200);
  EXPECT_EQ(StoredCount(), 5u);
}

TEST_F(IngressServerTest, BadInputGetsItsAnswerAndEnqueuesNothing) {
  const std::string body = testing::ReadFixture("text_message.json");
  EXPECT_EQ(http_.Post(url_, body)->status, 403);
  EXPECT_EQ(http_.Post(url_, body, {"X-Hub-Signature-256: sha256=" + std::string(64, 'a')})->status, 403);
  EXPECT_EQ(http_.Post(url_, body, {"X-Hub-Signature-256: garbage"})->status, 403);
  EXPECT_EQ(PostSigned("{\"object\":\"page\",\"entry\":[")->status, 400);
  EXPECT_EQ(PostSigned("{\"object\":\"user\",\"entry\":[]}")->status, 400);
  EXPECT_EQ(PostSigned("[]")->status, 400);
  EXPECT_EQ(
      PostSigned(
          std::string(
              "{\"object\":\"page\",\"entry\":[{\"id\":\"1\",\"messaging\":[{\"sender\":{\"id\":\"\xc3\x28\"}}]}]}"))
          ->status,
      400);
  EXPECT_EQ(
      PostSigned("{\"object\":\"page\",\"entry\":" + std::string(5000, '[') + std::string(5000, ']') + "}")->status,
      400);
  auto too_big = PostSigned(std::string(100 * 1024, ' ') + body);
  ASSERT_TRUE(too_big.ok());
  EXPECT_EQ(too_big->status, 413);
  EXPECT_EQ(StoredCount(), 0u);
  // The connection that got 413 was closed (its body never read); the client's next request,
  // on a new connection, is served normally.
  EXPECT_EQ(http_.Get(url_.substr(0, url_.size() - 8) + "/other")->status, 404);
  EXPECT_EQ(Rejections("signature_missing"), 1);
  EXPECT_GE(Rejections("invalid_json"), 1);
}

TEST_F(IngressServerTest, HandshakeAndKeepAlive) {
  auto ok = http_.Get(url_ + "?hub.mode=subscribe&hub.verify_token=verify-me&hub.challenge=424242");
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ(ok->status, 200);
  EXPECT_EQ(ok->body, "424242");
  EXPECT_EQ(ok->Header("connection"), "keep-alive");
  EXPECT_EQ(http_.Get(url_ + "?hub.mode=subscribe&hub.verify_token=nope&hub.challenge=1")->status, 403);
}

TEST_F(IngressServerTest, RedisOutageAnswers503QuicklyAndRecoversByItself) {
  // A private Redis this test can stop and restart under the same running ingress.
  const int port = testing::FreePort();
  const std::string dir = testing::MakeTempDir("outage");
  auto redis_process = testing::StartPrivateRedis(port, dir);
  redis::Options options;
  options.port = port;
  Start(options);
  ASSERT_EQ(PostSigned(testing::ReadFixture("text_message.json"))->status, 200);

  redis_process->Kill();
  const auto started = std::chrono::steady_clock::now();
  auto response = PostSigned(testing::ReadFixture("quick_reply.json"));
  const auto took = std::chrono::steady_clock::now() - started;
  ASSERT_TRUE(response.ok());
  EXPECT_EQ(response->status, 503);
  EXPECT_EQ(response->Header("retry-after"), "1");
  EXPECT_LT(took, std::chrono::seconds(2));

  // Redis returns (empty: it kept no data); Meta's retry of the same body is accepted.
  redis_process = testing::StartPrivateRedis(port, dir);
  auto retried = PostSigned(testing::ReadFixture("quick_reply.json"));
  ASSERT_TRUE(retried.ok());
  EXPECT_EQ(retried->status, 200);
  redis::Client check(options);
  const std::string stream = keys_->InStream(ShardOf("104560000000001", "7100000000000001", kShards));
  EXPECT_EQ(check.Command({"XLEN", stream})->integer, 1);
}

TEST_F(IngressServerTest, StalledClientNeitherBlocksOthersNorStaysForever) {
  // A client that sends half a request and stops.
  RawClient stalled(server_->port(), std::chrono::seconds(6));
  ASSERT_TRUE(stalled.connected());
  ASSERT_TRUE(stalled.Send("POST /webhook HTTP/1.1\r\nHost: x\r\nContent-Length: 500\r\n\r\n{\"obj"));

  // Everyone else is served meanwhile, on both worker threads.
  for (int i = 0; i < 4; ++i) {
    http::Client other;
    auto response = other.Get(url_ + "?hub.mode=subscribe&hub.verify_token=verify-me&hub.challenge=1");
    ASSERT_TRUE(response.ok());
    EXPECT_EQ(response->status, 200);
  }
  // The read timeout (2 s here) ends the stalled request: a 408, then the connection closes.
  const std::string answer = stalled.ReadUntilClosed();
  EXPECT_TRUE(stalled.closed()) << "the stalled connection was still open after 6 s";
  EXPECT_EQ(answer.rfind("HTTP/1.1 408 ", 0), 0u) << answer;
  EXPECT_EQ(StoredCount(), 0u);
}

TEST_F(IngressServerTest, SlowRedisAnswers503WithinTheTimeout) {
  // Ingress's Redis timeout is 1 s; Redis holds the write until the test lets it go, so an
  // answer at all, while it is held, is the timeout at work.
  const redis::Options options = StartOnPrivateRedis("slow");
  ASSERT_EQ(PostSigned(testing::ReadFixture("text_message.json"))->status, 200);

  PauseWrites(options);
  auto response = PostSigned(testing::ReadFixture("quick_reply.json"));
  ResumeWrites(options);
  ASSERT_TRUE(response.ok());
  EXPECT_EQ(response->status, 503);
  EXPECT_EQ(Rejections("storage_timeout"), 1);
  // Redis is responsive again: the retry is stored once, even though the timed-out attempt
  // may have been stored too (its dedupe mark makes the retry a duplicate, not a second copy).
  EXPECT_EQ(PostSigned(testing::ReadFixture("quick_reply.json"))->status, 200);
  redis::Client check(options);
  const std::string stream = keys_->InStream(ShardOf("104560000000001", "7100000000000001", kShards));
  EXPECT_EQ(check.Command({"XLEN", stream})->integer, 2);
}

TEST_F(IngressServerTest, ShutdownAnswersTheRequestsItHasRead) {
  store_timeout_ = std::chrono::seconds(10);  // the held write must not time out meanwhile
  const redis::Options options = StartOnPrivateRedis("drain");
  ASSERT_EQ(PostSigned(testing::ReadFixture("text_message.json"))->status, 200);

  // A webhook is read and its write is held in Redis; then ingress is told to stop.
  PauseWrites(options);
  Result<http::Response> response = Error{ErrorCode::kIo, "not sent yet"};
  std::thread poster([&] { response = PostSigned(testing::ReadFixture("quick_reply.json")); });
  ASSERT_TRUE(testing::WaitFor([&] { return BlockedClients(options) >= 1; }, std::chrono::seconds(5)));
  std::thread stopper([&] { server_->Shutdown(); });  // returns once the request in flight has its answer
  // Only once the server is stopping is the held write let go.
  EXPECT_TRUE(testing::WaitFor([&] { return server_->StoppingForTest(); }, std::chrono::seconds(5)));
  ResumeWrites(options);
  stopper.join();
  poster.join();
  ASSERT_TRUE(response.ok()) << response.error().message;
  EXPECT_EQ(response->status, 200);
  EXPECT_EQ(response->Header("connection"), "close");
  redis::Client check(options);
  const std::string stream = keys_->InStream(ShardOf("104560000000001", "7100000000000001", kShards));
  EXPECT_EQ(check.Command({"XLEN", stream})->integer, 2);
}

TEST_F(IngressServerTest, ClientThatNeverReadsItsAnswersIsDisconnected) {
  // A client pipelining requests without ever reading: its answers fill the socket, ingress
  // stops reading from it, and after the read timeout (2 s here) closes it.
  const int greedy = ConnectLoopback(server_->port(), 4096);
  ASSERT_GE(greedy, 0);
  const std::string get =
      "GET /webhook?hub.mode=subscribe&hub.verify_token=verify-me&hub.challenge=" + std::string(200, 'c') +
      " HTTP/1.1\r\nHost: x\r\n\r\n";
  std::string burst;
  for (int i = 0; i < 200; ++i) burst += get;
  size_t sent = 0;
  const auto started = std::chrono::steady_clock::now();
  // Send until the connection is closed under us (or 8 s pass): never read.
  bool closed = false;
  while (!closed && std::chrono::steady_clock::now() - started < std::chrono::seconds(8)) {
    const ssize_t n = send(greedy, burst.data() + sent % burst.size(), burst.size() - sent % burst.size(),
                           MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n > 0) {
      sent += static_cast<size_t>(n);
    } else if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
      closed = true;  // EPIPE or ECONNRESET: ingress closed it
    } else {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  }
  const auto took = std::chrono::steady_clock::now() - started;
  close(greedy);
  EXPECT_TRUE(closed) << "still open after 8 s; " << sent << " bytes sent";
  EXPECT_GE(took, std::chrono::milliseconds(1500));  // it was given the read timeout first
  // Everyone else is served meanwhile and after.
  http::Client other;
  auto response = other.Get(url_ + "?hub.mode=subscribe&hub.verify_token=verify-me&hub.challenge=1");
  ASSERT_TRUE(response.ok());
  EXPECT_EQ(response->status, 200);
}

TEST_F(IngressServerTest, PipelinedRequestsAreAnsweredInOrder) {
  RawClient client(server_->port());
  ASSERT_TRUE(client.connected());
  // Three requests in one write: a webhook (answered after Redis), then two answered at once.
  ASSERT_TRUE(client.Send(SignedPost(testing::ReadFixture("text_message.json")) +
                          "GET /elsewhere HTTP/1.1\r\nHost: x\r\n\r\n"
                          "GET /webhook?hub.mode=subscribe&hub.verify_token=verify-me&hub.challenge=c3 HTTP/1.1\r\n"
                          "Host: x\r\nConnection: close\r\n\r\n"));
  const std::string answers = client.ReadUntilClosed();
  EXPECT_TRUE(client.closed());
  const size_t first = answers.find("HTTP/1.1 200 OK");
  const size_t second = answers.find("HTTP/1.1 404 Not Found");
  const size_t third = answers.find("HTTP/1.1 200 OK", second);
  ASSERT_NE(first, std::string::npos) << answers;
  ASSERT_NE(second, std::string::npos) << answers;
  ASSERT_NE(third, std::string::npos) << answers;
  EXPECT_LT(first, second);
  EXPECT_NE(answers.find("EVENT_RECEIVED", first), std::string::npos);
  EXPECT_EQ(answers.substr(answers.size() - 2), "c3");
  EXPECT_NE(answers.find("Connection: close", third), std::string::npos);
  EXPECT_EQ(StoredCount(), 1u);
}

TEST_F(IngressServerTest, OversizedBodyIsRefusedBeforeItIsSent) {
  RawClient client(server_->port());
  ASSERT_TRUE(client.connected());
  // Only the head: the 413 must come without the server waiting for 100 kB it will not read.
  ASSERT_TRUE(client.Send("POST /webhook HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n{\"object\""));
  const std::string answer = client.ReadUntilClosed();
  EXPECT_EQ(answer.rfind("HTTP/1.1 413 ", 0), 0u) << answer;
  EXPECT_TRUE(client.closed());
  EXPECT_EQ(Rejections("too_large"), 1);
}

TEST_F(IngressServerTest, ExpectContinueGetsTheGoAheadThenTheAnswer) {
  RawClient client(server_->port());
  ASSERT_TRUE(client.connected());
  const std::string body = testing::ReadFixture("text_message.json");
  const std::string request = SignedPost(body, "Expect: 100-continue\r\nConnection: close\r\n");
  const std::string head = request.substr(0, request.size() - body.size());
  ASSERT_TRUE(client.Send(head));
  // The go-ahead comes before any body is sent, and alone.
  EXPECT_EQ(client.ReadUntil("\r\n\r\n"), "HTTP/1.1 100 Continue\r\n\r\n");
  ASSERT_TRUE(client.Send(body));
  const std::string answer = client.ReadUntilClosed();
  EXPECT_EQ(answer.rfind("HTTP/1.1 200 OK", 0), 0u) << answer;
  EXPECT_EQ(StoredCount(), 1u);
}

TEST_F(IngressServerTest, ChunkedAndMalformedRequestsGetAClearAnswer) {
  EXPECT_EQ(Exchange("POST /webhook HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n")
                .rfind("HTTP/1.1 411 ", 0),
            0u);
  EXPECT_EQ(Exchange("NOT HTTP AT ALL\r\n\r\n").rfind("HTTP/1.1 400 ", 0), 0u);
  const std::string not_allowed = Exchange("DELETE /webhook HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  EXPECT_EQ(not_allowed.rfind("HTTP/1.1 405 ", 0), 0u);
  EXPECT_NE(not_allowed.find("\r\nAllow: GET, POST\r\n"), std::string::npos) << not_allowed;
  // RFC 9112 §3.2: an HTTP/1.1 request without Host, or any with two, is refused.
  EXPECT_EQ(Exchange("GET /webhook HTTP/1.1\r\n\r\n").rfind("HTTP/1.1 400 ", 0), 0u);
  EXPECT_EQ(Exchange("GET /webhook HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n").rfind("HTTP/1.1 400 ", 0), 0u);
  EXPECT_EQ(StoredCount(), 0u);
}

TEST_F(IngressServerTest, ScriptFlushedFromRedisIsLoadedAgain) {
  // A Redis of its own: a flush on the shared one fails the scripts of tests running beside it.
  const redis::Options redis = StartOnPrivateRedis("script-flush");
  ASSERT_EQ(PostSigned(testing::ReadFixture("text_message.json"))->status, 200);
  redis::Client admin(redis);
  ASSERT_TRUE(admin.Command({"SCRIPT", "FLUSH"}).ok());
  // The first webhook after the flush may be refused (503: Meta retries); the script is
  // loaded again and the retry is stored.
  const std::string body = testing::ReadFixture("quick_reply.json");
  auto first = PostSigned(body);
  ASSERT_TRUE(first.ok());
  if (first->status != 200) {
    EXPECT_EQ(first->status, 503);
    ASSERT_TRUE(testing::WaitFor([&] { return PostSigned(body)->status == 200; }, std::chrono::seconds(5)));
  }
  EXPECT_EQ(StoredCount(), 2u);
}

TEST_F(IngressServerTest, RedisPasswordAndDatabaseAreUsed) {
  const int port = testing::FreePort();
  auto redis_process = testing::StartPrivateRedis(port, testing::MakeTempDir("auth"), {"--requirepass", "s3cret"});
  redis::Options options;
  options.port = port;
  options.password = "wrong";
  Start(options);
  EXPECT_EQ(PostSigned(testing::ReadFixture("text_message.json"))->status, 503);

  options.password = "s3cret";
  options.db = 3;
  Start(options);
  ASSERT_EQ(PostSigned(testing::ReadFixture("text_message.json"))->status, 200);
  redis::Client check(options);
  const std::string stream = keys_->InStream(ShardOf("104560000000001", "7100000000000001", kShards));
  EXPECT_EQ(check.Command({"XLEN", stream})->integer, 1);
  options.db = 0;
  redis::Client db0(options);
  EXPECT_EQ(db0.Command({"XLEN", stream})->integer, 0);
}

// Clients that split, pipeline, abandon and retry their requests, against a Redis that keeps
// dropping ingress's connections (so batches fail after their script may have run). Whatever
// happens, every acknowledged event is stored exactly once, nothing half-sent or badly signed is
// stored, and nothing is ever stored twice. Seeds are fixed: a failure replays the same choices
// (the thread timing differs).
TEST_F(IngressServerTest, MisbehavingClientsAndADroppingRedisLoseAndDoubleNothing) {
  const redis::Options options = StartOnPrivateRedis("chaos");

  std::atomic<bool> clients_done{false};
  std::thread disruptor([&] {
    redis::Client admin(options);
    while (!clients_done) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
      // Fails while Redis restarts; the next round kills again.
      if (!admin.Command({"CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes"}).ok()) continue;
    }
  });

  struct Outcome {
    std::set<std::string> acknowledged;  // answered 200
    std::set<std::string> never_whole;   // cut off halfway, or badly signed
    int unexpected = 0;                  // an answer no well-behaved server gives here
    std::string first_unexpected;
  };
  constexpr int kClients = 6;
  constexpr int kRequestsEach = 120;
  std::vector<Outcome> outcomes(kClients);
  std::vector<std::thread> clients;
  for (int c = 0; c < kClients; ++c) {
    clients.emplace_back([&, c] {
      std::mt19937 random(static_cast<unsigned>(7919 * (c + 1)));
      ChaosConnection connection(server_->port());
      Outcome& out = outcomes[static_cast<size_t>(c)];
      auto unexpected = [&](const std::string& what) {
        if (out.unexpected++ == 0) out.first_unexpected = what;
      };
      auto body_of = [&](const std::string& mid, int user) {
        return "{\"object\":\"page\",\"entry\":[{\"id\":\"104560000000001\",\"time\":1764230400000,"
               "\"messaging\":[{\"sender\":{\"id\":\"71" +
               std::to_string(100000 + user) +
               "\"},\"recipient\":{\"id\":\"104560000000001\"},\"timestamp\":1764230400000,"
               "\"message\":{\"mid\":\"" +
               mid + R"(","text":"chaos"}}]}]})";
      };
      std::vector<std::pair<std::string, std::string>> acknowledged_requests;  // mid, body
      // Sends the request until it is acknowledged, as Meta retries: after a 503 or a lost
      // connection, again.
      auto deliver = [&](const std::string& mid, const std::string& body) {
        for (int attempt = 0; attempt < 100; ++attempt) {
          if (!connection.Open()) continue;
          if (!connection.Write(SignedPost(body), 1 + static_cast<int>(random() % 4), random)) {
            connection.Close();
            continue;
          }
          const int status = connection.ReadStatus();
          if (status == 200) {
            out.acknowledged.insert(mid);
            acknowledged_requests.emplace_back(mid, body);
            return;
          }
          if (status == 503) std::this_thread::sleep_for(std::chrono::milliseconds(1));
          if (status == ChaosConnection::kGone || status == 503) continue;
          return unexpected(mid + " answered " + std::to_string(status));
        }
        unexpected(mid + " never acknowledged");
      };
      for (int i = 0; i < kRequestsEach; ++i) {
        const std::string mid = "m_chaos_" + std::to_string(c) + "_" + std::to_string(i);
        const std::string body = body_of(mid, static_cast<int>(random() % 40));
        const unsigned dice = random() % 100;
        if (dice < 55) {
          deliver(mid, body);
        } else if (dice < 70) {
          // Three requests in one write; each is answered in order, the refused ones retried.
          std::vector<std::pair<std::string, std::string>> batch = {{mid, body}};
          for (int k = 1; k < 3; ++k) {
            const std::string next = mid + "_p" + std::to_string(k);
            batch.emplace_back(next, body_of(next, static_cast<int>(random() % 40)));
          }
          std::string wire;
          for (const auto& [m, b] : batch) wire += SignedPost(b);
          if (!connection.Open() || !connection.Write(wire, 1 + static_cast<int>(random() % 3), random)) {
            connection.Close();
          }
          // Every answer of the batch is read before anything is sent again on the connection:
          // a retry sent earlier would have its answer read as the next pipelined request's.
          std::vector<std::pair<std::string, std::string>> refused;
          for (const auto& [m, b] : batch) {
            const int status = connection.ReadStatus();
            if (status == 200) {
              out.acknowledged.insert(m);
              acknowledged_requests.emplace_back(m, b);
            } else if (status == 503 || status == ChaosConnection::kGone) {
              refused.emplace_back(m, b);
            } else {
              unexpected(m + " (pipelined) answered " + std::to_string(status));
            }
          }
          for (const auto& [m, b] : refused) deliver(m, b);
        } else if (dice < 80) {
          // Sent whole, then gone before the answer: stored or not, but at most once.
          if (connection.Open()) connection.Write(SignedPost(body), 1, random);
          connection.Close();
        } else if (dice < 90) {
          // Half a request, then gone: never stored.
          const std::string request = SignedPost(body);
          if (connection.Open()) connection.Write(request.substr(0, request.size() / 2), 2, random);
          connection.Close();
          out.never_whole.insert(mid);
        } else if (dice < 95) {
          // Signed with another secret: 403, never stored.
          const std::string forged = "POST /webhook HTTP/1.1\r\nHost: x\r\nX-Hub-Signature-256: sha256=" +
                                     HmacSha256Hex("not-the-secret", body) +
                                     "\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
          out.never_whole.insert(mid);
          if (!connection.Open() || !connection.Write(forged, 1, random)) continue;
          const int status = connection.ReadStatus();
          if (status != 403 && status != ChaosConnection::kGone) {
            unexpected(mid + " (forged) answered " + std::to_string(status));
          }
        } else if (!acknowledged_requests.empty()) {
          // Meta's retry of something already acknowledged: 200 again, stored once all the same.
          const auto [again, again_body] = acknowledged_requests[random() % acknowledged_requests.size()];
          deliver(again, again_body);
        }
      }
    });
  }
  for (auto& client : clients) client.join();
  clients_done = true;
  disruptor.join();

  std::map<std::string, int> stored;  // mid -> times stored
  for (const auto& [shard, events] : Stored()) {
    for (const auto& event : events) ++stored[event.mid()];
  }
  size_t acknowledged = 0;
  for (const Outcome& out : outcomes) {
    EXPECT_EQ(out.unexpected, 0) << out.first_unexpected;
    acknowledged += out.acknowledged.size();
    for (const std::string& mid : out.acknowledged) EXPECT_EQ(stored[mid], 1) << mid << " acknowledged";
    for (const std::string& mid : out.never_whole) EXPECT_EQ(stored.count(mid), 0u) << mid << " never sent whole";
  }
  for (const auto& [mid, times] : stored) EXPECT_EQ(times, 1) << mid << " stored more than once";
  // Most requests were delivered, so the checks above had something to check.
  EXPECT_GT(acknowledged, static_cast<size_t>(kClients * kRequestsEach) / 2);
  // Redis's dropped connections did fail batches, so retries of partly stored work were tested.
  EXPECT_GT(metrics_->requests.Add({{"status", "503"}}).Value(), 0);
  // No client here pauses for the read timeout: a 408 would be a connection whose end went
  // unnoticed until then (the bytes and the FIN of a client that gave up, read as one).
  EXPECT_EQ(metrics_->requests.Add({{"status", "408"}}).Value(), 0);
  // And ingress still serves.
  http::Client after;
  EXPECT_EQ(after.Get(url_ + "?hub.mode=subscribe&hub.verify_token=verify-me&hub.challenge=1")->status, 200);
}

// A signed webhook body of `count` text messages from `users` users of page 1045, unique
// per `tag`.
std::string ManyMessages(int count, int users, const std::string& tag) {
  std::string items;
  for (int i = 0; i < count; ++i) {
    if (i > 0) items += ',';
    items += R"({"sender":{"id":"u)" + std::to_string(i % users) + R"("},"recipient":{"id":"1045"},"timestamp":)" +
             std::to_string(1700000000000 + i) + R"(,"message":{"mid":"m_)" + tag + "_" + std::to_string(i) +
             R"(","text":"hi"}})";
  }
  return R"({"object":"page","entry":[{"id":"1045","time":1700000000000,"messaging":[)" + items + "]}]}";
}

TEST_F(IngressServerTest, StreamedEmptyLinesAreRefusedAtTheHeadLimit) {
  // Before: leading CRLFs were skipped without bound and buffered until the read timeout.
  RawClient client(server_->port());
  std::string crlfs;
  for (int i = 0; i < 16 * 1024; ++i) crlfs += "\r\n";  // 32 KiB, twice the head limit
  client.Send(crlfs);                                   // may fail part way: ingress answers and closes at the limit
  const std::string answer = client.ReadUntilClosed();
  EXPECT_EQ(answer.rfind("HTTP/1.1 431 ", 0), 0u) << answer;
  EXPECT_TRUE(client.closed());
}

TEST_F(IngressServerTest, ConnectionsOverTheLimitGet503AndSilentOnesAreClosedSoon) {
  server_options_.max_connections = 4;
  server_options_.read_timeout = std::chrono::milliseconds(1000);
  Start(redis_options_);
  std::vector<std::unique_ptr<RawClient>> held;
  for (int i = 0; i < 4; ++i) {
    held.push_back(std::make_unique<RawClient>(server_->port()));
    ASSERT_TRUE(held.back()->connected());
  }
  // The loops count a connection once they accept it: wait for all four.
  for (int i = 0; i < 100 && server_->connections() < 4; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  ASSERT_EQ(server_->connections(), 4u);
  RawClient extra(server_->port());
  const std::string refused = extra.ReadUntilClosed();
  EXPECT_EQ(refused.rfind("HTTP/1.1 503 ", 0), 0u) << refused;
  EXPECT_NE(refused.find("\r\nRetry-After: 1\r\n"), std::string::npos) << refused;
  EXPECT_TRUE(extra.closed());
  // The held ones never sent a byte: each is closed after the first-byte (read) timeout, not
  // the 75 s keep-alive idle time (ReadUntilClosed gives up after 5 s).
  for (auto& client : held) {
    EXPECT_EQ(client->ReadUntilClosed(), "");
    EXPECT_TRUE(client->closed());
  }
  // Their slots are free again.
  for (int i = 0; i < 100 && server_->connections() > 0; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  EXPECT_EQ(PostSigned(testing::ReadFixture("text_message.json"))->status, 200);
}

TEST_F(IngressServerTest, MoreEventsThanMetaEverSendsAreRefusedAndNothingIsStored) {
  // Before: one signed body could carry any number of items (349k were stored from 1 MB).
  max_body_bytes_ = 1 << 20;
  server_options_.max_body_bytes = 1 << 20;
  Start(redis_options_);
  auto refused = PostSigned(ManyMessages(1001, 50, "over"));
  ASSERT_TRUE(refused.ok());
  EXPECT_EQ(refused->status, 413);
  EXPECT_NE(refused->body.find("more than 1000 events"), std::string::npos) << refused->body;
  EXPECT_EQ(StoredCount(), 0u);
  // Meta's largest batch is stored whole, in bounded script calls, in each user's order.
  auto accepted = PostSigned(ManyMessages(1000, 1, "max"));
  ASSERT_TRUE(accepted.ok());
  EXPECT_EQ(accepted->status, 200);
  const auto stored = Stored();
  ASSERT_EQ(stored.size(), 1u);
  const auto& events = stored.begin()->second;
  ASSERT_EQ(events.size(), 1000u);
  for (size_t i = 0; i < events.size(); ++i) EXPECT_EQ(events[i].mid(), "m_max_" + std::to_string(i));
}

TEST_F(IngressServerTest, BigRequestsTogetherNeitherBlockRedisNorFailSmallOnes) {
  // Before: concurrent big requests became one batch whose replies came after the store's
  // timeout, and the small requests batched with them got 503 although they were stored.
  // 48 requests of 1,000 events at once are more than a second of Redis's work; the store
  // timeout here is 300 ms. Each batch now waits only for what the in-flight limit lets ahead
  // of it, so every request is stored and answered 200.
  max_body_bytes_ = 1 << 20;
  server_options_.max_body_bytes = 1 << 20;
  store_timeout_ = std::chrono::milliseconds(300);
  Start(redis_options_);
  constexpr int kBigClients = 24;
  constexpr int kBigPerClient = 2;
  constexpr int kSmallClients = 4;
  constexpr int kSmallPerClient = 20;
  std::atomic<int> big_ok{0};
  std::atomic<int> small_ok{0};
  auto post = [&](http::Client& client, const std::string& body) {
    auto response = client.Post(url_, body, testing::SignedWebhookHeaders(kSecret, body));
    return response.ok() && response->status == 200;
  };
  std::vector<std::string> big_bodies;
  for (int i = 0; i < kBigClients * kBigPerClient; ++i)
    big_bodies.push_back(ManyMessages(1000, 100, "big" + std::to_string(i)));
  std::vector<std::thread> clients;
  for (int c = 0; c < kBigClients; ++c) {
    clients.emplace_back([&, c] {
      http::Client client;
      for (int i = 0; i < kBigPerClient; ++i) big_ok += post(client, big_bodies[c * kBigPerClient + i]) ? 1 : 0;
    });
  }
  for (int c = 0; c < kSmallClients; ++c) {
    clients.emplace_back([&, c] {
      http::Client client;
      for (int i = 0; i < kSmallPerClient; ++i) {
        small_ok += post(client, ManyMessages(1, 1, "small" + std::to_string(c) + "_" + std::to_string(i))) ? 1 : 0;
      }
    });
  }
  for (auto& t : clients) t.join();
  EXPECT_EQ(big_ok.load(), kBigClients * kBigPerClient);
  EXPECT_EQ(small_ok.load(), kSmallClients * kSmallPerClient);
  EXPECT_EQ(StoredCount(), static_cast<size_t>(kBigClients * kBigPerClient * 1000 + kSmallClients * kSmallPerClient));
}

TEST_F(IngressServerTest, OnlyAPostToTheWebhookIsToldToContinue) {
  // A request refused on its head is answered at once; its body is never asked for.
  const std::string elsewhere =
      Exchange("POST /elsewhere HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 10\r\n\r\n");
  EXPECT_EQ(elsewhere.rfind("HTTP/1.1 404 ", 0), 0u) << elsewhere;
  EXPECT_EQ(elsewhere.find("100 Continue"), std::string::npos) << elsewhere;
  const std::string put =
      Exchange("PUT /webhook HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 10\r\n\r\n");
  EXPECT_EQ(put.rfind("HTTP/1.1 405 ", 0), 0u) << put;
  EXPECT_NE(put.find("\r\nAllow: GET, POST\r\n"), std::string::npos) << put;
}

}  // namespace
}  // namespace katy::ingress
