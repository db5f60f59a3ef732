// katy-ingress: verifies Meta's webhooks and enqueues every event onto Redis streams.
#include <memory>

#include "common/clock.h"
#include "common/events.h"
#include "common/grpc/control_service.h"
#include "common/log.h"
#include "common/runtime/open_files.h"
#include "common/runtime/run_service.h"
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
  // WAIT comes on top of the write it confirms.
  redis_options.socket_timeout =
      cfg.redis_timeout + (redis_options.wait_replicas > 0 ? redis_options.wait_timeout : std::chrono::milliseconds(0));

  prometheus::Registry registry;
  ingress::IngressMetrics ingress_metrics(registry);
  ingress::WebhookService service(
      {cfg.app_secret, cfg.verify_token, cfg.accept_sha1, cfg.max_body_bytes, cfg.max_events, cfg.deletion},
      ingress_metrics, WallClockMs);

  const KeySpace keys(cfg.common.key_prefix, cfg.common.shards);
  grpcsvc::ControlHooks hooks;
  hooks.drain = runtime::RequestShutdown;  // ingress has nothing to pause: Meta must always get an answer
  grpcsvc::ControlService control({"ingress", "ingress-" + InstanceId(), cfg.common.control_token, keys, redis_options},
                                  hooks);

  // Every connection is a descriptor: allow as many as the system does (the server caps its
  // connections below that unless KATY_MAX_CONNECTIONS says otherwise).
  runtime::RaiseOpenFileLimit();
  ingress::ServerOptions server_options{cfg.http_addr, cfg.http_threads, cfg.max_body_bytes, cfg.read_timeout};
  server_options.max_connections = cfg.max_connections;
  std::unique_ptr<ingress::WebhookServer> server;

  runtime::ServiceSpec spec;
  spec.common = cfg.common;
  spec.redis = redis_options;
  spec.registry = &registry;
  spec.control = &control;
  spec.body.start = [&] {
    // Marks an ingress before bucketed marks wrote belong to events before this start.
    const int64_t started_ms = WallClockMs();
    auto started = ingress::WebhookServer::Start(server_options, service,
                                                 {redis_options, keys, cfg.dedupe_ttl, started_ms}, &registry);
    if (!started) throw std::runtime_error(started.error().message);
    server = std::move(*started);
    log::Info("serving webhooks", {{"http_port", server->port()}, {"max_connections", server->max_connections()}});
  };
  // Stop accepting, store and answer every request already read, close the webhook port (Meta
  // retries what it could not send).
  spec.body.stop = [&server] { server->Shutdown(); };
  return runtime::RunService(spec);
}

}  // namespace

int main(int argc, char** argv) {
  return katy::runtime::ServiceMain("katy-ingress", [&] { return Run(argc, argv); });
}
