#pragma once

#include <chrono>
#include <string>

#include "common/config.h"

namespace katy::sender {

// Filled by the Load function below; every default lives once, in its setting specs (shown by
// --help), not in these members.
struct SenderConfig {
  config::CommonConfig common;               // the settings every service reads (README)
  config::ConsumerConfig consumer;           // KATY_LEASE_TTL_MS, KATY_MAX_IN_FLIGHT, KATY_MAX_ATTEMPTS
  std::string graph_url;                     // KATY_GRAPH_URL: the Send API base (the emulator by default)
  std::string instagram_graph_url;           // empty: graph_url
  std::string page_token;                    // KATY_PAGE_TOKEN (secret): token for every page
  std::string page_tokens_file;              // KATY_PAGE_TOKENS_FILE: JSON {page id: token}
  std::string app_secret;                    // KATY_APP_SECRET (secret): for appsecret_proof
  std::string outbound_token;                // KATY_OUTBOUND_TOKEN (secret): katy.v1.Outbound's bearer token
  bool appsecret_proof = false;              // KATY_APPSECRET_PROOF: send appsecret_proof
  double page_rate = 0;                      // KATY_PAGE_RATE: messages/s per page, all senders together
  double media_rate = 0;                     // KATY_MEDIA_RATE: audio/video messages/s per page
  std::chrono::milliseconds send_timeout{};  // KATY_SEND_TIMEOUT_MS: one Send API call
  std::chrono::seconds retry_max_age{};      // KATY_RETRY_MAX_AGE_S: then "expired"
  std::chrono::seconds sent_mark_ttl{};      // KATY_SENT_MARK_TTL_S: delivered marks kept
  bool typing = false;                       // KATY_TYPING: typing_on before every text reply
  bool mark_seen = false;                    // KATY_MARK_SEEN: mark_seen before the first reply to an event
};

// Throws config::ConfigError with one clear line (for example when no page token is given).
SenderConfig LoadSenderConfig(int argc, char** argv, config::Settings* settings_out = nullptr);

}  // namespace katy::sender
