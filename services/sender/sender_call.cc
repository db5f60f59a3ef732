// The sender's call stage: a part's Send API call goes on the shared event loop, and its
// answer, back on a worker, becomes what the consumer must do.
#include <nlohmann/json.hpp>

#include "services/sender/send_request.h"
#include "services/sender/sender_handler.h"
#include "services/sender/sender_internal.h"

namespace katy::sender {

using internal::LogIfFailed;

namespace {

log::RateLimited g_page_alerts(std::chrono::seconds(10));

// What a 2xx Send API answer says: {"recipient_id": ..., "message_id": ...}.
struct SendAnswer {
  std::string recipient_id;
  std::string message_id;
};

SendAnswer ReadSendAnswer(const std::string& body) {
  SendAnswer answer;
  auto json = nlohmann::json::parse(body, nullptr, false);
  if (!json.is_object()) return answer;
  if (json.contains("recipient_id") && json["recipient_id"].is_string()) answer.recipient_id = json["recipient_id"];
  if (json.contains("message_id") && json["message_id"].is_string()) answer.message_id = json["message_id"];
  return answer;
}

// Meta's answer names the person it delivered to. An answer naming someone else belongs to
// another request (a server or proxy that mixed up connections: the chaos test caught the
// emulator at it), so this message's own outcome is unknown.
// A private reply's answer names the person's page-scoped id, which a Facebook comment does not
// carry: there is nothing to compare it with.
bool AnswersAnotherRecipient(const SendAnswer& answer, const katy::v1::OutboundMessage& message) {
  return !message.recipient_is_ref() && !IsAboutAComment(message) && !answer.recipient_id.empty() &&
         answer.recipient_id != message.recipient_id();
}

}  // namespace

namespace internal {

SendResponse ToSendResponse(const Result<http::Response>& answer) {
  SendResponse response;
  if (answer) {
    response.http_status = answer->status;
    response.body = answer->body;
    response.headers = answer->headers;
  } else {
    response.transport_error = answer.error().Label();
  }
  return response;
}

}  // namespace internal

http::Request SenderHandler::PostOnSlot(Delivery& delivery, std::string url, std::string body) const {
  if (delivery.slot_due) {
    const auto late = std::chrono::steady_clock::now() - *delivery.slot_due;
    metrics_.slot_lateness.Observe(std::chrono::duration<double>(late).count());
    delivery.slot_due.reset();
  }
  http::Request request;
  request.method = "POST";
  request.url = std::move(url);
  request.body = std::move(body);
  request.headers = {"Content-Type: application/json"};
  request.timeout = options_.request_timeout;
  return request;
}

redis::HandleResult SenderHandler::SendActionThen(redis::Client& client, const DeliveryPtr& delivery,
                                                  const std::string& action, const redis::Resume& resume,
                                                  Then then) const {
  katy::v1::OutboundMessage request = delivery->message;
  request.clear_message_json();
  request.set_sender_action(action);
  auto built = BuildSendRequest(request, GraphUrlFor(request), delivery->token, options_.appsecret);
  if (!built) {
    metrics_.sends.Add({{"result", "action_failed"}, {"code", "0"}}).Increment();
    return then(client, delivery, Error{ErrorCode::kInvalid, "no request for " + action}, resume);
  }
  return CallThen(
      delivery, PostOnSlot(*delivery, built->url, built->body), resume,
      [this, then = std::move(then)](redis::Client& later, const DeliveryPtr& delivery,
                                     const Result<http::Response>& answer, const redis::Resume& next) {
        const bool delivered = answer && answer->status == 200;
        metrics_.sends.Add({{"result", delivered ? "delivered" : "action_failed"}, {"code", "0"}}).Increment();
        return then(later, delivery, answer, next);
      });
}

redis::HandleResult SenderHandler::SendPart(redis::Client& client, const DeliveryPtr& delivery,
                                            const redis::Resume& resume) const {
  const bool slot_taken = delivery->part == 0 && delivery->first_slot_taken;
  if (!slot_taken) {
    if (auto not_now = TakeSendSlot(client, *delivery)) return *not_now;
  }
  katy::v1::OutboundMessage part = delivery->message;
  part.set_message_json(delivery->body);
  auto request = BuildSendRequest(part, GraphUrlFor(part), delivery->token, options_.appsecret);
  if (!request) return redis::HandleResult::Poison("bad_message");
  delivery->call_started = std::chrono::steady_clock::now();
  return CallThen(delivery, PostOnSlot(*delivery, request->url, request->body), resume,
                  [this](redis::Client& client, const DeliveryPtr& delivery, const Result<http::Response>& answer,
                         const redis::Resume& resume) { return OnAnswer(client, delivery, answer, resume); });
}

redis::HandleResult SenderHandler::OnAnswer(redis::Client& client, const DeliveryPtr& delivery,
                                            const Result<http::Response>& answer, const redis::Resume& resume) const {
  const katy::v1::OutboundMessage& message = delivery->message;
  metrics_.latency.Observe(
      std::chrono::duration<double>(std::chrono::steady_clock::now() - delivery->call_started).count());
  const SendResponse response = internal::ToSendResponse(answer);
  const Classification verdict = Classify(response);
  const SendAnswer delivered = ReadSendAnswer(response.body);
  if (verdict.action == SendAction::kDelivered && AnswersAnotherRecipient(delivered, message)) {
    // The in-flight mark stays: the retry counts a possible duplicate.
    metrics_.sends.Add({{"result", "crossed_answer"}, {"code", "0"}}).Increment();
    log::Warn("the Send API answered for another recipient; the message is retried",
              {{"id", message.id()}, {"answered_recipient", delivered.recipient_id}});
    return redis::HandleResult::Retry("crossed_answer");
  }
  metrics_.sends.Add({{"result", verdict.reason}, {"code", std::to_string(verdict.code)}}).Increment();
  // A definite answer, or no connection at all, means this attempt's outcome is known: the
  // mark has done its job.
  const bool never_sent = !answer && answer.error().code == ErrorCode::kConnect;
  if ((answer && verdict.action != SendAction::kDelivered) || never_sent) {
    LogIfFailed(client.Command({"DEL", delivery->InFlightKey()}), "cannot clear an in-flight mark");
  }
  auto acted = Act(client, message, verdict);
  if (acted.kind != redis::HandleResult::Kind::kDone) return acted;
  delivery->meta_id = delivered.message_id;
  if (delivery->LastPart()) return Delivered(client, *delivery);
  if (auto failed = RecordPart(client, *delivery)) return *failed;
  ++delivery->part;
  return NextPart(client, delivery, resume);
}

redis::HandleResult SenderHandler::Act(redis::Client& client, const katy::v1::OutboundMessage& message,
                                       const Classification& verdict) const {
  auto throttle_page = [&] {
    LogIfFailed(limiter_.Throttle(client, message.page_id(), verdict.wait), "cannot throttle the page");
    metrics_.throttled.Add({{"page", metrics_.page_label(message.page_id())}})
        .Increment(std::chrono::duration<double>(verdict.wait).count());
  };
  const int64_t age_ms = now_ms_() - message.created_at_ms();
  switch (verdict.action) {
    case SendAction::kDelivered:
      // Delivered, but Meta's usage headers may say the page is at its limit: slow it down.
      if (verdict.wait.count() > 0) throttle_page();
      return redis::HandleResult::Done();
    case SendAction::kRetry:
      if (message.created_at_ms() > 0 &&
          age_ms > std::chrono::duration_cast<std::chrono::milliseconds>(options_.retry_max_age).count()) {
        return redis::HandleResult::Poison("expired_" + verdict.reason);
      }
      return redis::HandleResult::Retry(verdict.reason);
    case SendAction::kThrottle:
      throttle_page();
      log::Warn("page throttled by Meta", {{"page", message.page_id()},
                                           {"code", verdict.code},
                                           {"wait_ms", static_cast<long long>(verdict.wait.count())}});
      return redis::HandleResult::Wait(verdict.reason, verdict.wait);
    case SendAction::kPausePage: {
      auto paused = limiter_.Pause(client, message.page_id(), verdict.reason + "_" + std::to_string(verdict.code));
      if (paused && *paused) {
        metrics_.pauses.Add({{"page", metrics_.page_label(message.page_id())}, {"reason", verdict.reason}}).Increment();
        g_page_alerts.Write(log::Level::kError,
                            "ALERT: page cannot send (token or restriction); paused, its messages stay queued "
                            "until it is resumed",
                            {{"page", message.page_id()}, {"code", verdict.code}, {"subcode", verdict.subcode}});
      }
      return redis::HandleResult::Wait("page_paused", internal::kPausedRecheck);
    }
    case SendAction::kDeadLetter:
      return redis::HandleResult::Poison(verdict.reason);
  }
  return redis::HandleResult::Retry("unknown");
}

const std::string& SenderHandler::GraphUrlFor(const katy::v1::OutboundMessage& message) const {
  const bool instagram = message.platform() == "instagram" || tokens_.IsInstagram(message.page_id());
  return instagram && !options_.instagram_graph_url.empty() ? options_.instagram_graph_url : options_.graph_url;
}

}  // namespace katy::sender
