// The asynchronous HTTP client against a real server that answers late without a thread per
// request (testing::LateHttpServer): many calls in flight on one loop
// thread, connections bounded per host, timeouts, a server that hangs up mid-answer, an answer
// too large, and a client destroyed with calls in flight.
#include "common/http/async_client.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <condition_variable>
#include <fstream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>

#include "tests/support/test_support.h"

namespace katy::http {
namespace {

// Collects completions from the loop thread; Wait blocks until `n` arrived.
class Outcomes {
 public:
  Completion Add(const std::string& name) {
    return [this, name](Result<Response> result) {
      std::lock_guard lock(mutex_);
      results_.emplace(name, std::move(result));
      changed_.notify_all();
    };
  }
  bool Wait(size_t n, std::chrono::seconds timeout) {
    std::unique_lock lock(mutex_);
    return changed_.wait_for(lock, timeout, [&] { return results_.size() >= n; });
  }
  const std::multimap<std::string, Result<Response>>& results() const { return results_; }

 private:
  std::mutex mutex_;
  std::condition_variable changed_;
  std::multimap<std::string, Result<Response>> results_;
};

Request Get(const std::string& url, std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
  Request request;
  request.url = url;
  request.timeout = timeout;
  return request;
}

// 600 calls that each take 300 ms, on one loop thread: with room for 1,000 connections to the
// host they are all in flight at once; with 40, never more than 40, and every call still ends.
TEST(AsyncClientTest, ManyLateCallsAreInFlightAtOnceUpToTheHostsConnectionBound) {
  testing::LateHttpServer server;
  {
    Outcomes outcomes;  // outlives the client, whose end completes the calls left
    AsyncClient client({.max_connections_per_host = 1000, .max_total_connections = 1000});
    for (int i = 0; i < 600; ++i) client.Submit(Get(server.Url("/late?ms=300")), outcomes.Add("late"));
    ASSERT_TRUE(outcomes.Wait(600, std::chrono::seconds(60)));
    for (const auto& [name, result] : outcomes.results()) {
      ASSERT_TRUE(result.ok()) << result.error().message;
      EXPECT_EQ(result->status, 200);
      EXPECT_EQ(result->body, "late 300");
    }
    EXPECT_GE(server.Stats()["most_in_flight"].get<int>(), 500) << "the calls went a few at a time";
    EXPECT_EQ(client.in_flight(), 0u);
  }
  testing::LateHttpServer bounded_server;
  Outcomes outcomes;  // outlives the client, whose end completes the calls left
  AsyncClient bounded({.max_connections_per_host = 40, .max_total_connections = 1000});
  for (int i = 0; i < 200; ++i) bounded.Submit(Get(bounded_server.Url("/late?ms=100")), outcomes.Add("late"));
  ASSERT_TRUE(outcomes.Wait(200, std::chrono::seconds(60)));
  for (const auto& [name, result] : outcomes.results()) ASSERT_TRUE(result.ok()) << result.error().message;
  const auto stats = bounded_server.Stats();
  EXPECT_LE(stats["most_in_flight"].get<int>(), 40);
  EXPECT_GE(stats["most_in_flight"].get<int>(), 20) << "the bound was not used";
  // 40, the start-up probe of the port and this stats call.
  EXPECT_LE(stats["connections"].get<int>(), 42) << "connections were not reused";
}

// A call submitted while another to the same host is under way gets a connection of its own
// at once (HTTP/1.1 cannot share one): slow calls that come one by one overlap, they do not
// queue behind each other.
TEST(AsyncClientTest, CallsSubmittedOneAfterAnotherDoNotWaitForEachOther) {
  testing::LateHttpServer server;
  Outcomes outcomes;  // outlives the client, whose end completes the calls left
  AsyncClient client;
  for (int i = 1; i <= 4; ++i) {
    client.Submit(Get(server.Url("/late?ms=3000")), outcomes.Add("late"));
    ASSERT_TRUE(testing::WaitFor([&] { return server.Stats()["in_flight"].get<int>() == i; }, std::chrono::seconds(2)))
        << "call " << i << " waited for the one before it";
  }
  ASSERT_TRUE(outcomes.Wait(4, std::chrono::seconds(30)));
}

// Each call has its own deadline: one that times out fails alone, the others answer; a server
// hanging up mid-answer and an answer over the size limit fail with "io"; a POST's body arrives.
TEST(AsyncClientTest, EachCallEndsOnItsOwnTimeoutErrorOrAnswer) {
  testing::LateHttpServer server;
  Outcomes outcomes;  // outlives the client, whose end completes the calls left
  AsyncClient client({.max_response_bytes = 1000});
  // Answered in a minute unless its deadline ends it (libcurl would otherwise find the deadline
  // passed only when the answer came).
  client.Submit(Get(server.Url("/late?ms=60000"), std::chrono::milliseconds(200)), outcomes.Add("timeout"));
  for (int i = 0; i < 5; ++i) client.Submit(Get(server.Url("/late?ms=50")), outcomes.Add("ok"));
  client.Submit(Get(server.Url("/close")), outcomes.Add("closed"));
  client.Submit(Get(server.Url("/big?bytes=5000")), outcomes.Add("big"));
  client.Submit(Get(server.Url("/big?bytes=900")), outcomes.Add("small"));
  client.Submit(Get("http://127.0.0.1:" + std::to_string(testing::FreePort()) + "/"), outcomes.Add("refused"));
  Request post = Get(server.Url("/late?ms=10"));
  post.method = "POST";
  post.body = R"({"hello":"world"})";
  client.Submit(post, outcomes.Add("post"));
  ASSERT_TRUE(outcomes.Wait(11, std::chrono::seconds(30)));
  const auto& results = outcomes.results();
  const auto& timed_out = results.find("timeout")->second;
  ASSERT_FALSE(timed_out.ok());
  EXPECT_EQ(timed_out.error().code, ErrorCode::kTimeout);
  for (auto [it, end] = results.equal_range("ok"); it != end; ++it) {
    ASSERT_TRUE(it->second.ok()) << it->second.error().message;
    EXPECT_EQ(it->second->body, "late 50");
  }
  ASSERT_FALSE(results.find("closed")->second.ok());
  EXPECT_EQ(results.find("closed")->second.error().code, ErrorCode::kIo);
  ASSERT_FALSE(results.find("big")->second.ok());
  EXPECT_NE(results.find("big")->second.error().message.find("larger than 1000 bytes"), std::string::npos);
  ASSERT_TRUE(results.find("small")->second.ok());
  EXPECT_EQ(results.find("small")->second->body.size(), 900u);
  ASSERT_FALSE(results.find("refused")->second.ok());
  EXPECT_EQ(results.find("refused")->second.error().code, ErrorCode::kConnect);
  ASSERT_TRUE(results.find("post")->second.ok());
  EXPECT_EQ(results.find("post")->second->status, 200);
}

// The loop's timer is left armed for the earliest need libcurl told it (TimerChanged): a later
// call's own deadline, told while an earlier one was armed, must still end it once that earlier
// one has fired and its call is long done.
TEST(AsyncClientTest, ACallsDeadlineHoldsAfterAnEarlierDeadlineFiredForAnotherCall) {
  testing::LateHttpServer server;
  Outcomes outcomes;  // outlives the client, whose end completes the calls left
  AsyncClient client(AsyncClientOptions{});
  client.Submit(Get(server.Url("/late?ms=10"), std::chrono::milliseconds(300)), outcomes.Add("quick"));
  ASSERT_TRUE(outcomes.Wait(1, std::chrono::seconds(10)));
  // The server would answer in a minute: only the call's own deadline can end it sooner (libcurl
  // also finds a deadline passed when the answer comes, which would hide a timer never armed).
  client.Submit(Get(server.Url("/late?ms=60000"), std::chrono::milliseconds(1000)), outcomes.Add("late"));
  ASSERT_TRUE(outcomes.Wait(2, std::chrono::seconds(20))) << "the 1 s deadline was never acted on";
  const auto& late = outcomes.results().find("late")->second;
  ASSERT_FALSE(late.ok());
  EXPECT_EQ(late.error().code, ErrorCode::kTimeout);
}

// The loop keeps a finished call's easy handle for the next call: each call, one after
// another (so each takes the handle the one before gave back), arrives as it was made, with
// nothing of the call before it: not its method, body or headers.
TEST(AsyncClientTest, AHandleGivenBackCarriesNothingOfItsCallToTheNext) {
  testing::LateHttpServer server;
  Outcomes outcomes;  // outlives the client, whose end completes the calls left
  AsyncClient client;
  Request post = Get(server.Url("/echo"));
  post.method = "POST";
  post.body = R"({"first":true})";
  post.headers = {"X-Katy-Test: first"};
  Request remove = Get(server.Url("/echo"));
  remove.method = "DELETE";
  const std::vector<std::pair<std::string, Request>> calls = {
      {"1 post", post}, {"2 get", Get(server.Url("/echo"))}, {"3 delete", remove}, {"4 get", Get(server.Url("/echo"))}};
  for (size_t i = 0; i < calls.size(); ++i) {
    client.Submit(calls[i].second, outcomes.Add(calls[i].first));
    ASSERT_TRUE(outcomes.Wait(i + 1, std::chrono::seconds(10)));
  }
  std::map<std::string, nlohmann::json> seen;
  for (const auto& [name, result] : outcomes.results()) {
    ASSERT_TRUE(result.ok()) << name << ": " << result.error().message;
    seen[name] = nlohmann::json::parse(result->body);
  }
  EXPECT_EQ(seen["1 post"]["method"], "POST");
  EXPECT_EQ(seen["1 post"]["body"], R"({"first":true})");
  EXPECT_EQ(seen["1 post"]["headers"]["x-katy-test"], "first");
  for (const char* get : {"2 get", "4 get"}) {
    EXPECT_EQ(seen[get]["method"], "GET") << get;
    EXPECT_EQ(seen[get]["body"], "") << get;
    EXPECT_FALSE(seen[get]["headers"].contains("x-katy-test")) << get;
    EXPECT_FALSE(seen[get]["headers"].contains("content-type")) << get;
  }
  EXPECT_EQ(seen["3 delete"]["method"], "DELETE");
  EXPECT_EQ(seen["3 delete"]["body"], "");
}

// A completion may submit the next call (it runs on the loop thread, which must not deadlock);
// destroying the client fails what is still in flight, each completion once.
TEST(AsyncClientTest, CompletionsMaySubmitAndDestructionFailsWhatIsLeftOnce) {
  testing::LateHttpServer server;
  Outcomes outcomes;
  {
    AsyncClient client;
    client.Submit(Get(server.Url("/late?ms=10")), [&](Result<Response> first) {
      outcomes.Add("first")(std::move(first));
      client.Submit(Get(server.Url("/late?ms=10")), outcomes.Add("second"));
    });
    ASSERT_TRUE(outcomes.Wait(2, std::chrono::seconds(10)));
    for (int i = 0; i < 20; ++i) client.Submit(Get(server.Url("/late?ms=5000")), outcomes.Add("abandoned"));
    ASSERT_TRUE(
        testing::WaitFor([&] { return server.Stats()["in_flight"].get<int>() == 20; }, std::chrono::seconds(10)));
  }
  ASSERT_EQ(outcomes.results().size(), 22u);
  EXPECT_TRUE(outcomes.results().find("second")->second.ok());
  for (auto [it, end] = outcomes.results().equal_range("abandoned"); it != end; ++it) {
    ASSERT_FALSE(it->second.ok());
    EXPECT_EQ(it->second.error().message, "client stopped");
  }
}

// A real HTTP/2 server over TLS (nghttpd, Debian's nghttp2-server, with a certificate made
// for 127.0.0.1): 100 calls submitted at once, with room for 100 connections to the host, all
// go over HTTP/2 on one connection, multiplexed (so a sender facing an HTTP/2 host needs a few
// connections, not one per call in flight). Without multiplexing each call in flight would
// have opened its own.
TEST(AsyncClientTest, AnHttp2HostCarriesManyCallsOnOneConnection) {
  const std::string nghttpd = "/usr/sbin/nghttpd";
  ASSERT_EQ(access(nghttpd.c_str(), X_OK), 0) << "needs nghttpd (Debian's nghttp2-server; scripts/test.sh installs it)";
  const std::string dir = testing::MakeTempDir("h2");
  const auto made = testing::RunCommand(
      "openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=127.0.0.1 "
      "-addext subjectAltName=IP:127.0.0.1 -keyout " +
      dir + "/key.pem -out " + dir + "/cert.pem 2>&1");
  ASSERT_EQ(made.status, 0) << made.output;
  { std::ofstream(dir + "/hello") << "hello over h2"; }
  const int port = testing::FreePort();
  testing::Process server(
      nghttpd, {"--address=127.0.0.1", "--htdocs=" + dir, std::to_string(port), dir + "/key.pem", dir + "/cert.pem"},
      {}, dir + "/nghttpd.log");
  ASSERT_TRUE(testing::WaitForPort(port, std::chrono::seconds(10))) << "nghttpd did not start";

  constexpr int kCalls = 100;
  Outcomes outcomes;  // outlives the client, whose end completes the calls left
  AsyncClient client(
      {.max_connections_per_host = kCalls, .max_total_connections = kCalls, .ca_file = dir + "/cert.pem"});
  for (int i = 0; i < kCalls; ++i) {
    client.Submit(Get("https://127.0.0.1:" + std::to_string(port) + "/hello"), outcomes.Add("h2"));
  }
  ASSERT_TRUE(outcomes.Wait(kCalls, std::chrono::seconds(30)));
  long connections = 0;
  for (const auto& [name, result] : outcomes.results()) {
    ASSERT_TRUE(result.ok()) << result.error().message;
    EXPECT_EQ(result->status, 200);
    EXPECT_EQ(result->body, "hello over h2");
    EXPECT_EQ(result->http_version, 2);
    connections += result->new_connections;
  }
  EXPECT_EQ(connections, 1) << "the calls did not share one HTTP/2 connection";
}

}  // namespace
}  // namespace katy::http
