#include "common/runtime/worker_service.h"

#include <csignal>
#include <future>
#include <thread>

#include "common/grpc/control_service.h"
#include "common/grpc/service_server.h"
#include "common/log.h"
#include "common/metrics/admin_server.h"
#include "common/metrics/queue_metrics.h"
#include "common/runtime/signals.h"

namespace katy::runtime {

int RunWorkerService(const WorkerServiceSpec& spec) {
  auto grpc_server = grpcsvc::ServiceServer::Start(spec.common.grpc_addr, spec.control);
  if (!grpc_server) throw std::runtime_error(grpc_server.error().message);
  redis::Client health_client(spec.redis);
  grpcsvc::HealthMonitor health(**grpc_server, [&health_client] { return health_client.Ping(); });
  if (spec.control != nullptr) spec.control->SetServingSource([&health] { return health.last_healthy(); });
  metrics::AddQueueDepthCollector(*spec.registry, spec.redis, KeySpace(spec.common.key_prefix, spec.common.shards));
  auto admin = metrics::AdminServer::Start(spec.common.admin_addr, *spec.registry,
                                           [&health] { return health.last_healthy(); });
  if (!admin) throw std::runtime_error(admin.error().message);
  log::Info("listening", {{"grpc_port", (*grpc_server)->port()}, {"admin_port", (*admin)->port()}});

  std::atomic<bool> stop{false};
  std::promise<void> finished;
  auto worker_done = finished.get_future();
  std::thread worker([&] {
    spec.run(stop);
    finished.set_value();
  });

  while (WaitForSignal() == SIGHUP) {
    if (spec.on_reload) spec.on_reload();
  }
  ExitOnSecondSignal();
  log::Info("stopping", {{"drain_timeout_s", static_cast<long long>(spec.common.drain_timeout.count())}});
  health.Drain();
  stop = true;
  if (worker_done.wait_for(spec.common.drain_timeout) == std::future_status::timeout) {
    // What is in hand stays pending in Redis; the next owner of the shard re-processes it.
    log::Warn("drain deadline passed; leaving unfinished work pending");
    worker.detach();
    if (spec.control != nullptr) spec.control->SetServingSource({});
    (*grpc_server)->Shutdown();
    (*admin)->Shutdown();
    std::_Exit(0);
  }
  worker.join();
  if (spec.control != nullptr) spec.control->SetServingSource({});
  (*grpc_server)->Shutdown();
  (*admin)->Shutdown();
  log::Info("stopped");
  return 0;
}

}  // namespace katy::runtime
