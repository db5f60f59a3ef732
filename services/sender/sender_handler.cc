#include "services/sender/sender_handler.h"

#include <charconv>
#include <thread>

#include <nlohmann/json.hpp>

#include "common/instagram_limits.h"
#include "common/json_text.h"
#include "common/log.h"
#include "common/message_tags.h"
#include "services/sender/media_upload.h"
#include "services/sender/send_request.h"
#include "services/sender/text_split.h"

namespace katy::sender {
namespace {

log::RateLimited g_redis_warnings(std::chrono::seconds(5));

// For Redis work whose failure changes no message's outcome, only its efficiency: a stale
// in-flight mark later counts a possible duplicate that was not one; a throttle not recorded
// lets other senders learn the limit from Meta themselves.
template <typename T>
void LogIfFailed(const Result<T>& result, std::string_view what) {
  if (!result) g_redis_warnings.Write(log::Level::kWarn, what, {{"error", result.error().message}});
}

constexpr std::chrono::milliseconds kPausedRecheck{1000};
constexpr int64_t kInFlightMarkMs = 3600 * 1000;

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
bool AnswersAnotherRecipient(const SendAnswer& answer, const katy::v1::OutboundMessage& message) {
  return !message.recipient_is_ref() && !answer.recipient_id.empty() && answer.recipient_id != message.recipient_id();
}

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

bool IsMedia(const nlohmann::json& message) {
  if (!message.is_object() || !message.contains("attachment")) return false;
  const auto& type = message["attachment"].value("type", "");
  return type == "audio" || type == "video";
}

// The media in `body` that is uploaded once and then sent by attachment_id. Instagram takes
// media by url only (docs/messenger-platform.md, "Instagram").
std::optional<ReusableMedia> ReusableMediaFor(const katy::v1::OutboundMessage& message, const std::string& body) {
  return message.platform() == "instagram" ? std::nullopt : ReusableMediaOf(body);
}

}  // namespace

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
  if (message.id().rfind("api:", 0) == 0) return "outbound";
  return "reply";
}

SenderHandler::SenderHandler(KeySpace keys, SenderOptions options, const PageTokens& tokens, const PageLimiter& limiter,
                             SenderMetrics& metrics, Clock now_ms)
    : keys_(std::move(keys)),
      options_(std::move(options)),
      tokens_(tokens),
      limiter_(limiter),
      metrics_(metrics),
      now_ms_(std::move(now_ms)),
      http_(options_.request_timeout) {}

std::string ConversationOfMessage(const redis::StreamEntry& entry) {
  katy::v1::OutboundMessage message;
  auto payload = entry.Field("pb");
  if (!payload || !message.ParseFromString(*payload)) return "";
  return message.page_id() + ":" + message.recipient_id();
}

void SenderHandler::SendAction(const katy::v1::OutboundMessage& message, const std::string& action,
                               const std::string& token) {
  katy::v1::OutboundMessage request = message;
  request.clear_message_json();
  request.set_sender_action(action);
  auto built = BuildSendRequest(request, GraphUrlFor(message), token, options_.appsecret);
  bool delivered = false;
  if (built) {
    auto answer = http_.Post(built->url, built->body, {"Content-Type: application/json"});
    delivered = answer && answer->status == 200;
  }
  metrics_.sends.Add({{"result", delivered ? "delivered" : "action_failed"}, {"code", "0"}}).Increment();
}

// The mark holds when its attempt began (epoch ms). An attempt begun less than one request
// timeout ago may still reach Meta, from an instance that died or lost the shard: sending again
// now could deliver this message after the user's next one (the chaos test saw a resend and the
// next message overtaken by the first attempt, held up at the Send API). So that attempt is
// given its timeout first; only then is this one sent, as a counted possible duplicate.
std::vector<std::string> SenderHandler::InFlightCommand(const std::string& key, int64_t now_ms) {
  return {"SET", key, std::to_string(now_ms), "NX", "GET", "PX", std::to_string(kInFlightMarkMs)};
}

