// The sender's record stage: what Meta took is marked before anything else goes.
#include <thread>

#include "services/sender/sender_handler.h"
#include "services/sender/sender_internal.h"

namespace katy::sender {

std::optional<redis::HandleResult> SenderHandler::RecordPart(redis::Client& client, const Delivery& delivery) const {
  const std::string mark_key = delivery.MarkKey();
  auto recorded = client.Command({"SET", mark_key, delivery.meta_id, "EX", std::to_string(options_.sent_ttl.count())});
  internal::LogIfFailed(client.Command({"DEL", mark_key + ":inflight"}), "cannot clear an in-flight mark");
  if (!recorded) return redis::HandleResult::RedisFailed(recorded.error());
  return std::nullopt;
}

Status SenderHandler::RecordDelivery(redis::Client& client, const Delivery& delivery) const {
  // Plain commands in one round trip, in this order on one connection (the keys share
  // the shard's hash tag, so one node even on a cluster). Not atomic, and need not be: a crash
  // after the sent mark and before the XACK leaves the entry pending with its mark, which the
  // next attempt acknowledges without sending; a stray in-flight mark expires. A Lua script
  // did the same atomically at ~20 µs more of Redis CPU per message (bench/RESULTS.md).
  std::vector<std::vector<std::string>> record =
      delivery.delivered.Record(delivery.meta_id, options_.sent_ttl, now_ms_());
  record.push_back({"DEL", delivery.InFlightKey()});
  record.push_back({"XACK", delivery.entry.stream, KeySpace::kSenderGroup, delivery.entry.id});
  // Idempotent, so tried again while Redis is away for a moment (a failover, a restart):
  // giving up would send the message a second time.
  const auto give_up = std::chrono::steady_clock::now() + kRecordRetryFor;
  while (true) {
    auto replies = client.Pipeline(record);
    Status recorded = Ok{};
    if (!replies) {
      recorded = replies.error();
    } else {
      for (const auto& reply : *replies) {
        if (reply.IsError()) recorded = redis::ReplyError(reply.str);  // e.g. IOERR from a cluster node
      }
    }
    if (recorded || std::chrono::steady_clock::now() >= give_up) return recorded;
    std::this_thread::sleep_for(kRecordRetryPause);
  }
}

redis::HandleResult SenderHandler::Delivered(redis::Client& client, const Delivery& delivery) const {
  const katy::v1::OutboundMessage& message = delivery.message;
  auto committed = RecordDelivery(client, delivery);
  if (!committed) {
    // Meta has it but Redis did not record it: the retry finds the in-flight mark, sends again
    // and counts a possible duplicate. This is the one duplicate window of at-least-once.
    log::Error("delivered but not recorded", {{"id", message.id()}, {"error", committed.error().message}});
    return redis::HandleResult::RedisFailed(committed.error());
  }
  ObserveLatencies(message);
  metrics_.delivered.Add({{"source", SourceOf(message)}}).Increment();
  log::Debug("delivered", {{"id", message.id()},
                           {"page", message.page_id()},
                           {"shard", delivery.shard},
                           {"message_id", delivery.meta_id},
                           {"parts", delivery.plan.bodies.size()}});
  return redis::HandleResult::Done();
}

void SenderHandler::ObserveLatencies(const katy::v1::OutboundMessage& message) const {
  const auto seconds_since = [now = now_ms_()](int64_t then_ms) {
    // Meta's clock and ours may disagree by a little: a negative wait is no wait.
    return static_cast<double>(std::max<int64_t>(0, now - then_ms)) / 1000.0;
  };
  if (message.event_received_at_ms() > 0) metrics_.end_to_end.Observe(seconds_since(message.event_received_at_ms()));
  if (message.event_timestamp_ms() > 0) metrics_.webhook_to_send.Observe(seconds_since(message.event_timestamp_ms()));
}

}  // namespace katy::sender
