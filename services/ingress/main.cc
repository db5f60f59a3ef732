// katy-ingress: verifies Meta's webhooks and enqueues every event onto Redis streams.
#include <csignal>
#include <chrono>

#include "common/clock.h"
#include "common/events.h"
#include "common/grpc/control_service.h"
#include "common/grpc/service_server.h"
#include "common/log.h"
#include "common/metrics/admin_server.h"
#include "common/metrics/queue_metrics.h"
#include "common/runtime/open_files.h"
#include "common/runtime/service_main.h"
#include "common/runtime/signals.h"
#include "services/ingress/event_store.h"
#include "services/ingress/ingress_config.h"
#include "services/ingress/webhook_server.h"
#include "services/ingress/webhook_service.h"

namespace {

int Run(int argc, char** argv) {
  using namespace katy;
  config::Settings settings;
  ingress::IngressConfig cfg = ingress::LoadIngressConfig(argc, argv, &settings);
  if (!runtime::BeginService("katy-ingress", "ingress", settings)) return 0;  // --help
  redis::Options redis_options = runtime::RedisOptions(cfg.common);
  redis_options.connect_timeout = cfg.redis_timeout / 2;
  redis_options.socket_timeout = cfg.redis_timeout;

  metrics::Registry registry;
  ingress::IngressMetrics ingress_metrics(registry);
  ingress::WebhookService service(
      {cfg.app_secret, cfg.verify_token, cfg.accept_sha1, cfg.max_body_bytes, cfg.max_events}, ingress_metrics,
      WallClockMs);

  const KeySpace keys(cfg.common.key_prefix, cfg.common.shards);
  grpcsvc::ControlHooks hooks;
  hooks.drain = runtime::RequestShutdown;  // ingress has nothing to pause: Meta must always get an answer
  grpcsvc::ControlService control({"ingress", "ingress-" + InstanceId(), cfg.common.control_token, keys, redis_options},
                                  hooks);
  auto grpc_server = grpcsvc::ServiceServer::Start(cfg.common.grpc_addr, &control);
  if (!grpc_server) throw std::runtime_error(grpc_server.error().message);
  redis::Client health_client(redis_options);
  grpcsvc::HealthMonitor health(**grpc_server, [&health_client] { return health_client.Ping(); });
  control.SetServingSource([&health] { return health.last_healthy(); });
  metrics::AddQueueDepthCollector(registry, redis_options, keys);
  auto admin = metrics::AdminServer::Start(cfg.common.admin_addr, registry, [&health] { return health.last_healthy(); });
  if (!admin) throw std::runtime_error(admin.error().message);

  // Every connection is a descriptor: allow as many as the system does (the server caps its
  // connections below that unless KATY_MAX_CONNECTIONS says otherwise).
  runtime::RaiseOpenFileLimit();
  ingress::ServerOptions server_options{cfg.http_addr, cfg.http_threads, cfg.max_body_bytes, cfg.read_timeout};
  server_options.max_connections = cfg.max_connections;
  auto server = ingress::WebhookServer::Start(server_options, service, {redis_options, keys, cfg.dedupe_ttl},
                                              &registry);
  if (!server) throw std::runtime_error(server.error().message);
  log::Info("listening", {{"http_port", (*server)->port()},
                          {"max_connections", (*server)->max_connections()},
                          {"grpc_port", (*grpc_server)->port()},
                          {"admin_port", (*admin)->port()}});

  while (runtime::WaitForSignal() == SIGHUP) {
  }
  runtime::ExitOnSecondSignal();
  // Shutdown order: stop reporting healthy; stop accepting, store and answer every request
  // already read, close the webhook port (Meta retries what it could not send); then control
  // and admin.
  log::Info("stopping");
  health.Drain();
  (*server)->Shutdown();
  control.SetServingSource({});
  (*grpc_server)->Shutdown();
  (*admin)->Shutdown();
  log::Info("stopped");
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  return katy::runtime::ServiceMain("katy-ingress", [&] { return Run(argc, argv); });
}
