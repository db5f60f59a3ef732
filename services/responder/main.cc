// katy-responder: picks replies for inbound events with the YAML rules engine.
#include <chrono>
#include <cstdio>
#include <thread>

#include "common/clock.h"
#include "common/grpc/control_service.h"
#include "common/log.h"
#include "common/redis/pause_flag.h"
#include "common/redis/sharded_consumer.h"
#include "common/runtime/open_files.h"
#include "common/runtime/run_service.h"
#include "common/runtime/service_main.h"
#include "common/runtime/signals.h"
#include "services/responder/reminder_pump.h"
#include "services/responder/responder_config.h"
#include "services/responder/responder_handler.h"

namespace {

int Run(int argc, char** argv) {
  using namespace katy;
  config::Settings settings;
  responder::ResponderConfig cfg = responder::LoadResponderConfig(argc, argv, &settings);
  if (!runtime::BeginService("katy-responder", "responder", settings)) return 0;  // --help
  redis::Options redis_options = runtime::RedisOptions(cfg.common);

  responder::RulesHolder rules(cfg.rules_path);
  if (auto loaded = rules.Reload(); !loaded) throw config::ConfigError(loaded.error().message);
  log::Info("rules loaded", {{"path", cfg.rules_path}, {"rules", rules.Current()->rules.size()}});

  prometheus::Registry registry;
  responder::ResponderMetrics responder_metrics(registry);
  KeySpace keys(cfg.common.key_prefix, cfg.common.shards);

  auto consumer_options = redis::ShardedConsumerOptions::ForRole("responder", keys, cfg.consumer);
  redis::PauseFlag paused(redis_options.WithoutWait(), keys.Paused("responder"));
  consumer_options.paused = [&paused] { return paused.IsSet(); };

  auto tokens = PageTokens::Load(cfg.page_token, cfg.page_tokens_file);
  if (!tokens) throw config::ConfigError(tokens.error().message);
  responder::ProfileClient profiles(cfg.graph_url, *tokens, cfg.profile_timeout, cfg.instagram_graph_url);
  // Each event waiting on a skill over HTTP/1.1 holds a connection: as many as may be in flight.
  runtime::RaiseOpenFileLimit();
  http::AsyncClientOptions skill_calls;
  skill_calls.max_connections_per_host = consumer_options.max_in_flight;
  skill_calls.max_total_connections = 2L * consumer_options.max_in_flight;
  responder::ResponderHandler handler(keys, rules, responder_metrics, WallClockMs, &profiles, cfg.ownership,
                                      skill_calls, cfg.disclosure, cfg.privacy);
  redis::ShardedConsumer consumer(
      redis_options, keys, consumer_options,
      [&]() -> redis::BatchHandler {
        responder::ResponderHandler* shared = &handler;
        return [shared](redis::Client& client, const std::vector<redis::BatchEntry>& batch,
                        const redis::Resume& resume) { return shared->HandleBatch(client, batch, resume); };
      },
      responder::ConversationOfEvent, &registry);

  grpcsvc::ControlHooks hooks;
  hooks.owned_shards = [&consumer] { return consumer.OwnedShardList(); };
  hooks.held_shards = [&consumer] { return consumer.HeldShards(); };
  hooks.paused = [&paused] { return paused.IsSet(); };
  auto set_paused = [&paused](bool value) {
    return [&paused, value](const std::string& page) {
      if (!page.empty()) {
        return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                            "the responder pauses as a whole; pages pause in the sender");
      }
      auto done = paused.Set(value);
      return done ? grpc::Status::OK : grpcsvc::ToGrpc(done.error());
    };
  };
  hooks.pause = set_paused(true);
  hooks.resume = set_paused(false);
  // SIGHUP and Control.ReloadRules reload the same way; a bad file leaves the rules in force.
  // The number of rules now in force, or why the file was refused; logged either way.
  auto reload = [&rules](int* count) {
    auto reloaded = rules.Reload();
    if (!reloaded) {
      log::Error("rules reload refused; the rules in force stay", {{"error", reloaded.error().message}});
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, reloaded.error().message);
    }
    log::Info("rules reloaded", {{"rules", *reloaded}});
    *count = static_cast<int>(*reloaded);
    return grpc::Status::OK;
  };
  hooks.reload_rules = reload;
  hooks.drain = runtime::RequestShutdown;
  grpcsvc::ControlService control(
      {"responder", consumer_options.instance, cfg.common.control_token, keys, redis_options}, hooks);

  runtime::ServiceSpec spec;
  spec.common = cfg.common;
  spec.redis = redis_options;
  spec.registry = &registry;
  spec.control = &control;
  spec.body.on_reload = [&reload] {
    int rules_in_force = 0;
    reload(&rules_in_force);  // SIGHUP has no one to answer: the log says what happened
  };
  // Due reminders go onto their conversations' streams from the shards this instance holds.
  responder::ReminderPump::Metrics reminder_metrics(registry, responder_metrics.reminders);
  responder::ReminderPump reminders(
      keys, consumer_options.instance, [&consumer] { return consumer.OwnedShardList(); }, reminder_metrics,
      WallClockMs);
  spec.body.run = [&](const std::atomic<bool>& stop) {
    std::atomic<bool> consumer_done{false};
    std::thread pump([&] {
      redis::Client client(redis_options);
      reminders.Run(client, consumer_done, std::chrono::milliseconds(500));
    });
    consumer.Run(stop);
    consumer_done = true;
    pump.join();
  };
  return runtime::RunService(spec);
}

}  // namespace

int main(int argc, char** argv) {
  return katy::runtime::ServiceMain("katy-responder", [&] { return Run(argc, argv); });
}
