#pragma once

#include <prometheus/registry.h>

#include <atomic>
#include <functional>
#include <vector>

#include "common/config.h"
#include "common/redis/redis_client.h"

namespace grpc {
class Service;
}

namespace katy::grpcsvc {
class ControlService;
}

namespace katy::runtime {

// What a service does between start and stop: a worker loop on a thread of its own (responder,
// sender), servers of its own (ingress's webhook port), or both.
struct ServiceBody {
  // Runs on its own thread until `stop` is set, then returns.
  std::function<void(const std::atomic<bool>& stop)> run;
  // Starts the service's own servers; called once gRPC and the admin port are up. Throws on
  // failure like any start-up step.
  std::function<void()> start;
  // Stops them at shutdown, before the worker is told to stop: whatever they accepted must be
  // finished (or left recoverable) when it returns.
  std::function<void()> stop;
  // SIGHUP.
  std::function<void()> on_reload;
};

// Everything every service does around its body.
struct ServiceSpec {
  config::CommonConfig common;  // addresses, keys, drain timeout
  redis::Options redis;         // for the health probe and the queue-depth metrics (without WAIT)
  prometheus::Registry* registry = nullptr;
  grpcsvc::ControlService* control = nullptr;
  std::vector<grpc::Service*> more_services;  // served on the gRPC port beside Control
  ServiceBody body;
};

// Starts gRPC health/control and the admin HTTP port (the registry plus the queue-depth
// gauges), then the body, and waits for signals: SIGHUP calls on_reload; SIGTERM/SIGINT shut
// down in order (health NOT_SERVING; body.stop; stop the worker and give it drain_timeout to
// finish the entry in hand; stop the servers). Work not finished by then stays pending in
// Redis for the next owner. Returns the exit status.
int RunService(const ServiceSpec& spec);

}  // namespace katy::runtime
