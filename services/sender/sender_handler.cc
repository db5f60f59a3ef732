// The sender's loop: a message's stages in order (the class comment), each call on the event
// loop and the next stage resumed on a worker when it answers.
#include "services/sender/sender_handler.h"

#include "services/sender/send_request.h"
#include "services/sender/sender_internal.h"

namespace katy::sender {

namespace internal {

void WarnRedisFailure(std::string_view what, const Error& error) {
  static log::RateLimited warnings(std::chrono::seconds(5));
  warnings.Write(log::Level::kWarn, what, {{"error", error.message}});
}

}  // namespace internal

SenderMetrics::SenderMetrics(prometheus::Registry& registry)
    : sends(prometheus::BuildCounter()
                .Name("katy_sender_sends_total")
                .Help("Send API calls by result and Graph error code")
                .Register(registry)),
      latency(prometheus::BuildHistogram()
                  .Name("katy_sender_send_seconds")
                  .Help("Send API call duration")
                  .Register(registry)
                  .Add({}, metrics::LatencyBuckets())),
      end_to_end(prometheus::BuildHistogram()
                     .Name("katy_sender_end_to_end_seconds")
                     .Help("From ingress receipt of the event to the Send API's 2xx")
                     .Register(registry)
                     .Add({}, metrics::LatencyBuckets())),
      webhook_to_send(prometheus::BuildHistogram()
                          .Name("katy_sender_webhook_to_send_seconds")
                          .Help("From the event's webhook timestamp (Meta's clock) to the Send API's 2xx: "
                                "what the person waited, Meta's delivery included")
                          .Register(registry)
                          .Add({}, prometheus::Histogram::BucketBoundaries{0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5,
                                                                           10, 30, 60, 300})),
      skipped(prometheus::BuildCounter()
                  .Name("katy_sender_skipped_total")
                  .Help("Messages not sent because they were already delivered")
                  .Register(registry)
                  .Add({})),
      throttled(prometheus::BuildCounter()
                    .Name("katy_sender_throttled_seconds_total")
                    .Help("Seconds of sending stopped for a page after Meta throttled it")
                    .Register(registry)),
      pauses(prometheus::BuildCounter()
                 .Name("katy_sender_page_pauses_total")
                 .Help("Pages paused by the sender, by reason")
                 .Register(registry)),
      possible_duplicates(
          prometheus::BuildCounter()
              .Name("katy_sender_possible_duplicates_total")
              .Help("Sends of a message whose previous attempt had an unknown outcome (crash or timeout)")
              .Register(registry)
              .Add({})),
      rate_waits(prometheus::BuildCounter()
                     .Name("katy_sender_rate_waits_total")
                     .Help("Times a message waited for its page's rate limit")
                     .Register(registry)),
      slot_lateness(prometheus::BuildHistogram()
                        .Name("katy_sender_slot_lateness_seconds")
                        .Help("How long after its reserved rate slot fell due a Graph call left: late calls "
                              "bunch a page's messages")
                        .Register(registry)
                        .Add({}, prometheus::Histogram::BucketBoundaries{0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1,
                                                                         0.25, 0.5, 1})),
      media_uploads(prometheus::BuildCounter()
                        .Name("katy_sender_media_uploads_total")
                        .Help("Reusable media uploaded through the Attachment Upload API")
                        .Register(registry)
                        .Add({})),
      media_reused(prometheus::BuildCounter()
                       .Name("katy_sender_media_reused_total")
                       .Help("Reusable media sent by a cached attachment_id instead of uploaded again")
                       .Register(registry)
                       .Add({})),
      delivered(prometheus::BuildCounter()
                    .Name("katy_sender_delivered_total")
                    .Help("Outbound entries Meta accepted, by source: reply, outbound (the API), handover")
                    .Register(registry)) {}

std::string SourceOf(const katy::v1::OutboundMessage& message) {
  if (!message.thread_control().empty()) return "handover";
  if (IsOutboundApiId(message.id())) return "outbound";
  return "reply";
}

SenderHandler::SenderHandler(KeySpace keys, SenderOptions options, const PageTokens& tokens, const PageLimiter& limiter,
                             SenderMetrics& metrics, Clock now_ms, const http::AsyncClientOptions& calls)
    : keys_(std::move(keys)),
      options_(std::move(options)),
      tokens_(tokens),
      limiter_(limiter),
      metrics_(metrics),
      now_ms_(std::move(now_ms)),
      legacy_before_ms_(now_ms_()),
      calls_(calls) {}

std::string ConversationOfMessage(const redis::StreamEntry& entry) {
  katy::v1::OutboundMessage message;
  auto payload = entry.Field("pb");
  if (!payload || !message.ParseFromString(*payload)) return "";
  return message.page_id() + ":" + message.recipient_id();
}

std::string SenderHandler::Delivery::MarkKey() const {
  return plan.bodies.size() <= 1 ? sent_key : sent_key + "@" + std::to_string(part);
}

redis::HandleResult SenderHandler::operator()(redis::Client& client, const redis::BatchEntry& one) const {
  return redis::RunToEnd(client, [&](const redis::Resume& resume) { return HandleBatch(client, {one}, resume); })
      .front();
}

redis::HandleResult SenderHandler::operator()(redis::Client& client, const redis::StreamEntry& entry,
                                              const redis::Fence& fence) const {
  return (*this)(client, redis::BatchEntry{&entry, fence, redis::kHeldSinceLongAgo});
}

redis::HandleResult SenderHandler::Begin(redis::Client& client, const DeliveryPtr& delivery,
                                         const redis::Resume& resume) const {
  Delivery& d = *delivery;
  if (d.token.empty()) return redis::HandleResult::Poison("no_page_token");      // DeliveryOf found none
  if (d.plan.bodies.empty()) return redis::HandleResult::Poison("bad_message");  // not a JSON object (PlanParts)
  if (!d.plan.refusal.empty()) {
    log::Warn("message refused before sending: Instagram cannot take it",
              {{"id", d.message.id()}, {"page", d.message.page_id()}, {"why", d.plan.refusal}});
    metrics_.sends.Add({{"result", "instagram_unsupported"}, {"code", "0"}}).Increment();
    return redis::HandleResult::Poison("instagram_unsupported");
  }
  return BeginParts(client, delivery, resume);
}

redis::HandleResult SenderHandler::BeginParts(redis::Client& client, const DeliveryPtr& delivery,
                                              const redis::Resume& resume) const {
  const std::string& id = delivery->message.id();
  const bool first_reply = id.size() > 2 && id.compare(id.size() - 2, 2, "#0") == 0;
  if (!options_.mark_seen || !first_reply || IsAboutAComment(delivery->message)) {
    return NextPart(client, delivery, resume);
  }
  return SendActionThen(client, delivery, "mark_seen", resume,
                        [this](redis::Client& later, const DeliveryPtr& delivery, const Result<http::Response>&,
                               const redis::Resume& next) { return NextPart(later, delivery, next); });
}

redis::HandleResult SenderHandler::NextPart(redis::Client& client, const DeliveryPtr& delivery,
                                            const redis::Resume& resume) const {
  Delivery& d = *delivery;
  // A part that went out before a retry is not sent again.
  while (d.plan.bodies.size() > 1 && d.part < d.plan.bodies.size()) {
    auto done = client.Command({"EXISTS", d.MarkKey()});
    if (!done) return redis::HandleResult::RedisFailed(done.error());
    if (done->integer != 1) break;
    ++d.part;
  }
  if (d.part == d.plan.bodies.size()) return Delivered(client, d);
  auto body = ResolveMedia(client, d);
  if (auto* not_now = std::get_if<redis::HandleResult>(&body)) return *not_now;
  d.body = std::get<std::string>(std::move(body));
  if (!options_.typing || d.plan.bodies[d.part].empty() || !d.message.sender_action().empty() ||
      IsAboutAComment(d.message)) {
    return SendPart(client, delivery, resume);
  }
  return SendActionThen(client, delivery, "typing_on", resume,
                        [this](redis::Client& later, const DeliveryPtr& delivery, const Result<http::Response>&,
                               const redis::Resume& next) { return SendPart(later, delivery, next); });
}

redis::HandleResult SenderHandler::CallThen(const DeliveryPtr& delivery, http::Request request,
                                            const redis::Resume& resume, Then then) const {
  // The answer is handed straight back: the loop thread does no Redis work, a worker does.
  calls_.Submit(std::move(request), [delivery, resume, then = std::move(then)](Result<http::Response> answer) {
    resume([delivery, then, answer = std::move(answer)](redis::Client& client, const redis::Resume& next) {
      return std::vector<redis::HandleResult>{then(client, delivery, answer, next)};
    });
  });
  return redis::HandleResult::Later();
}

}  // namespace katy::sender
