#include "common/runtime/run_service.h"

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
namespace {

// The worker thread of a body with a `run`, and the wait for it at shutdown.
class Worker {
 public:
  explicit Worker(const ServiceBody& body) {
    if (!body.run) return;
    done_ = finished_.get_future();
    thread_ = std::thread([this, run = body.run] {
      run(stop_);
      finished_.set_value();
    });
  }

  // Tells the worker to stop and waits up to `deadline`; false when it did not finish (the
  // thread is then left behind: the process is about to exit).
  bool StopWithin(std::chrono::seconds deadline) {
    if (!thread_.joinable()) return true;
    stop_ = true;
    if (done_.wait_for(deadline) == std::future_status::timeout) {
      thread_.detach();
      return false;
    }
    thread_.join();
    return true;
  }

 private:
  std::atomic<bool> stop_{false};
  std::promise<void> finished_;
  std::future<void> done_;
  std::thread thread_;
};

// The health check's probe: PING, logging each change of its answer with Redis's reason, so
// an operator whose service says NOT_SERVING finds why (Redis down, a wrong password) in the
// log. Called from the health monitor's thread alone.
class RedisProbe {
 public:
  explicit RedisProbe(const redis::Options& options) : client_(options) {}

  bool operator()() {
    auto pong = client_.Ping();
    const bool ok = pong.ok();
    if (!ok && answered_) {
      log::Warn("Redis does not answer the health check", {{"error", pong.error().message}});
    } else if (ok && !answered_) {
      log::Info("Redis answers the health check");
    }
    answered_ = ok;
    return ok;
  }

 private:
  redis::Client client_;
  bool answered_ = true;
};

}  // namespace

int RunService(const ServiceSpec& spec) {
  auto grpc_server =
      grpcsvc::ServiceServer::Start(spec.common.grpc_addr, spec.control, spec.more_services, spec.common.grpc_tls);
  if (!grpc_server) throw std::runtime_error(grpc_server.error().message);
  // Neither the probe nor a scrape writes: WAIT would only make them fail while a master lacks
  // replicas, and take every instance out of service for what the policy already handles.
  RedisProbe probe(spec.redis.WithoutWait());
  grpcsvc::HealthMonitor health(**grpc_server, [&probe] { return probe(); });
  if (spec.control != nullptr) spec.control->SetServingSource([&health] { return health.last_healthy(); });
  metrics::QueueDepthCollector queue_depth(
      spec.redis.WithoutWait(), KeySpace(spec.common.key_prefix, spec.common.shards), spec.common.status_max_age);
  metrics::ReplicationCollector replication;
  auto admin = metrics::AdminServer::Start(spec.common.admin_addr, {spec.registry, &queue_depth, &replication},
                                           [&health] { return health.last_healthy(); });
  if (!admin) throw std::runtime_error(admin.error().message);
  log::Info("listening", {{"grpc_port", (*grpc_server)->port()}, {"admin_port", (*admin)->port()}});
  if (spec.body.start) spec.body.start();
  Worker worker(spec.body);

  while (WaitForSignal() == SIGHUP) {
    if (spec.body.on_reload) spec.body.on_reload();
  }
  ExitOnSecondSignal();
  log::Info("stopping", {{"drain_timeout_s", static_cast<long long>(spec.common.drain_timeout.count())}});
  health.Drain();
  if (spec.body.stop) spec.body.stop();
  const bool drained = worker.StopWithin(spec.common.drain_timeout);
  // What is in hand stays pending in Redis; the next owner of the shard re-processes it.
  if (!drained) log::Warn("drain deadline passed; leaving unfinished work pending");
  if (spec.control != nullptr) spec.control->SetServingSource({});
  (*grpc_server)->Shutdown();
  (*admin)->Shutdown();
  if (!drained) std::_Exit(0);
  log::Info("stopped");
  return 0;
}

}  // namespace katy::runtime
