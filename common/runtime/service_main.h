#pragma once

#include <functional>
#include <string>

#include "common/config.h"
#include "common/redis/redis_client.h"

namespace katy::runtime {

// Runs a service's main body: blocks the shutdown signals first (before any thread exists),
// then calls `body`. A config::ConfigError becomes one line on stderr and exit status 2; any
// other start-up exception one line and status 1.
int ServiceMain(const char* program, const std::function<int()>& body);

// The start every service shares once its settings are loaded: with --help, prints the usage
// and returns false (exit 0); otherwise sets up the JSON log (KATY_LOG_LEVEL; ConfigError when
// unknown) and logs "starting" with the effective configuration, secrets redacted.
bool BeginService(const char* program, const std::string& service, const config::Settings& settings);

// KATY_REDIS_URL as client options; ConfigError when it does not parse or its password is a
// placeholder or too short (config::CheckSecretStrength).
redis::Options RedisOptions(const config::CommonConfig& common);

}  // namespace katy::runtime
