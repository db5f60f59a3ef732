#pragma once

#include <chrono>
#include <memory>

#include "common/config.h"
#include "common/result.h"
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
// The WebhookService must outlive the server.
class WebhookServer {
 public:
  // Port 0 picks a free port. Error "io" if the address cannot be bound.
  static Result<std::unique_ptr<WebhookServer>> Start(const ServerOptions& options,
                                                      const WebhookService& service);
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
