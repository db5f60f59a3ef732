#include "services/responder/responder_config.h"

#include "common/defaults.h"
#include "common/utf8.h"

namespace katy::responder {

ResponderConfig LoadResponderConfig(int argc, char** argv, config::Settings* settings_out) {
  auto specs = config::CommonSpecs(std::string(defaults::kResponderGrpc), std::string(defaults::kResponderAdmin));
  specs.insert(
      specs.end(),
      {
          {"KATY_RULES", "deploy/rules/katy.yaml", "The YAML rules file (reloaded on SIGHUP)"},
          {"KATY_GRAPH_URL", std::string(defaults::kGraphUrl),
           "Graph API base, for the user profile behind {{first_name}} (the emulator by default)"},
          {"KATY_INSTAGRAM_GRAPH_URL", "",
           "Graph API base for Instagram users' profiles (empty: KATY_GRAPH_URL; https://graph.instagram.com/v25.0 "
           "with Instagram Login tokens)"},
          {"KATY_PAGE_TOKEN", "", "Page access token for profile reads (no token: names stay neutral)", false, true},
          {"KATY_PAGE_TOKENS_FILE", "", R"(JSON file {"<page id>": "<token>"} for several pages)"},
          {"KATY_PROFILE_TIMEOUT_MS", "500", "Longest a reply waits for the user's first name"},
          {"KATY_APP_ID", "",
           "This app's id: an echo from any other app (a person in the Page Inbox) pauses the bot in that "
           "conversation (empty: echoes pause nothing)"},
          {"KATY_HUMAN_TIMEOUT_S", "14400",
           "Silence from the person (or app) that has a thread after which the bot answers again (0: never)"},
          {"KATY_BOT_DISCLOSURE", "",
           "Text sent before the bot's first reply in a conversation, after KATY_BOT_DISCLOSURE_GAP_H of silence and "
           "after a person hands the thread back (empty: off; bot_disclosure in the rules file per page)"},
          {"KATY_BOT_DISCLOSURE_GAP_H", "24", "Hours of silence after which the bot discloses itself again"},
          {"KATY_APP_SECRET", "",
           "Meta app secret: with KATY_APP_ID, the app token that maps a data deletion request to page-scoped ids",
           false, true},
          {"KATY_DELETION_STATUS_TTL_D", "90", "Days a data deletion request's outcome is kept for its status page"},
          {"KATY_CONVERSATION_TTL_D", "90",
           "Days a conversation's state, variables, first name and windows are kept after its last event"},
      });
  const config::ConsumerConfig consumer_defaults{
      .lease_ttl = std::chrono::milliseconds(10000), .workers = 8, .max_in_flight = 2048, .max_attempts = 5};
  auto consumer_specs = config::ConsumerSpecs(
      consumer_defaults, "Threads doing the Redis work of events (skills in flight do not hold one)",
      "Events read and not yet answered, those waiting on a skill included",
      "Failed attempts before an event is dead-lettered");
  specs.insert(specs.end(), consumer_specs.begin(), consumer_specs.end());
  auto settings = config::Settings::Load(std::move(specs), argc, argv);
  ResponderConfig cfg;
  cfg.common = config::LoadCommonConfig(settings);
  cfg.rules_path = settings.String("KATY_RULES");
  cfg.graph_url = settings.String("KATY_GRAPH_URL");
  cfg.instagram_graph_url = settings.String("KATY_INSTAGRAM_GRAPH_URL");
  cfg.page_token = settings.String("KATY_PAGE_TOKEN");
  cfg.page_tokens_file = settings.String("KATY_PAGE_TOKENS_FILE");
  cfg.profile_timeout = std::chrono::milliseconds(settings.Int("KATY_PROFILE_TIMEOUT_MS", 10, 10000));
  cfg.ownership.katy_app_id = settings.String("KATY_APP_ID");
  cfg.ownership.human_timeout = std::chrono::seconds(settings.Int("KATY_HUMAN_TIMEOUT_S", 0, 30LL * 24 * 3600));
  cfg.disclosure.text = settings.String("KATY_BOT_DISCLOSURE");
  if (CodePoints(cfg.disclosure.text) >= 2000) {
    throw config::ConfigError("KATY_BOT_DISCLOSURE must be under 2000 characters (Meta's limit for a text)");
  }
  cfg.disclosure.gap = std::chrono::hours(settings.Int("KATY_BOT_DISCLOSURE_GAP_H", 1, 24 * 365));
  cfg.privacy.graph_url = cfg.graph_url;
  cfg.privacy.app_id = cfg.ownership.katy_app_id;
  cfg.privacy.app_secret = settings.String("KATY_APP_SECRET");
  cfg.privacy.status_ttl = std::chrono::hours(24 * settings.Int("KATY_DELETION_STATUS_TTL_D", 1, 3650));
  cfg.privacy.conversation_ttl = std::chrono::hours(24 * settings.Int("KATY_CONVERSATION_TTL_D", 1, 3650));
  cfg.consumer = config::LoadConsumerConfig(settings, consumer_defaults);
  if (settings_out != nullptr) *settings_out = std::move(settings);
  return cfg;
}

}  // namespace katy::responder
