#include "services/ingress/http1.h"

#include <gtest/gtest.h>

#include <string>

namespace katy::ingress {
namespace {

const HttpLimits kLimits{1024, 4096};

HttpParse Parse(const std::string& bytes) { return ParseHttpRequest(bytes, kLimits); }

TEST(Http1Test, ParsesAWebhookPost) {
  const std::string body = R"({"object":"page"})";
  const std::string wire =
      "POST /webhook?a=1 HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
      "X-Hub-Signature-256:  sha256=abc \r\nContent-Length: " +
      std::to_string(body.size()) + "\r\n\r\n" + body + "GET /next";
  HttpParse parsed = Parse(wire);
  ASSERT_EQ(parsed.status, HttpParse::Status::kComplete);
  EXPECT_EQ(parsed.request.method, "POST");
  EXPECT_EQ(parsed.request.path, "/webhook");
  EXPECT_EQ(parsed.request.query, "a=1");
  EXPECT_EQ(parsed.request.body, body);
  EXPECT_EQ(parsed.request.Header("x-hub-signature-256"), "sha256=abc");  // case-insensitive, trimmed
  EXPECT_EQ(parsed.request.Header("X-Missing"), "");
  EXPECT_TRUE(parsed.request.keep_alive);
  EXPECT_EQ(parsed.consumed, wire.size() - std::string("GET /next").size());  // the next request stays
}

TEST(Http1Test, NeedsMoreUntilHeadAndBodyAreIn) {
  const std::string wire =
      "POST /webhook HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\nhello";
  for (size_t cut = 0; cut < wire.size(); ++cut) {
    const std::string part = wire.substr(0, cut);
    HttpParse parsed = Parse(part);
    ASSERT_EQ(parsed.status, HttpParse::Status::kIncomplete) << cut;
    // Once the head is in, the client waiting for 100 Continue can be told to go on.
    EXPECT_EQ(parsed.head_complete, cut >= wire.size() - 5) << cut;
    if (parsed.head_complete) {
      EXPECT_TRUE(parsed.request.expects_continue);
    }
  }
  EXPECT_EQ(Parse(wire).status, HttpParse::Status::kComplete);
}

TEST(Http1Test, RefusesAnOversizedBodyAsSoonAsItsHeadArrives) {
  HttpParse parsed = Parse("POST /webhook HTTP/1.1\r\nHost: x\r\nContent-Length: 4097\r\n\r\n");
  EXPECT_EQ(parsed.status, HttpParse::Status::kError);
  EXPECT_EQ(parsed.error_status, 413);
  EXPECT_EQ(Parse("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999999\r\n\r\n").error_status, 413);
  EXPECT_EQ(Parse("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4096\r\n\r\n").status, HttpParse::Status::kIncomplete);
}

TEST(Http1Test, RefusesAnOversizedHeadWithoutWaitingForItsEnd) {
  EXPECT_EQ(Parse("GET / HTTP/1.1\r\nHost: x\r\nX: " + std::string(2000, 'a')).error_status, 431);
  std::string many = "GET / HTTP/1.1\r\nHost: x\r\n";
  for (int i = 0; i < 70; ++i) many += "X: 1\r\n";
  EXPECT_EQ(ParseHttpRequest(many + "\r\n", {64 * 1024, 4096}).error_status, 431);
}

TEST(Http1Test, RefusesMalformedAndAmbiguousRequests) {
  auto status = [](const std::string& wire) { return Parse(wire).error_status; };
  EXPECT_EQ(status("GARBAGE\r\n\r\n"), 400);
  EXPECT_EQ(status("GET  / HTTP/1.1\r\nHost: x\r\n\r\n"), 400);
  EXPECT_EQ(status("GET webhook HTTP/1.1\r\nHost: x\r\n\r\n"), 400);
  EXPECT_EQ(status("GET / HTTP/2.0\r\n\r\n"), 505);
  EXPECT_EQ(status("GET / FTP/1.1\r\n\r\n"), 400);
  EXPECT_EQ(status("GET / HTTP/1.1\r\nHost: x\r\nNo colon\r\n\r\n"), 400);
  EXPECT_EQ(status("GET / HTTP/1.1\r\nHost: x\r\nBad Name: x\r\n\r\n"), 400);
  EXPECT_EQ(status("GET / HTTP/1.1\r\nHost: x\r\n folded: x\r\n\r\n"), 400);
  EXPECT_EQ(status("GET / HTTP/1.1\r\nHost: x\r\nX: a\nb\r\n\r\n"), 400);  // a bare LF inside a value
  EXPECT_EQ(status("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1x\r\n\r\n"), 400);
  EXPECT_EQ(status("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n"), 400);
  // Two lengths, or a length and chunks, are how requests are smuggled past a proxy.
  EXPECT_EQ(status("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab"), 400);
  EXPECT_EQ(status("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\n0\r\n\r\n"), 411);
  EXPECT_EQ(status("POST / HTTP/1.1\r\nHost: x\r\nExpect: something-else\r\n\r\n"), 417);
  // The same length twice is harmless.
  EXPECT_EQ(Parse("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\na").status,
            HttpParse::Status::kComplete);
}

TEST(Http1Test, KeepAliveFollowsTheVersionAndConnectionHeader) {
  EXPECT_TRUE(Parse("GET / HTTP/1.1\r\nHost: x\r\n\r\n").request.keep_alive);
  EXPECT_FALSE(Parse("GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").request.keep_alive);
  EXPECT_FALSE(Parse("GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, Close\r\n\r\n").request.keep_alive);
  EXPECT_FALSE(Parse("GET / HTTP/1.0\r\n\r\n").request.keep_alive);
  EXPECT_TRUE(Parse("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n").request.keep_alive);
}

TEST(Http1Test, RefusesAnHttp11RequestWithoutExactlyOneHost) {
  EXPECT_EQ(Parse("GET / HTTP/1.1\r\n\r\n").error_status, 400);
  EXPECT_EQ(Parse("GET / HTTP/1.1\r\nHost: a\r\nhost: b\r\n\r\n").error_status, 400);
  EXPECT_EQ(Parse("GET / HTTP/1.0\r\nHost: a\r\nHost: a\r\n\r\n").error_status, 400);
  EXPECT_EQ(Parse("GET / HTTP/1.0\r\n\r\n").status, HttpParse::Status::kComplete);  // 1.0 may omit it
}

TEST(Http1Test, ConflictingConnectionHeadersResolveToClose) {
  EXPECT_FALSE(
      Parse("GET / HTTP/1.1\r\nHost: x\r\nConnection: keep-alive\r\nConnection: close\r\n\r\n").request.keep_alive);
  EXPECT_FALSE(
      Parse("GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\nConnection: keep-alive\r\n\r\n").request.keep_alive);
  EXPECT_FALSE(Parse("GET / HTTP/1.0\r\nConnection: keep-alive\r\nConnection: close\r\n\r\n").request.keep_alive);
}

TEST(Http1Test, EmptyLinesBeforeARequestCountTowardTheHeadLimit) {
  // A client streaming nothing but CRLFs is refused at the head limit, not buffered forever.
  std::string stream;
  for (size_t i = 0; i < kLimits.max_head_bytes; ++i) stream += "\r\n";
  EXPECT_EQ(Parse(stream).error_status, 431);
  EXPECT_EQ(Parse(stream + "GET / HTTP/1.1\r\nHost: x\r\n\r\n").error_status, 431);
  // A few, as some clients send after a body, are fine.
  EXPECT_EQ(Parse("\r\n\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n").status, HttpParse::Status::kComplete);
}

TEST(Http1Test, SkipsEmptyLinesBeforeARequest) {
  const std::string wire = "\r\n\r\nGET /webhook HTTP/1.1\r\nHost: x\r\n\r\n";  // parsed views point into it
  HttpParse parsed = Parse(wire);
  ASSERT_EQ(parsed.status, HttpParse::Status::kComplete);
  EXPECT_EQ(parsed.request.path, "/webhook");
  EXPECT_EQ(parsed.consumed, wire.size());
}

TEST(Http1Test, QueryParamsAreFormDecoded) {
  const std::string query = "hub.mode=subscribe&hub.challenge=a%2Bb+c%zz&hub.verify_token=&flag";
  EXPECT_EQ(QueryParam(query, "hub.mode"), "subscribe");
  EXPECT_EQ(QueryParam(query, "hub.challenge"), "a+b c%zz");  // a stray '%' stays
  EXPECT_EQ(QueryParam(query, "hub.verify_token"), "");
  EXPECT_EQ(QueryParam(query, "flag"), "");
  EXPECT_EQ(QueryParam(query, "absent"), std::nullopt);
  EXPECT_EQ(QueryParam("hub%2Emode=x", "hub.mode"), "x");
}

TEST(Http1Test, WritesWholeResponses) {
  std::string out;
  AppendHttpResponse(out, 200, "EVENT_RECEIVED", 0, true);
  EXPECT_EQ(out,
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 14\r\n"
            "Connection: keep-alive\r\n\r\nEVENT_RECEIVED");
  out.clear();
  AppendHttpResponse(out, 405, "", 0, true, "GET, POST");
  EXPECT_EQ(out,
            "HTTP/1.1 405 Method Not Allowed\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 0\r\n"
            "Allow: GET, POST\r\nConnection: keep-alive\r\n\r\n");
  out.clear();
  AppendHttpResponse(out, 503, "retry\n", 1, false);
  EXPECT_EQ(out,
            "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\n"
            "Content-Length: 6\r\nRetry-After: 1\r\nConnection: close\r\n\r\nretry\n");
}

}  // namespace
}  // namespace katy::ingress
