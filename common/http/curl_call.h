#pragma once

// What the blocking and the asynchronous client share: one call set up on a libcurl easy
// handle, and libcurl's outcome as Katy's Result. Internal to common/http.

#include <curl/curl.h>

#include <cstddef>
#include <string>
#include <vector>

#include "common/http/http_client.h"
#include "common/result.h"

namespace katy::http {

// A call's state while libcurl runs it: the answer as it arrives and the header list the
// handle points to. Lives at a fixed address for the call's duration (the handle keeps
// pointers into it).
class CurlCall {
 public:
  // `max_body_bytes`: a larger answer fails the transfer (CURLE_WRITE_ERROR), 0: no limit.
  explicit CurlCall(size_t max_body_bytes = 0) : max_body_bytes_(max_body_bytes) {}
  ~CurlCall();
  CurlCall(const CurlCall&) = delete;
  CurlCall& operator=(const CurlCall&) = delete;

  // Sets `curl` (reset by the caller when reused) up for `request`; `request` must outlive the
  // transfer (libcurl reads the URL and body from it).
  void Prepare(CURL* curl, const Request& request, long connect_timeout_ms);
  // The call's result once libcurl finished it with `code`.
  Result<Response> Finish(CURL* curl, CURLcode code);

 private:
  static size_t WriteBody(char* data, size_t size, size_t count, void* user);
  static size_t WriteHeader(char* data, size_t size, size_t count, void* user);

  size_t max_body_bytes_;
  bool too_large_ = false;
  Response response_;
  curl_slist* headers_ = nullptr;
};

// libcurl's once-per-process set-up, done on first use.
void CurlGlobalInitOnce();

}  // namespace katy::http
