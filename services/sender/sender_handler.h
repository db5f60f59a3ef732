#pragma once

#include <chrono>
#include <functional>
#include <string>

#include "common/http/http_client.h"
#include "common/metrics/metrics.h"
#include "common/redis/script.h"
#include "common/redis/sharded_consumer.h"
#include "common/shard.h"
#include "services/sender/error_classifier.h"
#include "common/page_tokens.h"

namespace katy::sender {

struct SenderOptions {
  std::string graph_url;        // base, e.g. https://graph.facebook.com/v25.0
  std::string appsecret;        // non-empty: send appsecret_proof with every call
  std::chrono::seconds sent_ttl{7 * 24 * 3600};  // how long delivered marks are kept
  std::chrono::hours window{24};                  // Meta's standard messaging window
  std::chrono::milliseconds request_timeout{10000};  // one Send API call, connect to answer
};

struct SenderMetrics {
  explicit SenderMetrics(metrics::Registry& registry);
  metrics::Family<metrics::Counter>& sends;         // by result (action reason) and code
  metrics::Family<metrics::Histogram>& latency;     // Send API call, seconds
  metrics::Family<metrics::Histogram>& end_to_end;  // ingress receipt -> Send API 2xx, seconds
  metrics::Family<metrics::Counter>& skipped;       // already delivered (sent mark present)
};

// Handles one outbound stream entry: checks (in one round trip) that it was not delivered
// already and that this instance still owns the shard, refuses automated replies outside the
// 24 h window, calls the Send API, classifies the answer, and on success records the delivered
// mark and acknowledges in one Lua script. Thread-compatible: one per worker thread (it owns
// an HTTP connection).
class SenderHandler {
 public:
  using Clock = std::function<int64_t()>;  // epoch ms

  SenderHandler(KeySpace keys, SenderOptions options, const PageTokens& tokens,
                SenderMetrics& metrics, Clock now_ms);

  redis::HandleResult operator()(redis::Client& client, const redis::StreamEntry& entry,
                                 const redis::Fence& fence);

 private:
  KeySpace keys_;
  SenderOptions options_;
  const PageTokens& tokens_;
  SenderMetrics& metrics_;
  Clock now_ms_;
  http::Client http_;
  redis::Script delivered_script_;
};

// The conversation an outbound entry belongs to ("<page>:<recipient>"): one message in flight
// per recipient, in order.
std::string ConversationOfMessage(const redis::StreamEntry& entry);

}  // namespace katy::sender
