#pragma once

#include <string_view>

// Where each Katy process listens by default, and so where the others find it: the one place
// these addresses are written. The services' settings, katyctl and the emulator use them;
// scripts/up.sh reads them from `katyctl defaults`.
namespace katy::defaults {

// The Redis every service uses, and that scripts/up.sh starts when KATY_REDIS_URL is unset.
inline constexpr std::string_view kRedisUrl = "redis://127.0.0.1:6379/0";
inline constexpr std::string_view kIngressHttp = "0.0.0.0:8080";  // Meta's webhook
inline constexpr std::string_view kIngressGrpc = "127.0.0.1:50051";
inline constexpr std::string_view kIngressAdmin = "127.0.0.1:9101";
inline constexpr std::string_view kResponderGrpc = "127.0.0.1:50052";
inline constexpr std::string_view kResponderAdmin = "127.0.0.1:9102";
inline constexpr std::string_view kSenderGrpc = "127.0.0.1:50053";
inline constexpr std::string_view kSenderAdmin = "127.0.0.1:9103";
inline constexpr std::string_view kEmulator = "127.0.0.1:8090";
// The Graph API the responder and sender call: the emulator, until KATY_GRAPH_URL names Meta.
inline constexpr std::string_view kGraphUrl = "http://127.0.0.1:8090/v25.0";
// Where the emulator delivers webhooks: ingress on this machine.
inline constexpr std::string_view kWebhookUrl = "http://127.0.0.1:8080/webhook";
// The /metrics the chat page's queue panel reads: events from ingress, sends from the sender.
inline constexpr std::string_view kQueueMetricsUrls = "http://127.0.0.1:9101/metrics,http://127.0.0.1:9103/metrics";

}  // namespace katy::defaults
