#include "services/responder/responder_config.h"

namespace katy::responder {

ResponderConfig LoadResponderConfig(int argc, char** argv, config::Settings* settings_out) {
  auto specs = config::CommonSpecs("127.0.0.1:50052", "127.0.0.1:9102");
  specs.insert(specs.end(), {
      {"KATY_RULES", "deploy/rules/katy.yaml", "The YAML rules file (reloaded on SIGHUP)"},
      {"KATY_LEASE_TTL_MS", "10000", "Shard lease TTL; a dead instance's work is taken over after it"},
      {"KATY_WORKERS", "8", "Conversations handled at once"},
      {"KATY_MAX_ATTEMPTS", "5", "Failed attempts before an event is dead-lettered"},
  });
  auto settings = config::Settings::Load(std::move(specs), argc, argv);
  ResponderConfig cfg;
  cfg.grpc_addr = settings.Address("KATY_GRPC_ADDR");
  cfg.admin_addr = settings.Address("KATY_ADMIN_ADDR");
  cfg.redis_url = settings.String("KATY_REDIS_URL");
  cfg.shards = static_cast<int>(settings.Int("KATY_SHARDS", 1, 1024));
  cfg.key_prefix = settings.String("KATY_KEY_PREFIX");
  cfg.rules_path = settings.String("KATY_RULES");
  cfg.lease_ttl = std::chrono::milliseconds(settings.Int("KATY_LEASE_TTL_MS", 500, 600000));
  cfg.workers = static_cast<int>(settings.Int("KATY_WORKERS", 1, 1024));
  cfg.max_attempts = static_cast<int>(settings.Int("KATY_MAX_ATTEMPTS", 1, 1000));
  cfg.drain_timeout = std::chrono::seconds(settings.Int("KATY_DRAIN_TIMEOUT_S", 0, 3600));
  cfg.log_level = settings.String("KATY_LOG_LEVEL");
  if (settings_out != nullptr) *settings_out = std::move(settings);
  return cfg;
}

}  // namespace katy::responder
