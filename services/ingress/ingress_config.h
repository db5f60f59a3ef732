#pragma once

#include <chrono>
#include <string>

#include "common/config.h"
#include "services/ingress/data_deletion.h"

namespace katy::ingress {

// Filled by the Load function below; every default lives once, in its setting specs (shown by
// --help), not in these members.
struct IngressConfig {
  config::CommonConfig common;                // the settings every service reads (README)
  config::HostPort http_addr;                 // KATY_HTTP_ADDR: the public webhook port
  std::string app_secret;                     // KATY_APP_SECRET (secret): verifies X-Hub-Signature-256
  std::string verify_token;                   // KATY_VERIFY_TOKEN (secret): the GET handshake's token
  bool accept_sha1 = false;                   // KATY_ACCEPT_SHA1: also accept legacy X-Hub-Signature
  size_t max_body_bytes = 0;                  // KATY_MAX_BODY_BYTES: larger bodies get 413
  std::chrono::seconds dedupe_ttl{};          // KATY_DEDUPE_TTL_S
  DeletionOptions deletion;                   // KATY_PUBLIC_URL, KATY_DELETION_STATUS_TTL_D, KATY_DELETION_MAX_AGE_H
  int http_threads = 0;                       // KATY_HTTP_THREADS: HTTP event loops (one Redis connection each)
  std::chrono::milliseconds redis_timeout{};  // KATY_REDIS_TIMEOUT_MS: per Redis round trip
  std::chrono::milliseconds read_timeout{};   // KATY_HTTP_READ_TIMEOUT_MS: slow clients (and
                                              // a new connection's first byte)
  size_t max_connections = 0;                 // KATY_MAX_CONNECTIONS: 0 = sized from the open-file limit
  size_t max_events = 0;                      // KATY_MAX_EVENTS_PER_REQUEST: more items in one body get 413
};

// Reads the environment and command line. Throws config::ConfigError with one clear line.
// `settings_out`, when given, receives the raw settings (for logging them redacted).
IngressConfig LoadIngressConfig(int argc, char** argv, config::Settings* settings_out = nullptr);

}  // namespace katy::ingress
