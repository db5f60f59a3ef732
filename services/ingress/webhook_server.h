#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <thread>
#include <vector>

#include "common/config.h"
#include "common/metrics/metrics.h"
#include "common/result.h"
#include "services/ingress/event_store.h"
#include "services/ingress/webhook_service.h"

namespace katy::ingress {

struct ServerOptions {
  config::HostPort address;
  int threads = 2;
  size_t max_body_bytes = 1 << 20;  // a larger Content-Length gets 413 before the body is read
  // A request must arrive whole within this from its first byte, and a client must take its
  // answer within it; otherwise 408 (when a request was started) and the connection is closed.
  std::chrono::milliseconds read_timeout{5000};
  // A keep-alive connection with nothing to say for this long is closed (nginx's default).
  std::chrono::milliseconds idle_timeout{75000};
};

// The public HTTP face of ingress: GET/POST /webhook, everything else 404.
//
// Why not Pistache, which the other services use: its reactor hands every response through an
// eventfd queue and arms a timerfd per request, and its handlers cannot take part in its loop,
// so storing a request's events meant thread hand-offs and blocking on Redis. Those context
// switches were most of ingress's CPU (bench/RESULTS.md). Here each of `threads` event loops
// owns its connections and a non-blocking Redis connection, and never waits on anything but
// epoll, as Redis and nginx do:
//
//   epoll_wait -> read every ready connection; parse, verify, check each request
//   -> the events of every request read in this pass go to Redis as one pipelined batch
//      (several batches may be in flight) -> answer each batch as its replies arrive
//
// A request is answered 200 only after all its events are stored, 503 with Retry-After when
// Redis fails or takes longer than the store's socket_timeout. Each connection has at most one
// request in hand: pipelined requests are read one after the other, answered in order.
class WebhookServer {
 public:
  // Port 0 picks a free port. Error "io" if the address cannot be bound. Each loop opens its
  // own Redis connection with `store`. `metrics`, when given, gets katy_ingress_batch_requests
  // and katy_ingress_store_seconds. The service must outlive the server.
  static Result<std::unique_ptr<WebhookServer>> Start(const ServerOptions& options,
                                                      const WebhookService& service,
                                                      const StoreOptions& store,
                                                      metrics::Registry* metrics = nullptr);
  ~WebhookServer();
  WebhookServer(const WebhookServer&) = delete;
  WebhookServer& operator=(const WebhookServer&) = delete;

  int port() const { return port_; }

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
  std::atomic<bool> stopping_{false};
  std::vector<std::unique_ptr<Loop>> loops_;
  std::vector<std::thread> threads_;
};

}  // namespace katy::ingress
