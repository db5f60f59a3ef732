#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "common/http/http_client.h"
#include "common/result.h"

namespace katy::http {

// How a call ended: a Response for any HTTP status, or an Error ("timeout", "connect", "io";
// "io" also when the answer was larger than max_response_bytes or the client stopped).
using Completion = std::function<void(Result<Response>)>;

struct AsyncClientOptions {
  // Connections to one host. An HTTP/1.1 connection carries one call at a time, so this is
  // that host's concurrency; an HTTP/2 host (TLS with ALPN) multiplexes many calls on each
  // connection and needs few.
  long max_connections_per_host = 256;
  long max_total_connections = 1024;
  std::chrono::milliseconds connect_timeout{3000};
  // A body larger than this fails the call instead of growing without bound.
  size_t max_response_bytes = 1 << 20;
  // libcurl's receive buffer per call in flight (its default is 16 KB): the chunk an answer is
  // read in, not a bound on it. Answers here are small, and at 16 KB a sender's 5,000 calls in
  // flight held 70 MB of buffers (bench/RESULTS.md, "At Meta's real speed").
  long receive_buffer_bytes = 4096;
  // A PEM file of the certificate authorities to trust instead of the system's (a test's own,
  // or a private proxy's); empty: the system's.
  std::string ca_file = {};
};

// An HTTP client that keeps many calls in flight on one thread: libcurl's multi interface,
// driven by its own epoll loop. Submit from any thread; each call's Completion runs once, on
// the client's loop thread, and must not block (hand slow work to another thread): every other
// call waits while it runs. Connections are kept alive and reused; HTTP/2 is negotiated over
// TLS and its streams multiplexed (CURLPIPE_MULTIPLEX, PIPEWAIT), HTTP/1.1 otherwise.
// Destroying the client fails the calls still in flight ("client stopped") and waits for their
// completions. Thread-safe.
class AsyncClient {
 public:
  explicit AsyncClient(const AsyncClientOptions& options = {});
  ~AsyncClient();
  AsyncClient(const AsyncClient&) = delete;
  AsyncClient& operator=(const AsyncClient&) = delete;

  void Submit(Request request, Completion done);
  // Calls submitted and not yet completed.
  size_t in_flight() const;

 private:
  class Loop;
  std::unique_ptr<Loop> loop_;
};

// Submits `request` and blocks the calling thread until it ends: for a call rare enough not
// to be worth a continuation (an attachment upload). Never call it on the client's loop thread.
Result<Response> SubmitAndWait(AsyncClient& client, Request request);

}  // namespace katy::http
