#pragma once

#include <chrono>
#include <string>

#include "common/config.h"
#include "services/responder/data_deletion.h"
#include "services/responder/disclosure.h"
#include "services/responder/thread_owner.h"

namespace katy::responder {

// Filled by the Load function below; every default lives once, in its setting specs (shown by
// --help), not in these members.
struct ResponderConfig {
  config::CommonConfig common;      // the settings every service reads (README)
  config::ConsumerConfig consumer;  // KATY_LEASE_TTL_MS, KATY_WORKERS, KATY_MAX_IN_FLIGHT, KATY_MAX_ATTEMPTS
  std::string rules_path;           // KATY_RULES: the YAML rules file (reloaded on SIGHUP)
  std::string graph_url;            // KATY_GRAPH_URL: for the user profile API ({{first_name}})
  std::string instagram_graph_url;  // KATY_INSTAGRAM_GRAPH_URL: the same for Instagram users
  std::string page_token;           // KATY_PAGE_TOKEN (secret): token for every page
  std::string page_tokens_file;     // KATY_PAGE_TOKENS_FILE: JSON {page id: token}
  std::chrono::milliseconds profile_timeout{};  // KATY_PROFILE_TIMEOUT_MS: longest a
                                                // reply waits for a first name
  PrivacySettings privacy;        // KATY_CONVERSATION_TTL_D, KATY_APP_ID, KATY_APP_SECRET, KATY_DELETION_STATUS_TTL_D
  OwnershipSettings ownership;    // KATY_APP_ID, KATY_HUMAN_TIMEOUT_S
  DisclosureSettings disclosure;  // KATY_BOT_DISCLOSURE, KATY_BOT_DISCLOSURE_GAP_H
};

// Throws config::ConfigError with one clear line.
ResponderConfig LoadResponderConfig(int argc, char** argv, config::Settings* settings_out = nullptr);

}  // namespace katy::responder