Result<SenderHandler::InFlight> SenderHandler::MarkInFlight(redis::Client& client, const std::string& key) const {
  const int64_t now = now_ms_();
  auto earlier = client.Command(InFlightCommand(key, now));
  if (!earlier) return earlier.error();
  return ReadInFlight(client, key, *earlier, now);
}

Result<SenderHandler::InFlight> SenderHandler::ReadInFlight(redis::Client& client, const std::string& key,
                                                            const redis::Reply& earlier, int64_t now) const {
  if (earlier.IsError()) return redis::ReplyError(earlier.str);
  if (earlier.IsNil()) return InFlight{};  // the first attempt
  int64_t began = 0;
  const std::string& text = earlier.str;
  std::from_chars(text.data(), text.data() + text.size(), began);  // unreadable: long ago
  const int64_t timeout_ms = options_.request_timeout.count();
  if (now - began < timeout_ms) return InFlight{false, std::chrono::milliseconds(timeout_ms - (now - began))};
  auto restarted = client.Command({"SET", key, std::to_string(now), "XX", "PX", std::to_string(kInFlightMarkMs)});
  if (!restarted) return restarted.error();
  return InFlight{true, std::chrono::milliseconds(0)};
}

std::optional<redis::HandleResult> SenderHandler::WaitForSlot(redis::Client& client,
                                                              const katy::v1::OutboundMessage& message,
                                                              const std::string& slot_key, bool media) {
  return OnGate(limiter_.Acquire(client, message.page_id(), media, slot_key), message);
}

std::optional<redis::HandleResult> SenderHandler::OnGate(const Result<PageGate>& gate,
                                                         const katy::v1::OutboundMessage& message) {
  if (!gate) return redis::HandleResult::RedisFailed(gate.error());
  if (gate->kind == PageGate::Kind::kPaused) return redis::HandleResult::Wait("page_paused", kPausedRecheck);
  if (gate->kind == PageGate::Kind::kWait) {
    metrics_.rate_waits.Add({{"page", metrics_.page_label(message.page_id())}}).Increment();
    return redis::HandleResult::Wait("rate_limited", gate->wait);
  }
  reserved_slot_due_ = gate->reserved_due;
  return std::nullopt;
}

Result<http::Response> SenderHandler::PostOnSlot(const std::string& url, const std::string& body) {
  if (reserved_slot_due_) {
    const auto late = std::chrono::steady_clock::now() - *reserved_slot_due_;
    metrics_.slot_lateness.Observe(std::chrono::duration<double>(late).count());
    reserved_slot_due_.reset();
  }
  return http_.Post(url, body, {"Content-Type: application/json"});
}

std::variant<std::string, redis::HandleResult> SenderHandler::ResolveMedia(redis::Client& client,
                                                                           const katy::v1::OutboundMessage& message,
                                                                           const std::string& body,
                                                                           const std::string& token,
                                                                           const std::string& slot_key, bool media) {
  const std::optional<ReusableMedia> reusable = ReusableMediaFor(message, body);
  if (!reusable) return body;
  const std::string cache_key = keys_.Attachment(message.page_id(), reusable->url);
  auto cached = client.Command({"GET", cache_key});
  if (!cached) return redis::HandleResult::RedisFailed(cached.error());
  if (!cached->IsNil() && !cached->str.empty()) {
    metrics_.media_reused.Increment();
    return WithAttachmentId(body, cached->str);
  }
  if (auto not_now = WaitForSlot(client, message, slot_key, media)) return *not_now;
  const SendRequest upload =
      BuildUploadRequest(options_.graph_url, message.page_id(), *reusable, token, options_.appsecret);
  const SendResponse response = ToSendResponse(PostOnSlot(upload.url, upload.body));
  const Classification verdict = Classify(response);
  const std::string attachment_id = UploadedAttachmentId(response.body);
  if (verdict.action != SendAction::kDelivered) return Act(client, message, verdict);
  if (attachment_id.empty()) return redis::HandleResult::Retry("upload_without_attachment_id");
  // Two conversations uploading the same media at once both succeed; either id serves.
  const auto ttl = std::chrono::duration_cast<std::chrono::seconds>(kAttachmentIdTtl).count();
  LogIfFailed(client.Command({"SET", cache_key, attachment_id, "EX", std::to_string(ttl)}),
              "cannot keep an attachment id");
  metrics_.media_uploads.Increment();
  return WithAttachmentId(body, attachment_id);
}

