#pragma once

#include <chrono>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"

namespace katy::http {

struct Response {
  long status = 0;
  std::string body;
  std::map<std::string, std::string> headers;  // names lowercased
  int http_version = 1;                        // 2 when the call went over HTTP/2
  long new_connections = 0;                    // connections the call opened (0: it reused or shared one)

  // The header's value, or "" when absent. `name` must be lowercase.
  std::string Header(const std::string& name) const;
};

// One HTTP call.
struct Request {
  std::string method = "GET";
  std::string url;
  std::string body;                          // sent as application/json unless `headers` name a type
  std::vector<std::string> headers;          // "Name: value"
  std::chrono::milliseconds timeout{10000};  // the whole call, connecting included
};

// A blocking HTTP/1.1 client over one libcurl easy handle: connections are kept alive and
// reused between calls. Not thread-safe: one per thread. Error codes: "timeout", "connect",
// "io" (anything else libcurl reports). An HTTP error status is a Response, not an Error.
class Client {
 public:
  explicit Client(std::chrono::milliseconds timeout = std::chrono::milliseconds(10000),
                  std::chrono::milliseconds connect_timeout = std::chrono::milliseconds(3000));
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  Result<Response> Get(const std::string& url, const std::vector<std::string>& headers = {});
  // A body goes as Content-Type: application/json unless `headers` name another type.
  Result<Response> Post(const std::string& url, const std::string& body, const std::vector<std::string>& headers = {});
  Result<Response> Request(const std::string& method, const std::string& url, const std::string& body,
                           const std::vector<std::string>& headers);

  // Closes every kept-alive connection: the next call connects afresh. For a connection whose
  // answers can no longer be trusted to belong to the request just sent.
  void DropConnections();

  // The whole-request timeout of the next calls (connect timeout unchanged).
  void set_timeout(std::chrono::milliseconds timeout) { timeout_ = timeout; }

 private:
  void* curl_;
  std::chrono::milliseconds timeout_;
  std::chrono::milliseconds connect_timeout_;
};

// Percent-encodes a query-string component.
std::string UrlEncode(const std::string& text);
// The reverse, for query strings and form bodies: %XX and '+' (a space); a stray '%' is kept.
std::string UrlDecode(std::string_view text);

}  // namespace katy::http
