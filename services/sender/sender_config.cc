#include "services/sender/sender_config.h"

#include <cstdlib>

#include "common/defaults.h"

namespace katy::sender {

SenderConfig LoadSenderConfig(int argc, char** argv, config::Settings* settings_out) {
  auto specs = config::CommonSpecs(std::string(defaults::kSenderGrpc), std::string(defaults::kSenderAdmin));
  specs.insert(
      specs.end(),
      {
          {"KATY_GRAPH_URL", std::string(defaults::kGraphUrl),
           "Send API base URL (the local emulator by default; https://graph.facebook.com/v25.0 for Meta)"},
          {"KATY_INSTAGRAM_GRAPH_URL", "",
           "Send API base URL for Instagram accounts (empty: KATY_GRAPH_URL, as with a Page token; "
           "https://graph.instagram.com/v25.0 with Instagram Login tokens)"},
          {"KATY_PAGE_TOKEN", "", "Page access token used for every page without its own", false, true},
          {"KATY_PAGE_TOKENS_FILE", "", R"(JSON file {"<page id>": "<token>"} for several pages)"},
          {"KATY_APP_SECRET", "", "Meta app secret, for appsecret_proof", false, true},
          {"KATY_OUTBOUND_TOKEN", "",
           "Bearer token of katy.v1.Outbound (integrations sending as the page); required unless KATY_GRPC_ADDR is "
           "loopback, and different from KATY_CONTROL_TOKEN",
           false, true},
          {"KATY_APPSECRET_PROOF", "0", "Send appsecret_proof (needs KATY_APP_SECRET)"},
          {"KATY_PAGE_RATE", "250", "Messages per second per page, all sender instances together (Meta allows 300)"},
          {"KATY_MEDIA_RATE", "10", "Audio/video messages per second per page (Meta allows 10)"},
          {"KATY_SEND_TIMEOUT_MS", "10000", "Longest one Send API call may take"},
          {"KATY_RETRY_MAX_AGE_S", "3600", "A message failing transiently is dead-lettered once this old"},
          {"KATY_SENT_MARK_TTL_S", "172800",
           "How long a delivered message's mark is kept (it stops a reply produced twice from going twice)"},
          {"KATY_TYPING", "0", "Send typing_on before every text reply"},
          {"KATY_MARK_SEEN", "0", "Send mark_seen before the first reply to an event"},
      });
  // The Send API calls wait on the event loop, not on threads: these threads do the Redis work.
  const config::ConsumerConfig consumer_defaults{
      .lease_ttl = std::chrono::milliseconds(10000), .workers = 8, .max_in_flight = 2048, .max_attempts = 8};
  auto consumer_specs = config::ConsumerSpecs(
      consumer_defaults, "", "Messages in flight at once (one per recipient): read, sent or being sent",
      "Transient failures before a message is dead-lettered");
  specs.insert(specs.end(), consumer_specs.begin(), consumer_specs.end());
  auto settings = config::Settings::Load(std::move(specs), argc, argv);
  SenderConfig cfg;
  cfg.common = config::LoadCommonConfig(settings);
  cfg.graph_url = settings.String("KATY_GRAPH_URL");
  cfg.instagram_graph_url = settings.String("KATY_INSTAGRAM_GRAPH_URL");
  cfg.page_token = settings.String("KATY_PAGE_TOKEN");
  cfg.page_tokens_file = settings.String("KATY_PAGE_TOKENS_FILE");
  cfg.app_secret = settings.String("KATY_APP_SECRET");
  cfg.outbound_token = settings.String("KATY_OUTBOUND_TOKEN");
  cfg.appsecret_proof = settings.Bool("KATY_APPSECRET_PROOF");
  cfg.page_rate = settings.Double("KATY_PAGE_RATE", 0.01, 100000);
  cfg.media_rate = settings.Double("KATY_MEDIA_RATE", 0.01, 100000);
  cfg.send_timeout = std::chrono::milliseconds(settings.Int("KATY_SEND_TIMEOUT_MS", 100, 600000));
  cfg.retry_max_age = std::chrono::seconds(settings.Int("KATY_RETRY_MAX_AGE_S", 1, 7 * 86400));
  cfg.sent_mark_ttl = std::chrono::seconds(settings.Int("KATY_SENT_MARK_TTL_S", 3600, 30LL * 86400));
  cfg.typing = settings.Bool("KATY_TYPING");
  cfg.mark_seen = settings.Bool("KATY_MARK_SEEN");
  cfg.consumer = config::LoadConsumerConfig(settings, consumer_defaults);
  if (!settings.HelpRequested()) {
    // KATY_WORKERS once bounded the sender's calls, a thread each; left set alone, it would now
    // be ignored without a word.
    if (std::getenv("KATY_WORKERS") != nullptr && !settings.IsSet("KATY_MAX_IN_FLIGHT")) {
      throw config::ConfigError(
          "KATY_WORKERS no longer applies to the sender (its Send API calls no longer take a thread each): "
          "set KATY_MAX_IN_FLIGHT, the messages in flight at once (default 2048), and unset KATY_WORKERS");
    }
    if (cfg.page_token.empty() && cfg.page_tokens_file.empty()) {
      throw config::ConfigError(
          "missing required setting KATY_PAGE_TOKEN (or KATY_PAGE_TOKEN_FILE, or KATY_PAGE_TOKENS_FILE)");
    }
    if (cfg.appsecret_proof && cfg.app_secret.empty()) {
      throw config::ConfigError("KATY_APPSECRET_PROOF=1 needs KATY_APP_SECRET");
    }
    config::CheckSecretStrength("KATY_APP_SECRET", cfg.app_secret, config::kMinSecretLength);
    config::CheckServiceToken("KATY_OUTBOUND_TOKEN", cfg.outbound_token, cfg.common.grpc_addr);
    // One credential for both would give every integration the operators' powers.
    if (!cfg.outbound_token.empty() && cfg.outbound_token == cfg.common.control_token) {
      throw config::ConfigError(
          "KATY_OUTBOUND_TOKEN must differ from KATY_CONTROL_TOKEN: integrations that send "
          "as the page must not be able to drain services or read conversations");
    }
  }
  if (settings_out != nullptr) *settings_out = std::move(settings);
  return cfg;
}

}  // namespace katy::sender