std::optional<redis::HandleResult> SenderHandler::TakeSendSlot(redis::Client& client,
                                                               const katy::v1::OutboundMessage& message,
                                                               const std::string& inflight_key, bool media) {
  // A slot from the page's shared limit (reserved for this part when due later).
  if (auto not_now = WaitForSlot(client, message, inflight_key, media)) return not_now;
  return OnInFlight(MarkInFlight(client, inflight_key), message);
}

std::optional<redis::HandleResult> SenderHandler::OnInFlight(const Result<InFlight>& in_flight,
                                                             const katy::v1::OutboundMessage& message) {
  // The in-flight mark outlives a crash: finding it means an earlier attempt's outcome is
  // unknown, so this send may duplicate it (the one duplicate at-least-once allows).
  if (!in_flight) return redis::HandleResult::RedisFailed(in_flight.error());
  if (in_flight->wait.count() > 0) return redis::HandleResult::Wait("in_flight_elsewhere", in_flight->wait);
  if (in_flight->possible_duplicate) {
    // One line per possible duplicate, written before the send: the count survives the
    // process, which the metric does not.
    log::Warn("possible duplicate", {{"id", message.id()}, {"page", message.page_id()}});
    metrics_.possible_duplicates.Increment();
  }
  return std::nullopt;
}

redis::HandleResult SenderHandler::SendOne(redis::Client& client, const katy::v1::OutboundMessage& message,
                                           const std::string& mark_key, const std::string& body_json,
                                           const std::string& token, bool media, bool slot_taken,
                                           std::string* meta_id) {
  const std::string inflight_key = mark_key + ":inflight";
  if (!slot_taken) {
    if (auto not_now = TakeSendSlot(client, message, inflight_key, media)) return *not_now;
  }

  katy::v1::OutboundMessage part = message;
  part.set_message_json(body_json);
  auto request = BuildSendRequest(part, GraphUrlFor(message), token, options_.appsecret);
  if (!request) return redis::HandleResult::Poison("bad_message");
  const auto started = std::chrono::steady_clock::now();
  auto answer = PostOnSlot(request->url, request->body);
  metrics_.latency.Observe(std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
  const SendResponse response = ToSendResponse(answer);
  const Classification verdict = Classify(response);
  const SendAnswer delivered = ReadSendAnswer(response.body);
  if (verdict.action == SendAction::kDelivered && AnswersAnotherRecipient(delivered, message)) {
    // The in-flight mark stays: the retry counts a possible duplicate.
    http_.DropConnections();
    metrics_.sends.Add({{"result", "crossed_answer"}, {"code", "0"}}).Increment();
    log::Warn("the Send API answered for another recipient; the connection is dropped and the message retried",
              {{"id", message.id()}, {"answered_recipient", delivered.recipient_id}});
    return redis::HandleResult::Retry("crossed_answer");
  }
  metrics_.sends.Add({{"result", verdict.reason}, {"code", std::to_string(verdict.code)}}).Increment();
  // A definite answer, or no connection at all, means this attempt's outcome is known: the
  // mark has done its job.
  const bool never_sent = !answer && answer.error().code == ErrorCode::kConnect;
  if ((answer && verdict.action != SendAction::kDelivered) || never_sent) {
    LogIfFailed(client.Command({"DEL", inflight_key}), "cannot clear an in-flight mark");
  }
  if (verdict.action == SendAction::kDelivered) *meta_id = delivered.message_id;
  return Act(client, message, verdict);
}

redis::HandleResult SenderHandler::Act(redis::Client& client, const katy::v1::OutboundMessage& message,
                                       const Classification& verdict) {
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
      return redis::HandleResult::Wait("page_paused", kPausedRecheck);
    }
    case SendAction::kDeadLetter:
      return redis::HandleResult::Poison(verdict.reason);
  }
  return redis::HandleResult::Retry("unknown");
}

