// The sender's record stage: what Meta took is marked before anything else goes.
#include <thread>

#include "common/redis/command_batch.h"
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

Status SenderHandler::RecordDeliveries(redis::Client& client, const std::vector<const Delivery*>& deliveries) const {
  // Plain commands in one round trip, in phases: every mark, then every in-flight mark
  // cleared, then every acknowledgement, merged where Redis takes them as one (the keys of one
  // shard share its hash tag, so one node even on a cluster). Not atomic, and need not be: a
  // crash after the marks and before the XACK leaves the entries pending with their marks,
  // which the next attempt acknowledges without sending; a stray in-flight mark expires. A Lua
  // script did the same atomically at ~20 µs more of Redis CPU per message (bench/RESULTS.md).
  // A bucket's EXPIREAT goes only when due (BucketExpiries).
  const int64_t now = now_ms_();
  const auto record = [&](std::vector<std::string>& expiring) {
    const auto steady_now = BucketExpiries::Clock::now();
    redis::CommandBatch batch;
    for (const Delivery* d : deliveries) {
      const std::string& bucket = d->delivered.bucket_key();
      const bool set_expiry = bucket.empty() || sent_expiries_.Due(bucket, steady_now);
      if (set_expiry && !bucket.empty()) expiring.push_back(bucket);
      batch.Add(d->delivered.Record(d->meta_id, options_.sent_ttl, now, set_expiry));
    }
    for (const Delivery* d : deliveries) batch.Add({"DEL", d->InFlightKey()});
    for (const Delivery* d : deliveries) batch.Add({"XACK", d->entry.stream, KeySpace::kSenderGroup, d->entry.id});
    return batch;
  };
  // Idempotent, so tried again while Redis is away for a moment (a failover, a restart):
  // giving up would send the messages a second time.
  const auto give_up = std::chrono::steady_clock::now() + kRecordRetryFor;
  while (true) {
    std::vector<std::string> expiring;
    const auto set_at = BucketExpiries::Clock::now();
    auto replies = client.Pipeline(record(expiring).commands());
    Status recorded = Ok{};
    if (!replies) {
      recorded = replies.error();
    } else {
      for (const auto& reply : *replies) {
        if (reply.IsError()) recorded = redis::ReplyError(reply.str);  // e.g. IOERR from a cluster node
      }
    }
    if (recorded) {
      for (const std::string& bucket : expiring) sent_expiries_.Set(bucket, set_at);
      return recorded;
    }
    sent_expiries_.Forget();  // the next try (and every next write) sets the expiries again
    if (std::chrono::steady_clock::now() >= give_up) return recorded;
    std::this_thread::sleep_for(kRecordRetryPause);
  }
}

redis::HandleResult SenderHandler::Delivered(redis::Client& client, const Delivery& delivery) const {
  if (delivery.deferred_records != nullptr) {
    delivery.deferred_records->push_back(&delivery);  // recorded with its batch (Drain)
    return redis::HandleResult::Done();
  }
  if (auto recorded = RecordDeliveries(client, {&delivery}); !recorded) return NotRecorded(delivery, recorded.error());
  CountDelivered(delivery);
  return redis::HandleResult::Done();
}

redis::HandleResult SenderHandler::NotRecorded(const Delivery& delivery, const Error& error) const {
  // Meta has it but Redis did not record it: the retry finds the in-flight mark, sends again
  // and counts a possible duplicate. This is the one duplicate window of at-least-once.
  log::Error("delivered but not recorded", {{"id", delivery.message.id()}, {"error", error.message}});
  return redis::HandleResult::RedisFailed(error);
}

void SenderHandler::CountDelivered(const Delivery& delivery) const {
  const katy::v1::OutboundMessage& message = delivery.message;
  ObserveLatencies(message);
  metrics_.delivered.Add({{"source", SourceOf(message)}}).Increment();
  log::Debug("delivered", {{"id", message.id()},
                           {"page", message.page_id()},
                           {"shard", delivery.shard},
                           {"message_id", delivery.meta_id},
                           {"parts", delivery.plan.bodies.size()}});
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
