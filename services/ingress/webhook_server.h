#pragma once

#include <chrono>
#include <memory>

#include "common/config.h"
#include "common/result.h"
#include "services/ingress/enqueue_batcher.h"
#include "services/ingress/webhook_service.h"

namespace Pistache::Http {
class Endpoint;
}

namespace katy::ingress {

struct ServerOptions {
  config::HostPort address;
  int threads = 2;
  size_t max_request_bytes = 1 << 20;  // Pistache refuses larger requests before buffering them
  std::chrono::milliseconds read_timeout{5000};
};

// The public HTTP face of ingress (Pistache): GET/POST /webhook, everything else 404.
// A POST's events go to the batcher and the request is answered from the batcher's thread
// once they are stored; the HTTP thread moves on at once. The WebhookService and the batcher
// must outlive the server; stop the batcher first so queued requests get their answers.
class WebhookServer {
 public:
  // Port 0 picks a free port. Error "io" if the address cannot be bound.
  static Result<std::unique_ptr<WebhookServer>> Start(const ServerOptions& options,
                                                      const WebhookService& service,
                                                      EnqueueBatcher& batcher);
  ~WebhookServer();
  int port() const { return port_; }
  // Stops accepting and closes connections.
  void Shutdown();

 private:
  WebhookServer() = default;
  std::shared_ptr<Pistache::Http::Endpoint> endpoint_;
  int port_ = 0;
};

}  // namespace katy::ingress