std::optional<PlannedParts> PlanParts(const katy::v1::OutboundMessage& message) {
  PlannedParts plan;
  if (!message.sender_action().empty() || !message.thread_control().empty()) {
    plan.bodies.emplace_back("");
    return plan;
  }
  auto content = nlohmann::json::parse(message.message_json(), nullptr, false);
  if (!content.is_object()) return std::nullopt;
  plan.media = IsMedia(content);
  const bool instagram = message.platform() == "instagram";
  if (content.contains("text") && content["text"].is_string()) {
    auto parts = SplitMessageText(content["text"].get<std::string>(), instagram);
    for (size_t i = 0; i < parts.size(); ++i) {
      nlohmann::json part = content;
      part["text"] = parts[i];
      if (i + 1 < parts.size()) part.erase("quick_replies");
      plan.bodies.push_back(ToJsonText(part));
    }
  }
  if (plan.bodies.empty()) plan.bodies.push_back(message.message_json());
  // Checked on what goes out, so text that the split brought under the limit passes.
  if (instagram) {
    for (const auto& body : plan.bodies) {
      if (auto error = InstagramMessageError(nlohmann::json::parse(body, nullptr, false))) {
        plan.refusal = *error;
        break;
      }
    }
  }
  return plan;
}

std::optional<redis::HandleResult> SenderHandler::CheckBeforeSending(redis::Client& client,
                                                                     const redis::StreamEntry& entry,
                                                                     const redis::Fence& fence,
                                                                     const katy::v1::OutboundMessage& message,
                                                                     int shard, const SlotClaim* claim) {
  std::vector<std::vector<std::string>> commands = {
      {"EXISTS", keys_.Sent(shard, message.id())},
      {"GET", fence.lease_key},
      {"HGET", keys_.Conversation(shard, message.page_id(), message.recipient_id()), "last_user_ms"}};
  std::optional<PageLimiter::Ask> ask;
  const int64_t now = now_ms_();
  if (claim) {
    auto prepared = limiter_.Prepare(client, message.page_id(), claim->media, claim->inflight_key);
    if (!prepared) return redis::HandleResult::RedisFailed(prepared.error());
    ask = std::move(*prepared);
    if (!ask->decided) commands.push_back(limiter_.Command(*ask));
    // If this round trip fails after Redis set the mark, the next attempt finds it and waits
    // out one request timeout before sending (as a possible duplicate): rare, and never a loss.
    commands.push_back(InFlightCommand(claim->inflight_key, now));
  }
  auto checks = client.Pipeline(commands);
  if (!checks) return redis::HandleResult::RedisFailed(checks.error());
  auto finished = VerdictOfChecks(client, entry, fence, message, *checks);
  if (!claim) return finished;
  const redis::Reply& mark = checks->back();
  if (!finished) {
    auto gate = ask->decided ? Result<PageGate>(*ask->decided)
                             : limiter_.Finish(client, (*checks)[3], *ask, claim->inflight_key);
    finished = OnGate(gate, message);
    if (!finished) finished = OnInFlight(ReadInFlight(client, claim->inflight_key, mark, now), message);
  }
  // A mark this call set for a part that does not go now would hold its next attempt back.
  if (finished && mark.IsNil())
    LogIfFailed(client.Command({"DEL", claim->inflight_key}), "cannot clear an in-flight mark");
  return finished;
}

