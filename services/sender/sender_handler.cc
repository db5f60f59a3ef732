#include "services/sender/sender_handler.h"

#include <nlohmann/json.hpp>

#include "common/log.h"
#include "katy/v1/events.pb.h"
#include "services/sender/send_request.h"

namespace katy::sender {
namespace {

// KEYS[1] the message's sent mark, KEYS[2] the outbound stream.
// ARGV[1] group, ARGV[2] entry id, ARGV[3] mark TTL (s), ARGV[4] Meta's message id.
constexpr const char* kDeliveredLua = R"lua(
redis.call('SET', KEYS[1], ARGV[4], 'EX', ARGV[3])
return redis.call('XACK', KEYS[2], ARGV[1], ARGV[2])
)lua";

log::RateLimited g_page_alerts(std::chrono::seconds(10));

}  // namespace

SenderMetrics::SenderMetrics(metrics::Registry& registry)
    : sends(registry.AddCounter("katy_sender_sends_total", "Send API calls by result and Graph error code")),
      latency(registry.AddHistogram("katy_sender_send_seconds", "Send API call duration",
                                    metrics::LatencyBuckets())),
      end_to_end(registry.AddHistogram("katy_sender_end_to_end_seconds",
                                       "From ingress receipt of the event to the Send API's 2xx",
                                       metrics::LatencyBuckets())),
      skipped(registry.AddCounter("katy_sender_skipped_total",
                                  "Messages not sent because they were already delivered")) {}

SenderHandler::SenderHandler(KeySpace keys, SenderOptions options, const PageTokens& tokens,
                             SenderMetrics& metrics, Clock now_ms)
    : keys_(std::move(keys)), options_(std::move(options)), tokens_(tokens), metrics_(metrics),
      now_ms_(std::move(now_ms)), http_(options_.request_timeout), delivered_script_(kDeliveredLua) {}

std::string ConversationOfMessage(const redis::StreamEntry& entry) {
  katy::v1::OutboundMessage message;
  auto payload = entry.Field("pb");
  if (!payload || !message.ParseFromString(*payload)) return "";
  return message.page_id() + ":" + message.recipient_id();
}

redis::HandleResult SenderHandler::operator()(redis::Client& client, const redis::StreamEntry& entry,
                                              const redis::Fence& fence) {
  katy::v1::OutboundMessage message;
  auto payload = entry.Field("pb");
  if (!payload || !message.ParseFromString(*payload)) return redis::HandleResult::Poison("undecodable_message");

  const int shard = ShardOf(message.page_id(), message.recipient_id(), keys_.shards());
  const std::string sent_key = keys_.Sent(shard, message.id());
  auto checks = client.Pipeline({{"EXISTS", sent_key}, {"GET", fence.lease_key}});
  if (!checks) return redis::HandleResult::Retry("redis_" + checks.error().code);
  if ((*checks)[1].str != fence.owner) return redis::HandleResult::Abandon("lost_lease");
  if ((*checks)[0].integer == 1) {
    // Delivered before a crash that came between the send and the acknowledgement.
    auto acked = client.Command({"XACK", entry.stream, KeySpace::kSenderGroup, entry.id});
    if (!acked) return redis::HandleResult::Retry("redis_" + acked.error().code);
    metrics_.skipped.WithLabels({}).Inc();
    return redis::HandleResult::Done();
  }

  const int64_t now = now_ms_();
  const bool automated = message.messaging_type() != "MESSAGE_TAG";
  const int64_t window_ms = std::chrono::duration_cast<std::chrono::milliseconds>(options_.window).count();
  if (automated && message.user_last_message_ms() > 0 && now - message.user_last_message_ms() > window_ms) {
    metrics_.sends.WithLabels({{"result", "outside_window"}, {"code", "0"}}).Inc();
    return redis::HandleResult::Poison("outside_window");
  }

  auto token = tokens_.For(message.page_id());
  if (!token) return redis::HandleResult::Poison("no_page_token");
  auto request = BuildSendRequest(message, options_.graph_url, *token, options_.appsecret);
  if (!request) return redis::HandleResult::Poison("bad_message");

  const auto started = std::chrono::steady_clock::now();
  auto answer = http_.Post(request->url, request->body, {"Content-Type: application/json"});
  metrics_.latency.WithLabels({}).Observe(
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
  SendResponse response;
  if (answer) {
    response.http_status = answer->status;
    response.body = answer->body;
    response.headers = answer->headers;
  } else {
    response.transport_error = answer.error().code;
  }
  Classification verdict = Classify(response);
  metrics_.sends.WithLabels({{"result", verdict.reason}, {"code", std::to_string(verdict.code)}}).Inc();

  switch (verdict.action) {
    case SendAction::kDelivered: {
      std::string meta_id;
      if (answer) {
        auto json = nlohmann::json::parse(answer->body, nullptr, false);
        if (json.is_object() && json.contains("message_id") && json["message_id"].is_string()) {
          meta_id = json["message_id"].get<std::string>();
        }
      }
      auto committed = delivered_script_.Run(
          client, {sent_key, entry.stream},
          {KeySpace::kSenderGroup, entry.id, std::to_string(options_.sent_ttl.count()), meta_id});
      if (!committed) {
        // Meta has it but Redis did not record it: the retry will find no mark and send again.
        // This is the one duplicate window of at-least-once delivery.
        log::Error("delivered but not recorded", {{"id", message.id()}, {"error", committed.error().message}});
        return redis::HandleResult::Retry("redis_" + committed.error().code);
      }
      if (message.event_received_at_ms() > 0) {
        metrics_.end_to_end.WithLabels({}).Observe(
            static_cast<double>(now_ms_() - message.event_received_at_ms()) / 1000.0);
      }
      log::Debug("delivered", {{"id", message.id()}, {"page", message.page_id()}, {"shard", shard},
                               {"message_id", meta_id}});
      return redis::HandleResult::Done();
    }
    case SendAction::kRetry:
    case SendAction::kThrottle:
      return redis::HandleResult::Retry(verdict.reason);
    case SendAction::kPausePage:
      g_page_alerts.Write(log::Level::kError, "page cannot send; its messages stay queued",
                          {{"page", message.page_id()}, {"code", verdict.code}, {"subcode", verdict.subcode}});
      return redis::HandleResult::Retry(verdict.reason);
    case SendAction::kDeadLetter:
      return redis::HandleResult::Poison(verdict.reason);
  }
  return redis::HandleResult::Retry("unknown");
}

}  // namespace katy::sender
