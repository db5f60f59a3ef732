#include "tools/emulator/emulator_config.h"

#include <sstream>
#include <string_view>

#include "common/defaults.h"

namespace katy::emulator {
namespace {

std::vector<config::SettingSpec> EmulatorSpecs() {
  const EmulatorOptions built_in;
  return {
      {"KATY_EMULATOR_ADDR", std::string(defaults::kEmulator), "Address of the emulated Graph API"},
      {"KATY_APP_SECRET", "", "App secret that signs the webhooks sent to ingress", true, true},
      {"KATY_INGRESS_URL", std::string(defaults::kWebhookUrl), "Where webhooks are delivered"},
      {"KATY_EMULATOR_PAGE_TOKEN", "",
       "When set, the only page access token the Send API accepts (else any non-empty one)", false, true},
      {"KATY_EMULATOR_FAULTS", "", "Faults to inject from the start, as JSON (see tools/emulator/README.md)"},
      {"KATY_EMULATOR_THREADS", std::to_string(built_in.threads), "HTTP worker threads (an injected hang holds one)"},
      {"KATY_EMULATOR_WEBHOOK_BATCH", std::to_string(built_in.webhook_batch),
       "Messaging items per webhook POST at most (Meta batches under load)"},
      {"KATY_EMULATOR_ECHOES", built_in.echoes ? "1" : "0", "Send an echo webhook for every message the bot sends"},
      {"KATY_EMULATOR_PAGE", built_in.chat_page_id, "The page id the chat page talks to"},
      {"KATY_EMULATOR_INSTAGRAM", built_in.chat_instagram_id,
       "The Instagram account id the chat page talks to when switched to Instagram"},
      {"KATY_EMULATOR_METRICS_URLS", std::string(defaults::kQueueMetricsUrls),
       "Comma-separated /metrics URLs of the services, for the chat page's queue panel"},
      {"KATY_GRAPH_URL", "",
       "Read only to refuse to start when it names Meta's Graph API: that environment is a real page's, and its app "
       "secret must not sign emulated webhooks"},
      config::LogLevelSpec(),
      config::LogMessageTextSpec(),
  };
}

// True when `url` is Meta's own Graph API (graph.facebook.com, graph.instagram.com and their
// regional or beta hosts).
bool IsMetaGraphUrl(std::string_view url) {
  for (std::string_view host : {"facebook.com", "instagram.com"}) {
    const size_t at = url.find(host);
    if (at == std::string_view::npos) continue;
    const size_t end = at + host.size();
    if (end == url.size() || url[end] == '/' || url[end] == ':') return true;
  }
  return false;
}

std::vector<std::string> SplitCommas(const std::string& text) {
  std::vector<std::string> parts;
  std::stringstream in(text);
  for (std::string part; std::getline(in, part, ',');) {
    if (!part.empty()) parts.push_back(part);
  }
  return parts;
}

}  // namespace

EmulatorOptions LoadEmulatorOptions(int argc, char** argv, config::Settings* settings_out) {
  auto settings = config::Settings::Load(EmulatorSpecs(), argc, argv);
  EmulatorOptions options;
  options.address = settings.Address("KATY_EMULATOR_ADDR");
  options.app_secret = settings.String("KATY_APP_SECRET");
  if (IsMetaGraphUrl(settings.String("KATY_GRAPH_URL"))) {
    throw config::ConfigError(
        "KATY_GRAPH_URL names Meta's Graph API: this is a real page's environment, and the "
        "emulator would sign webhooks with its app secret. Run the emulator with its own "
        "settings (scripts/up.sh or docker-compose without KATY_ENV_FILE)");
  }
  config::CheckSecretStrength("KATY_APP_SECRET", options.app_secret, config::kMinSecretLength);
  options.ingress_url = settings.String("KATY_INGRESS_URL");
  options.page_token = settings.String("KATY_EMULATOR_PAGE_TOKEN");
  options.faults_json = settings.String("KATY_EMULATOR_FAULTS");
  options.threads = static_cast<int>(settings.Int("KATY_EMULATOR_THREADS", 1, 256));
  options.webhook_batch = static_cast<size_t>(settings.Int("KATY_EMULATOR_WEBHOOK_BATCH", 1, 1000));
  options.echoes = settings.Bool("KATY_EMULATOR_ECHOES");
  options.chat_page_id = settings.String("KATY_EMULATOR_PAGE");
  options.chat_instagram_id = settings.String("KATY_EMULATOR_INSTAGRAM");
  options.metrics_urls = SplitCommas(settings.String("KATY_EMULATOR_METRICS_URLS"));
  *settings_out = std::move(settings);
  return options;
}

}  // namespace katy::emulator