std::optional<redis::HandleResult> SenderHandler::VerdictOfChecks(redis::Client& client,
                                                                  const redis::StreamEntry& entry,
                                                                  const redis::Fence& fence,
                                                                  const katy::v1::OutboundMessage& message,
                                                                  const std::vector<redis::Reply>& checks) {
  if (checks[1].str != fence.owner) return redis::HandleResult::Abandon("lost_lease");
  if (checks[0].integer == 1) {
    // Delivered before a crash that came between the send and the acknowledgement.
    auto acked = client.Command({"XACK", entry.stream, KeySpace::kSenderGroup, entry.id});
    if (!acked) return redis::HandleResult::RedisFailed(acked.error());
    metrics_.skipped.Increment();
    return redis::HandleResult::Done();
  }

  // The 24 h window runs from the user's last message: the one this replies to, or a later one.
  const int64_t last_user_ms = std::max<int64_t>(message.user_last_message_ms(), std::atoll(checks[2].str.c_str()));
  const bool automated = message.messaging_type() != "MESSAGE_TAG";
  const int64_t window_ms = std::chrono::duration_cast<std::chrono::milliseconds>(options_.window).count();
  if (automated && last_user_ms > 0 && now_ms_() - last_user_ms > window_ms) {
    metrics_.sends.Add({{"result", "outside_window"}, {"code", "0"}}).Increment();
    return redis::HandleResult::Poison("outside_window");
  }
  // A person's HUMAN_AGENT message: within 7 days of the user's last message (message_tags.h).
  if (message.tag() == "HUMAN_AGENT" && last_user_ms > 0 && now_ms_() - last_user_ms > kHumanAgentWindowMs) {
    metrics_.sends.Add({{"result", "outside_human_agent_window"}, {"code", "0"}}).Increment();
    return redis::HandleResult::Poison("outside_human_agent_window");
  }
  return std::nullopt;
}

redis::HandleResult SenderHandler::SendParts(redis::Client& client, const katy::v1::OutboundMessage& message,
                                             const std::string& sent_key, const std::vector<std::string>& bodies,
                                             const std::string& token, bool media, bool first_slot_taken,
                                             std::string* meta_id) {
  for (size_t part = 0; part < bodies.size(); ++part) {
    const bool last = part + 1 == bodies.size();
    const std::string mark_key = bodies.size() == 1 ? sent_key : sent_key + "@" + std::to_string(part);
    if (bodies.size() > 1) {
      auto done = client.Command({"EXISTS", mark_key});
      if (!done) return redis::HandleResult::RedisFailed(done.error());
      if (done->integer == 1) continue;  // this part went out before a retry
    }
    auto body = ResolveMedia(client, message, bodies[part], token, mark_key + ":upload", media);
    if (auto* not_now = std::get_if<redis::HandleResult>(&body)) return *not_now;
    if (options_.typing && !bodies[part].empty() && message.sender_action().empty()) {
      SendAction(message, "typing_on", token);
    }
    auto result = SendOne(client, message, mark_key, std::get<std::string>(body), token, media,
                          part == 0 && first_slot_taken, meta_id);
    if (result.kind != redis::HandleResult::Kind::kDone) return result;
    if (!last) {
      auto recorded = client.Command({"SET", mark_key, *meta_id, "EX", std::to_string(options_.sent_ttl.count())});
      LogIfFailed(client.Command({"DEL", mark_key + ":inflight"}), "cannot clear an in-flight mark");
      if (!recorded) return redis::HandleResult::RedisFailed(recorded.error());
    }
  }
  return redis::HandleResult::Done();
}

