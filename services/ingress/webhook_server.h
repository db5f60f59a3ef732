#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <thread>
#include <vector>

#include "common/config.h"
#include "common/metrics/metrics.h"
#include "common/result.h"
#include "services/ingress/event_store.h"
#include "services/ingress/webhook_service.h"

namespace katy::ingress {

// One event loop per thread, each with its own Redis connection; two keep two cores busy.
inline constexpr int kDefaultHttpThreads = 2;

struct ServerOptions {
  config::HostPort address;
  int threads = kDefaultHttpThreads;
  size_t max_body_bytes = kDefaultMaxBodyBytes;  // a larger Content-Length gets 413 before the body is read
  // A new connection must send its first byte, a request must arrive whole from its first
  // byte, and a client must take its answer, each within this; otherwise 408 (when a request
  // was started) and the connection is closed.
  std::chrono::milliseconds read_timeout{5000};
  // A keep-alive connection with nothing to say for this long is closed (nginx's default).
  std::chrono::milliseconds idle_timeout{75000};
  // Client connections held at once, all loops together; a connection beyond it is answered
  // 503 with Retry-After and closed at once. 0: MaxConnectionsFor(the open-file limit).
  size_t max_connections = 0;
};

// The client connections a process allowed `open_file_limit` descriptors can hold while
// keeping room for its Redis connections, gRPC, the admin port and files.
size_t MaxConnectionsFor(uint64_t open_file_limit);

// The public HTTP face of ingress: GET/POST /webhook, everything else 404.
//
// Why not Pistache, which the other services use: its reactor hands every response through an
// eventfd queue and arms a timerfd per request, and its handlers cannot take part in its loop,
// so storing a request's events meant thread hand-offs and blocking on Redis. Those context
// switches were most of ingress's CPU (bench/RESULTS.md). Here each of `threads` event loops
// owns its connections and a non-blocking Redis connection, and never waits on anything but
// epoll, as Redis and nginx do:
//
//   epoll_wait -> read every ready connection (HttpConnection); parse, verify, check each
//   request -> the events of the requests read in this pass go to Redis as one pipelined batch
//   (StorePipeline; several batches may be in flight) -> answer each request as its batch's
//   replies arrive
//
// A request is answered 200 only after all its events are stored, 503 with Retry-After when
// Redis fails or takes longer than the store's socket_timeout. Each connection has at most
// one request in hand: pipelined requests are read one after the other, answered in order.
//
// What a hostile client can take is bounded: connections (max_connections, the first-byte and
// read timeouts), a connection's buffer (the head and body limits), a request's events
// (WebhookOptions::max_events), one Redis script's run (kMaxEventsPerCall) and the events in
// Redis's hands at once (kMaxEventsInFlight).
class WebhookServer {
 public:
  // Port 0 picks a free port. Error "io" if the address cannot be bound. Each loop opens its
  // own Redis connection with `store`. `metrics`, when given, gets katy_ingress_batch_requests,
  // katy_ingress_store_seconds and katy_ingress_connections. The service must outlive the
  // server.
  static Result<std::unique_ptr<WebhookServer>> Start(const ServerOptions& options, const WebhookService& service,
                                                      const StoreOptions& store,
                                                      prometheus::Registry* metrics = nullptr);
  ~WebhookServer();
  WebhookServer(const WebhookServer&) = delete;
  WebhookServer& operator=(const WebhookServer&) = delete;

  int port() const { return port_; }
  // For tests: true from the moment Shutdown begins (every answer written from then on closes
  // its connection).
  bool StoppingForTest() const { return stopping_; }
  // The connection limit in force (options.max_connections, or the open-file limit's share).
  size_t max_connections() const { return max_connections_; }
  // Client connections held now, all loops together.
  size_t connections() const { return connections_.load(std::memory_order_relaxed); }

  // Stops accepting; every request already read is stored (or fails, within the store's
  // timeout) and answered; then every connection is closed (a half-received request gets
  // nothing: Meta retries it).
  // Idempotent; the destructor calls it.
  void Shutdown();

 private:
  class Loop;
  WebhookServer() = default;

  ServerOptions options_;
  int listen_fd_ = -1;
  int wake_fd_ = -1;  // eventfd: wakes every loop for Shutdown
  int port_ = 0;
  size_t max_connections_ = 0;
  std::atomic<bool> stopping_{false};
  std::atomic<size_t> connections_{0};
  std::vector<std::unique_ptr<Loop>> loops_;
  std::vector<std::thread> threads_;
};

}  // namespace katy::ingress
