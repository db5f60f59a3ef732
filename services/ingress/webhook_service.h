#pragma once

#include <functional>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "common/log.h"
#include "common/metrics/bounded_label.h"
#include "common/metrics/metrics.h"
#include "common/result.h"
#include "katy/v1/events.pb.h"
#include "services/ingress/data_deletion.h"
#include "services/ingress/event_store.h"
#include "services/ingress/http_reply.h"
#include "services/ingress/webhook_parser.h"

namespace katy::ingress {

// Meta's webhook bodies are small; 1 MiB leaves room for a 1,000-item batch.
inline constexpr size_t kDefaultMaxBodyBytes = 1 << 20;

struct WebhookOptions {
  std::string app_secret;
  std::string verify_token;
  bool accept_sha1 = false;
  size_t max_body_bytes = kDefaultMaxBodyBytes;
  size_t max_events = kDefaultMaxEventsPerRequest;  // more items in one body get 413
  DeletionOptions deletion = {};                    // Meta's data deletion callback (docs/privacy.md)
};

// Ingress's metrics, registered once per process.
struct IngressMetrics {
  explicit IngressMetrics(prometheus::Registry& registry);
  prometheus::Family<prometheus::Counter>& requests;    // by status
  prometheus::Family<prometheus::Counter>& events;      // by kind, result (enqueued|duplicate)
  prometheus::Family<prometheus::Counter>& rejections;  // by reason
  prometheus::Histogram& latency;                       // request duration, seconds
  prometheus::Family<prometheus::Gauge>& last_webhook;  // by page: unix seconds of the last event
  metrics::BoundedLabel page_label;                     // bounds last_webhook's pages
};

// The webhook's behaviour, independent of the HTTP library and of storage: what to answer to a
// GET handshake and to a POST of events. Thread-safe (read-only state, atomic metrics).
class WebhookService {
 public:
  using Clock = std::function<int64_t()>;  // epoch milliseconds

  WebhookService(WebhookOptions options, IngressMetrics& metrics, Clock now_ms);

  // GET /webhook with Meta's hub.* query parameters.
  HttpReply HandleGet(std::string_view mode, std::string_view token, std::string_view challenge) const;

  // POST /webhook, first half: the checks before storage. Returns the rejection to send
  // (403 bad signature, 413 too large or too many events, 400 bad JSON/shape), or the events
  // to store.
  std::variant<HttpReply, std::vector<katy::v1::InboundEvent>> CheckPost(std::string_view body,
                                                                         std::string_view sha256_header,
                                                                         std::string_view sha1_header) const;

  // POST /webhook, second half, once storage answered: 200 EVENT_RECEIVED only when every
  // event is stored (`stored[i]` for `events[i]`); 503 with Retry-After when any failed, with
  // `error` saying why (Meta retries; dedupe makes that safe).
  HttpReply FinishPost(std::span<const katy::v1::InboundEvent> events, std::span<const Stored> stored,
                       const std::optional<Error>& error) const;

  // POST /data-deletion, first half: the refusal (counted as a rejection), or the request to
  // store and the answer to give once it is stored (data_deletion.h).
  std::variant<HttpReply, DeletionAccepted> CheckDeletion(std::string_view body) const;
  const DeletionOptions& deletion() const { return options_.deletion; }
  int64_t NowMs() const { return now_ms_(); }

  // Counts one finished HTTP request (any path) by status, with its duration.
  void RecordRequest(int status, double seconds) const;

  // A refusal: counted under `reason` in katy_ingress_rejections_total, logged at a bounded
  // rate, answered `status` with `detail`. The HTTP layer uses it for what it refuses itself
  // (malformed HTTP, 413 before the body, read timeouts).
  HttpReply Reject(int status, const std::string& reason, const std::string& detail) const;

 private:
  WebhookOptions options_;
  IngressMetrics& metrics_;
  Clock now_ms_;
  mutable log::RateLimited rejection_log_{std::chrono::seconds(1)};
  mutable log::RateLimited storage_log_{std::chrono::seconds(1)};
  mutable log::RateLimited handshake_log_{std::chrono::seconds(1)};
};

}  // namespace katy::ingress