Status SenderHandler::RecordDelivery(redis::Client& client, const redis::StreamEntry& entry,
                                     const std::string& sent_key, const std::string& inflight_key,
                                     const std::string& meta_id) const {
  // Three plain commands in one round trip, in this order on one connection (the keys share
  // the shard's hash tag, so one node even on a cluster). Not atomic, and need not be: a crash
  // after the sent mark and before the XACK leaves the entry pending with its mark, which the
  // next attempt acknowledges without sending; a stray in-flight mark expires. A Lua script
  // did the same atomically at ~20 µs more of Redis CPU per message (bench/RESULTS.md).
  const std::vector<std::vector<std::string>> record = {
      {"SET", sent_key, meta_id, "EX", std::to_string(options_.sent_ttl.count())},
      {"DEL", inflight_key},
      {"XACK", entry.stream, KeySpace::kSenderGroup, entry.id}};
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

const std::string& SenderHandler::GraphUrlFor(const katy::v1::OutboundMessage& message) const {
  const bool instagram = message.platform() == "instagram" || tokens_.IsInstagram(message.page_id());
  return instagram && !options_.instagram_graph_url.empty() ? options_.instagram_graph_url : options_.graph_url;
}

void SenderHandler::ObserveLatencies(const katy::v1::OutboundMessage& message) const {
  const auto seconds_since = [now = now_ms_()](int64_t then_ms) {
    // Meta's clock and ours may disagree by a little: a negative wait is no wait.
    return static_cast<double>(std::max<int64_t>(0, now - then_ms)) / 1000.0;
  };
  if (message.event_received_at_ms() > 0) metrics_.end_to_end.Observe(seconds_since(message.event_received_at_ms()));
  if (message.event_timestamp_ms() > 0) metrics_.webhook_to_send.Observe(seconds_since(message.event_timestamp_ms()));
}

redis::HandleResult SenderHandler::operator()(redis::Client& client, const redis::StreamEntry& entry,
                                              const redis::Fence& fence) {
  katy::v1::OutboundMessage message;
  auto payload = entry.Field("pb");
  if (!payload || !message.ParseFromString(*payload)) return redis::HandleResult::Poison("undecodable_message");
  const int shard = ShardOf(message.page_id(), message.recipient_id(), keys_.shards());
  auto token = tokens_.For(message.page_id());
  const std::optional<PlannedParts> plan = PlanParts(message);
  const std::string sent_key = keys_.Sent(shard, message.id());
  // A message of one part (most are) that can go as it is asks for its slot and marks itself
  // in flight in the checks' round trip: two round trips fewer (bench/RESULTS.md, issue 18).
  std::optional<SlotClaim> claim;
  if (token && plan && plan->refusal.empty() && plan->bodies.size() == 1 &&
      !ReusableMediaFor(message, plan->bodies[0])) {
    claim = SlotClaim{sent_key + ":inflight", plan->media};
  }
  if (auto finished = CheckBeforeSending(client, entry, fence, message, shard, claim ? &*claim : nullptr)) {
    return *finished;
  }
  if (!token) return redis::HandleResult::Poison("no_page_token");
  if (!plan) return redis::HandleResult::Poison("bad_message");
  if (!plan->refusal.empty()) {
    log::Warn("message refused before sending: Instagram cannot take it",
              {{"id", message.id()}, {"page", message.page_id()}, {"why", plan->refusal}});
    metrics_.sends.Add({{"result", "instagram_unsupported"}, {"code", "0"}}).Increment();
    return redis::HandleResult::Poison("instagram_unsupported");
  }

  const bool first_reply = message.id().size() > 2 && message.id().compare(message.id().size() - 2, 2, "#0") == 0;
  if (options_.mark_seen && first_reply) SendAction(message, "mark_seen", *token);
  std::string meta_id;
  auto sent = SendParts(client, message, sent_key, plan->bodies, *token, plan->media, claim.has_value(), &meta_id);
  if (sent.kind != redis::HandleResult::Kind::kDone) return sent;

  const size_t parts = plan->bodies.size();
  const std::string final_mark = parts == 1 ? sent_key : sent_key + "@" + std::to_string(parts - 1);
  auto committed = RecordDelivery(client, entry, sent_key, final_mark + ":inflight", meta_id);
  if (!committed) {
    // Meta has it but Redis did not record it: the retry finds the in-flight mark, sends again
    // and counts a possible duplicate. This is the one duplicate window of at-least-once.
    log::Error("delivered but not recorded", {{"id", message.id()}, {"error", committed.error().message}});
    return redis::HandleResult::RedisFailed(committed.error());
  }
  ObserveLatencies(message);
  metrics_.delivered.Add({{"source", SourceOf(message)}}).Increment();
  log::Debug(
      "delivered",
      {{"id", message.id()}, {"page", message.page_id()}, {"shard", shard}, {"message_id", meta_id}, {"parts", parts}});
  return redis::HandleResult::Done();
}

}  // namespace katy::sender
