#include "services/ingress/ingress_config.h"

#include "common/defaults.h"
#include "services/ingress/webhook_parser.h"
#include "services/ingress/webhook_server.h"

namespace katy::ingress {
namespace {

// Meta's dashboard takes any string as the verify token; it only lets a caller complete the
// GET handshake, so a shorter one is allowed than for the app secret.
constexpr size_t kMinVerifyTokenLength = 8;

}  // namespace

IngressConfig LoadIngressConfig(int argc, char** argv, config::Settings* settings_out) {
  auto specs = config::CommonSpecs(std::string(defaults::kIngressGrpc), std::string(defaults::kIngressAdmin));
  specs.insert(
      specs.end(),
      {
          {"KATY_HTTP_ADDR", std::string(defaults::kIngressHttp),
           "Public address for Meta's webhook (GET/POST /webhook)"},
          {"KATY_APP_SECRET", "", "Meta app secret: verifies X-Hub-Signature-256", true, true},
          {"KATY_VERIFY_TOKEN", "", "Token Meta echoes in the GET /webhook handshake", true, true},
          {"KATY_ACCEPT_SHA1", "0", "Accept the legacy sha1 X-Hub-Signature when sha256 is absent"},
          {"KATY_MAX_BODY_BYTES", std::to_string(kDefaultMaxBodyBytes),
           "Largest webhook body accepted; larger gets 413"},
          {"KATY_DEDUPE_TTL_S", "86400", "How long a delivered event's dedupe mark is kept"},
          {"KATY_HTTP_THREADS", std::to_string(kDefaultHttpThreads), "Webhook HTTP worker threads"},
          {"KATY_REDIS_TIMEOUT_MS", "1000",
           "Longest wait for Redis per request before answering 503 (plus KATY_REDIS_WAIT_TIMEOUT_MS with WAIT)"},
          {"KATY_HTTP_READ_TIMEOUT_MS", "5000",
           "A client that takes longer to send its request (or a new connection its first byte) is cut off"},
          {"KATY_MAX_CONNECTIONS", "0",
           "Webhook connections held at once; more get 503. 0: the open-file limit less 256"},
          {"KATY_MAX_EVENTS_PER_REQUEST", std::to_string(kDefaultMaxEventsPerRequest),
           "Most events in one webhook body (Meta sends up to 1000); more get 413"},
          {"KATY_PUBLIC_URL", "",
           "Where Meta and people reach the webhook port (https://bot.example.com): turns on POST "
           "/data-deletion, Meta's data deletion callback, and its status page"},
          {"KATY_DELETION_STATUS_TTL_D", "90", "Days a data deletion request's outcome is kept for its status page"},
          {"KATY_DELETION_MAX_AGE_H", "24",
           "A data deletion request signed longer ago than this is refused (a replay); Meta's retries come sooner"},
      });
  auto settings = config::Settings::Load(std::move(specs), argc, argv);
  IngressConfig cfg;
  cfg.http_addr = settings.Address("KATY_HTTP_ADDR");
  cfg.common = config::LoadCommonConfig(settings);
  cfg.app_secret = settings.String("KATY_APP_SECRET");
  cfg.verify_token = settings.String("KATY_VERIFY_TOKEN");
  cfg.accept_sha1 = settings.Bool("KATY_ACCEPT_SHA1");
  cfg.max_body_bytes = static_cast<size_t>(settings.Int("KATY_MAX_BODY_BYTES", 1024, 64 << 20));
  cfg.dedupe_ttl = std::chrono::seconds(settings.Int("KATY_DEDUPE_TTL_S", 60, 30LL * 86400));
  cfg.http_threads = static_cast<int>(settings.Int("KATY_HTTP_THREADS", 1, 256));
  cfg.redis_timeout = std::chrono::milliseconds(settings.Int("KATY_REDIS_TIMEOUT_MS", 50, 60000));
  cfg.read_timeout = std::chrono::milliseconds(settings.Int("KATY_HTTP_READ_TIMEOUT_MS", 100, 600000));
  cfg.max_connections = static_cast<size_t>(settings.Int("KATY_MAX_CONNECTIONS", 0, 10'000'000));
  cfg.max_events = static_cast<size_t>(settings.Int("KATY_MAX_EVENTS_PER_REQUEST", 1, 100'000));
  cfg.deletion.app_secret = cfg.app_secret;
  cfg.deletion.public_url = settings.String("KATY_PUBLIC_URL");
  while (cfg.deletion.public_url.ends_with('/')) cfg.deletion.public_url.pop_back();
  cfg.deletion.status_ttl_s = settings.Int("KATY_DELETION_STATUS_TTL_D", 1, 3650) * 24 * 3600;
  cfg.deletion.bounds.max_age_s = settings.Int("KATY_DELETION_MAX_AGE_H", 1, 24 * 30) * 3600;
  // Whoever knows the app secret can sign webhooks; the verify token only answers the handshake.
  config::CheckSecretStrength("KATY_APP_SECRET", cfg.app_secret, config::kMinSecretLength);
  config::CheckSecretStrength("KATY_VERIFY_TOKEN", cfg.verify_token, kMinVerifyTokenLength);
  if (settings_out != nullptr) *settings_out = std::move(settings);
  return cfg;
}

}  // namespace katy::ingress
