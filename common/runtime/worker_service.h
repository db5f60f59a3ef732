#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <string>

#include "common/config.h"
#include "common/metrics/metrics.h"
#include "common/redis/redis_client.h"
#include "common/shard.h"

namespace katy::grpcsvc {
class ControlService;
}

namespace katy::runtime {

// Everything a stream-consuming service (responder, sender) does around its worker loop.
struct WorkerServiceSpec {
  config::CommonConfig common;  // addresses, keys, drain timeout
  redis::Options redis;         // for the health probe and the queue-depth metrics
  metrics::Registry* registry = nullptr;
  grpcsvc::ControlService* control = nullptr;
  std::function<void()> on_reload;   // SIGHUP
  // The worker body: runs on its own thread until `stop` is set, then returns.
  std::function<void(const std::atomic<bool>& stop)> run;
};

// Starts gRPC health/control and the admin HTTP port (with the queue-depth gauges), runs `spec.run` on a thread and waits
// for signals: SIGHUP calls on_reload; SIGTERM/SIGINT shut down in order (health NOT_SERVING,
// stop the worker and give it drain_timeout to finish the entry in hand, stop the servers).
// Work not finished by then stays pending in Redis for the next owner. Returns the exit status.
int RunWorkerService(const WorkerServiceSpec& spec);

}  // namespace katy::runtime
