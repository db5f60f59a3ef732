#include "services/ingress/webhook_service.h"

#include <algorithm>

#include "common/events.h"
#include "services/ingress/handshake.h"
#include "services/ingress/signature.h"
#include "services/ingress/webhook_parser.h"

namespace katy::ingress {

IngressMetrics::IngressMetrics(prometheus::Registry& registry)
    : requests(prometheus::BuildCounter()
                   .Name("katy_ingress_requests_total")
                   .Help("Webhook HTTP requests by status")
                   .Register(registry)),
      events(prometheus::BuildCounter()
                 .Name("katy_ingress_events_total")
                 .Help("Webhook events by kind and result (enqueued, duplicate)")
                 .Register(registry)),
      rejections(prometheus::BuildCounter()
                     .Name("katy_ingress_rejections_total")
                     .Help("Rejected webhook requests by reason")
                     .Register(registry)),
      latency(prometheus::BuildHistogram()
                  .Name("katy_ingress_request_duration_seconds")
                  .Help("Webhook request handling time")
                  .Register(registry)
                  .Add({}, metrics::LatencyBuckets())),
      last_webhook(prometheus::BuildGauge()
                       .Name("katy_ingress_last_webhook_timestamp_seconds")
                       .Help("Unix time of the last event received per page (Meta unsubscribes a "
                             "failing webhook silently)")
                       .Register(registry)) {}

WebhookService::WebhookService(WebhookOptions options, IngressMetrics& metrics, Clock now_ms)
    : options_(std::move(options)), metrics_(metrics), now_ms_(std::move(now_ms)) {}

HttpReply WebhookService::Reject(int status, const std::string& reason, const std::string& detail) const {
  metrics_.rejections.Add({{"reason", reason}}).Increment();
  rejection_log_.Write(log::Level::kWarn, "webhook rejected",
                       {{"status", status}, {"reason", reason}, {"detail", detail}});
  return {status, detail + "\n", 0, {}};
}

void WebhookService::RecordRequest(int status, double seconds) const {
  metrics_.requests.Add({{"status", std::to_string(status)}}).Increment();
  metrics_.latency.Observe(seconds);
}

HttpReply WebhookService::HandleGet(std::string_view mode, std::string_view token, std::string_view challenge) const {
  HandshakeReply handshake = Handshake(mode, token, challenge, options_.verify_token);
  if (handshake.status != 200) return Reject(403, "handshake", "verification failed");
  // Anyone may call the handshake: its log is rate-limited like rejections.
  handshake_log_.Write(log::Level::kInfo, "webhook verified by handshake");
  return {200, handshake.body, 0, {}};
}

std::variant<HttpReply, std::vector<katy::v1::InboundEvent>> WebhookService::CheckPost(
    std::string_view body, std::string_view sha256_header, std::string_view sha1_header) const {
  if (body.size() > options_.max_body_bytes) {
    return Reject(413, "too_large", "body exceeds " + std::to_string(options_.max_body_bytes) + " bytes");
  }
  SignatureCheck check = VerifySignature(options_.app_secret, body, sha256_header, sha1_header, options_.accept_sha1);
  if (check != SignatureCheck::kValid) {
    return Reject(403, std::string("signature_") + SignatureCheckName(check), "invalid signature");
  }
  auto events = ParseWebhook(body, now_ms_(), options_.max_events);
  if (!events) {
    return Reject(events.error().reason == kTooManyEvents ? 413 : 400, events.error().Label(), events.error().message);
  }
  return std::move(*events);
}

HttpReply WebhookService::FinishPost(std::span<const katy::v1::InboundEvent> events, std::span<const Stored> stored,
                                     const std::optional<Error>& error) const {
  const bool all_stored = std::none_of(stored.begin(), stored.end(), [](Stored s) { return s == Stored::kFailed; });
  if (!all_stored) {
    const Error failure = error.value_or(Error{ErrorCode::kReply, "an event was not stored"});
    metrics_.rejections.Add({{"reason", "storage_" + failure.Label()}}).Increment();
    storage_log_.Write(log::Level::kError, "cannot store webhook events; answering 503",
                       {{"error", failure.message}, {"events", events.size()}});
    return {503, "storage unavailable, retry\n", 1, {}};
  }
  for (size_t i = 0; i < events.size(); ++i) {
    const auto& event = events[i];
    metrics_.events
        .Add({{"kind", EventKindName(event.kind())},
              {"result", stored[i] == Stored::kEnqueued ? "enqueued" : "duplicate"}})
        .Increment();
    metrics_.last_webhook.Add({{"page", metrics_.page_label(event.page_id())}})
        .Set(static_cast<double>(event.received_at_ms()) / 1000.0);
  }
  return {200, "EVENT_RECEIVED", 0, {}};
}

std::variant<HttpReply, DeletionAccepted> WebhookService::CheckDeletion(std::string_view body) const {
  auto checked = CheckDeletionRequest(options_.deletion, body, now_ms_());
  if (auto* accepted = std::get_if<DeletionAccepted>(&checked)) return std::move(*accepted);
  const auto& refusal = std::get<DeletionRefusal>(checked);
  return Reject(refusal.status, "deletion_" + refusal.reason, refusal.message);
}

}  // namespace katy::ingress
