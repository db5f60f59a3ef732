#pragma once

#include <array>
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace katy::ingress {

// The HTTP/1.1 wire format for the webhook port: request parsing and response writing. Pure:
// no I/O, and parsing allocates nothing.
//
// Only what a webhook endpoint needs: origin-form targets, headers, and bodies framed by
// Content-Length. Strict where RFC 9112 lets a server be: an HTTP/1.1 request without Host,
// or any request with two, is refused; empty lines before a request count toward the head
// limit. A body without Content-Length (chunked or otherwise) is refused with 411:
// Meta always sends Content-Length, and refusing is cheaper and safer than decoding chunks
// for a sender that never uses them.

struct HttpLimits {
  size_t max_head_bytes = 16 * 1024;  // empty lines before it + request line + headers; larger gets 431
  size_t max_body_bytes = 1 << 20;    // Content-Length above this gets 413 before the body is read
};

struct HttpHeaderField {
  std::string_view name;
  std::string_view value;  // surrounding whitespace removed
};

// A request, as views into the buffer it was parsed from (valid while that buffer is).
struct HttpRequest {
  static constexpr size_t kMaxHeaders = 64;  // more gets 431

  std::string_view method;
  std::string_view path;   // target before '?'
  std::string_view query;  // after '?', without it; empty when absent
  std::string_view body;
  bool keep_alive = true;         // HTTP/1.1 unless any Connection header says close; 1.0 only
                                  // with keep-alive (and no close)
  bool expects_continue = false;  // "Expect: 100-continue": the client waits before the body
  std::array<HttpHeaderField, kMaxHeaders> headers;
  size_t header_count = 0;

  // The first header called `name` (case-insensitive), or empty when absent.
  std::string_view Header(std::string_view name) const;
};

struct HttpParse {
  enum class Status {
    kIncomplete,  // need more bytes (`head_complete` says whether the head is in already)
    kComplete,    // `request` is whole and took the first `consumed` bytes of the buffer
    kError,       // answer `error_status` with `error`, then close the connection
  };
  Status status = Status::kIncomplete;
  HttpRequest request;  // kComplete; the head alone for kIncomplete with head_complete
  bool head_complete = false;
  size_t consumed = 0;
  int error_status = 0;    // 400, 411, 413, 431, 501 or 505
  std::string_view error;  // a short reason, e.g. "bad request line"
};

// Parses the request at the front of `buffer`. Never reads past it; on kIncomplete call it
// again with the same bytes plus more. Refuses as soon as the bytes in hand prove the request
// unacceptable, so an oversized body is refused after its head, before it is received.
HttpParse ParseHttpRequest(std::string_view buffer, const HttpLimits& limits);

// The value of `name` in an application/x-www-form-urlencoded query ("a=1&b=x%20y"),
// percent-decoded with '+' as space; nullopt when the name is absent.
std::optional<std::string> QueryParam(std::string_view query, std::string_view name);

// The standard reason phrase for `status` ("OK", "Not Found", ...; "Unknown" otherwise).
std::string_view ReasonPhrase(int status);

// Appends a whole response with `body` (of `content_type`, plain text by default) to `out`.
// `retry_after_s` > 0 adds Retry-After; `keep_alive` false adds "Connection: close"; a
// non-empty `allow` adds Allow (the methods a 405 must list).
void AppendHttpResponse(std::string& out, int status, std::string_view body, int retry_after_s, bool keep_alive,
                        std::string_view allow = {}, std::string_view content_type = "text/plain; charset=utf-8");

// The interim answer to "Expect: 100-continue".
inline constexpr std::string_view kHttpContinue = "HTTP/1.1 100 Continue\r\n\r\n";

}  // namespace katy::ingress
