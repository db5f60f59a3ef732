#pragma once

#include <functional>
#include <memory>

#include "common/config.h"
#include "common/metrics/metrics.h"
#include "common/result.h"

namespace Pistache::Http {
class Endpoint;
}

namespace katy::metrics {

// The admin HTTP port of every service: GET /metrics (Prometheus text, plus katy_serving: 1
// while `healthy` returns true) and GET /healthz (200 "ok" while `healthy` returns true, 503
// otherwise). An empty `healthy` counts as always healthy. Kept apart from public ports.
class AdminServer {
 public:
  // Port 0 picks a free port (see port()). /metrics renders `sources`, which must outlive
  // the server. Error "io" if the address cannot be bound.
  static Result<std::unique_ptr<AdminServer>> Start(const config::HostPort& address, Sources sources,
                                                    std::function<bool()> healthy);
  ~AdminServer();
  int port() const { return port_; }
  void Shutdown();

 private:
  AdminServer() = default;
  std::shared_ptr<Pistache::Http::Endpoint> endpoint_;
  int port_ = 0;
};

}  // namespace katy::metrics
