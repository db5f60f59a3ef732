#include "common/runtime/service_main.h"

#include <cstdio>
#include <exception>

#include "common/config.h"
#include "common/log.h"
#include "common/runtime/signals.h"
#include "common/shard.h"

namespace katy::runtime {

int ServiceMain(const char* program, const std::function<int()>& body) {
  BlockSignals();
  try {
    return body();
  } catch (const config::ConfigError& e) {
    std::fprintf(stderr, "%s: %s\n", program, e.what());
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s: fatal: %s\n", program, e.what());
    return 1;
  }
}

bool BeginService(const char* program, const std::string& service, const config::Settings& settings) {
  if (settings.HelpRequested()) {
    std::fputs(settings.Usage(program).c_str(), stdout);
    return false;
  }
  log::Level level;
  if (!log::ParseLevel(settings.String("KATY_LOG_LEVEL"), &level)) {
    throw config::ConfigError("KATY_LOG_LEVEL=" + settings.String("KATY_LOG_LEVEL") +
                              ": expected debug, info, warn or error");
  }
  log::Init(service, level);
  log::AllowMessageText(settings.Bool("KATY_LOG_MESSAGE_TEXT"));
  log::Info("starting", {{"config", log::RawJson{settings.RedactedJson()}}});
  return true;
}

redis::Options RedisOptions(const config::CommonConfig& common) {
  auto options = redis::ParseUrl(common.redis_url);
  if (!options) throw config::ConfigError("KATY_REDIS_URL: " + options.error().message);
  config::CheckSecretStrength("the password in KATY_REDIS_URL", options->password, config::kMinSecretLength);
  options->wait_replicas = common.redis_wait_replicas;
  options->wait_timeout = common.redis_wait_timeout;
  options->wait_policy =
      common.redis_wait_policy == "degrade" ? redis::WaitPolicy::kDegrade : redis::WaitPolicy::kStrict;
  options->unwaited_key_prefixes = KeySpace(common.key_prefix, common.shards).UnwaitedPrefixes();
  return *options;
}

}  // namespace katy::runtime
