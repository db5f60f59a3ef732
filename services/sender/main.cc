// katy-sender: delivers replies through the Send API, in order, under Meta's limits.
#include <chrono>
#include <cstdio>

#include "common/clock.h"
#include "common/grpc/control_service.h"
#include "common/log.h"
#include "common/redis/client_pool.h"
#include "common/redis/sharded_consumer.h"
#include "common/runtime/open_files.h"
#include "common/runtime/run_service.h"
#include "common/runtime/service_main.h"
#include "common/runtime/signals.h"
#include "services/sender/outbound_service.h"
#include "services/sender/sender_config.h"
#include "services/sender/sender_handler.h"

namespace {

int Run(int argc, char** argv) {
  using namespace katy;
  config::Settings settings;
  sender::SenderConfig cfg = sender::LoadSenderConfig(argc, argv, &settings);
  if (!runtime::BeginService("katy-sender", "sender", settings)) return 0;  // --help
  redis::Options redis_options = runtime::RedisOptions(cfg.common);
  auto tokens = PageTokens::Load(cfg.page_token, cfg.page_tokens_file);
  if (!tokens) throw config::ConfigError(tokens.error().message);

  prometheus::Registry registry;
  sender::SenderMetrics sender_metrics(registry);
  KeySpace keys(cfg.common.key_prefix, cfg.common.shards);
  sender::SenderOptions options;
  options.graph_url = cfg.graph_url;
  options.instagram_graph_url = cfg.instagram_graph_url;
  if (cfg.appsecret_proof) options.appsecret = cfg.app_secret;
  options.request_timeout = cfg.send_timeout;
  options.retry_max_age = cfg.retry_max_age;
  options.sent_ttl = cfg.sent_mark_ttl;
  options.typing = cfg.typing;
  options.mark_seen = cfg.mark_seen;
  sender::PageLimiter limiter(keys, cfg.page_rate, cfg.media_rate);

  auto consumer_options = redis::ShardedConsumerOptions::ForRole("sender", keys, cfg.consumer);
  // Every call in flight holds a connection over HTTP/1.1 (an HTTP/2 host needs few): each
  // message in flight may need one, so the process may hold that many sockets.
  runtime::RaiseOpenFileLimit();
  http::AsyncClientOptions calls;
  calls.max_connections_per_host = consumer_options.max_in_flight;
  calls.max_total_connections = 2L * consumer_options.max_in_flight;
  sender::SenderHandler handler(keys, options, *tokens, limiter, sender_metrics, WallClockMs, calls);

  redis::ShardedConsumer consumer(
      redis_options, keys, consumer_options,
      [&]() -> redis::BatchHandler {
        // One handler serves every worker.
        return [&handler](redis::Client& client, const std::vector<redis::BatchEntry>& batch,
                          const redis::Resume& resume) { return handler.HandleBatch(client, batch, resume); };
      },
      sender::ConversationOfMessage, &registry);

  // Sender state lives in Redis (katy:rate:<page>), so every instance obeys it at once.
  // An operator's rate or pause, lost in a failover, is seen in katyctl status and set again.
  redis::ClientPool control_redis(redis_options.WithoutWait(), 1);
  if (auto adopted = limiter.AdoptUnlistedPages(*control_redis.Acquire()); !adopted) {
    log::Warn("cannot list the pages an older sender left unlisted; they show in status once they send again",
              {{"error", adopted.error().message}});
  }
  auto with_redis = [&control_redis](auto action) {
    auto client = control_redis.Acquire();
    auto done = action(*client);
    return done ? grpc::Status::OK : grpcsvc::ToGrpc(done.error());
  };
  grpcsvc::ControlHooks hooks;
  hooks.owned_shards = [&consumer] { return consumer.OwnedShardList(); };
  hooks.held_shards = [&consumer] { return consumer.HeldShards(); };
  hooks.pause = [&](const std::string& page) {
    return with_redis([&](redis::Client& client) -> Status {
      auto paused = limiter.Pause(client, page.empty() ? sender::PageLimiter::kAllPages : page, "operator");
      if (!paused) return paused.error();
      return Ok{};
    });
  };
  hooks.resume = [&](const std::string& page) {
    return with_redis([&](redis::Client& client) {
      return limiter.Resume(client, page.empty() ? sender::PageLimiter::kAllPages : page);
    });
  };
  hooks.set_rate = [&](const std::string& page, double per_second) {
    return with_redis([&](redis::Client& client) { return limiter.SetRate(client, page, per_second); });
  };
  hooks.drain = runtime::RequestShutdown;
  grpcsvc::ControlService control({"sender", consumer_options.instance, cfg.common.control_token, keys, redis_options},
                                  hooks);

  // katy.v1.Outbound beside Control: messages no user event triggered, behind the same token.
  sender::OutboundService outbound(keys, redis_options, cfg.outbound_token, registry, WallClockMs, cfg.sent_mark_ttl);

  runtime::ServiceSpec spec;
  spec.common = cfg.common;
  spec.redis = redis_options;
  spec.registry = &registry;
  spec.control = &control;
  spec.more_services = {&outbound};
  spec.body.run = [&consumer](const std::atomic<bool>& stop) { consumer.Run(stop); };
  return runtime::RunService(spec);
}

}  // namespace

int main(int argc, char** argv) {
  return katy::runtime::ServiceMain("katy-sender", [&] { return Run(argc, argv); });
}
