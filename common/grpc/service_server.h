#pragma once

#include <atomic>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "common/config.h"
#include "common/result.h"
#include "katy/v1/control.grpc.pb.h"

namespace katy::grpcsvc {

// The gRPC face of every service: the standard grpc.health.v1.Health service plus
// katy.v1.Control. Health (the service "" that plain checks ask about) starts NOT_SERVING; the
// owner flips it with SetServing (usually through a HealthMonitor): it is the readiness signal.
// kLivenessService is SERVING from Start to Shutdown whatever SetServing says: a liveness probe
// asks for it, so a Redis outage makes instances unready without restarting them. Thread-safe. Shutdown() must be
// called (or the destructor runs it) before the Control implementation is destroyed.
class ServiceServer {
 public:
  static constexpr const char* kLivenessService = "katy.liveness";

  // Binds `address` (port 0 picks a free port; see port()). `control` may be null: a default
  // Control answers UNIMPLEMENTED to every RPC. `more` are served beside it (the sender's
  // katy.v1.Outbound). With `tls` (PEM certificate chain and key) the port speaks TLS only.
  // Error "io" when the address cannot be bound.
  static Result<std::unique_ptr<ServiceServer>> Start(const config::HostPort& address, grpc::Service* control,
                                                      const std::vector<grpc::Service*>& more = {},
                                                      const config::TlsFiles& tls = {});
  ~ServiceServer();

  int port() const { return port_; }
  void SetServing(bool serving);
  // Stops accepting RPCs and waits (at most `deadline`) for running ones to finish.
  void Shutdown(std::chrono::milliseconds deadline = std::chrono::milliseconds(2000));

 private:
  ServiceServer() = default;
  std::unique_ptr<katy::v1::Control::Service> default_control_;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
  bool shut_down_ = false;
};

// Polls `healthy` every `interval` and reports SERVING while it returns true and Drain() has
// not been called. Stops its thread on destruction.
class HealthMonitor {
 public:
  HealthMonitor(ServiceServer& server, std::function<bool()> healthy,
                std::chrono::milliseconds interval = std::chrono::milliseconds(1000));
  ~HealthMonitor();

  // Reports NOT_SERVING from now on (shutdown has begun).
  void Drain();
  bool last_healthy() const { return last_healthy_; }

 private:
  void Loop();

  ServiceServer& server_;
  std::function<bool()> healthy_;
  std::chrono::milliseconds interval_;
  std::atomic<bool> draining_{false};
  std::atomic<bool> last_healthy_{false};
  std::mutex mutex_;
  std::condition_variable wake_;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace katy::grpcsvc
