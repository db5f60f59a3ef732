// The sender's gate, on a worker: the checks before a message goes, its page's rate-limit
// slot and its in-flight mark (and, for reusable media, the attachment it is sent by).
#include <charconv>

#include "common/http/async_client.h"
#include "common/message_tags.h"
#include "services/sender/send_request.h"
#include "services/sender/sender_handler.h"
#include "services/sender/sender_internal.h"

namespace katy::sender {

using internal::LogIfFailed;
using internal::ToSendResponse;

namespace {
constexpr int64_t kInFlightMarkMs = 3600 * 1000;
// A comment's claim outlives the 7 days in which Meta takes a private reply, with a day to spare.
constexpr int64_t kCommentClaimMs = kPrivateReplyWindowMs + 24LL * 3600 * 1000;
}  // namespace

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

std::optional<redis::HandleResult> SenderHandler::OnInFlight(const Result<InFlight>& in_flight,
                                                             const katy::v1::OutboundMessage& message) const {
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

std::optional<redis::HandleResult> SenderHandler::WaitForSlot(redis::Client& client, Delivery& delivery,
                                                              const std::string& slot_key) const {
  return OnGate(limiter_.Acquire(client, delivery.message.page_id(), delivery.plan.media, slot_key), delivery);
}

std::optional<redis::HandleResult> SenderHandler::OnGate(const Result<PageGate>& gate, Delivery& delivery) const {
  if (!gate) return redis::HandleResult::RedisFailed(gate.error());
  if (gate->kind == PageGate::Kind::kPaused) return redis::HandleResult::Wait("page_paused", internal::kPausedRecheck);
  if (gate->kind == PageGate::Kind::kWait) {
    metrics_.rate_waits.Add({{"page", metrics_.page_label(delivery.message.page_id())}}).Increment();
    return redis::HandleResult::Wait("rate_limited", gate->wait);
  }
  delivery.slot_due = gate->reserved_due;
  return std::nullopt;
}

std::optional<redis::HandleResult> SenderHandler::TakeSendSlot(redis::Client& client, Delivery& delivery) const {
  // A slot from the page's shared limit (reserved for this part when due later).
  const std::string inflight_key = delivery.InFlightKey();
  if (auto not_now = WaitForSlot(client, delivery, inflight_key)) return not_now;
  return OnInFlight(MarkInFlight(client, inflight_key), delivery.message);
}

std::variant<std::string, redis::HandleResult> SenderHandler::ResolveMedia(redis::Client& client,
                                                                           Delivery& delivery) const {
  const katy::v1::OutboundMessage& message = delivery.message;
  const std::string& body = delivery.plan.bodies[delivery.part];
  const std::optional<ReusableMedia> reusable = internal::ReusableMediaFor(message, body);
  if (!reusable) return body;
  const std::string cache_key = keys_.Attachment(message.page_id(), reusable->url);
  auto cached = client.Command({"GET", cache_key});
  if (!cached) return redis::HandleResult::RedisFailed(cached.error());
  if (!cached->IsNil() && !cached->str.empty()) {
    metrics_.media_reused.Increment();
    return WithAttachmentId(body, cached->str);
  }
  if (auto not_now = WaitForSlot(client, delivery, delivery.MarkKey() + ":upload")) return *not_now;
  const SendRequest upload =
      BuildUploadRequest(options_.graph_url, message.page_id(), *reusable, delivery.token, options_.appsecret);
  // Once per media and page in kAttachmentIdTtl: rare enough to wait for on this worker.
  const SendResponse response =
      ToSendResponse(http::SubmitAndWait(calls_, PostOnSlot(delivery, upload.url, upload.body)));
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

Result<SenderHandler::Checks> SenderHandler::ChecksOf(redis::Client& client, Delivery& delivery) const {
  const katy::v1::OutboundMessage& message = delivery.message;
  Checks checks;
  checks.now_ms = now_ms_();
  auto& commands = checks.commands;
  commands = {delivery.delivered.Check()};
  // While this instance surely holds the shard's lease no other can have taken it: reading the
  // lease would only say so again (a command a message saved).
  if (!delivery.fence.SurelyOursNow()) {
    checks.lease_at = commands.size();
    commands.push_back({"GET", delivery.fence.lease_key});
  }
  // The entry still pending in the group: a person forgotten (common/forget.h) has theirs
  // acknowledged and deleted, and a message held here (waiting for its page's rate, a pause, an
  // earlier message of the conversation) must then not go. One read just now is on its way, as
  // one already called is (kPendingCheckAfter).
  if (delivery.in_hand >= kPendingCheckAfter) {
    checks.pending_at = commands.size();
    const redis::StreamEntry& entry = delivery.entry;
    commands.push_back({"XPENDING", entry.stream, KeySpace::kSenderGroup, entry.id, entry.id, "1"});
  }
  if (NeedsWindowRead(message, checks.now_ms, StandardWindowMs())) {
    checks.window_at = commands.size();
    commands.push_back(UserWindowRead(keys_.Conversation(delivery.shard, message.page_id(), message.recipient_id())));
  }
  // A private reply claims its comment before it goes: the claim holds this message's id, so
  // its own retries go on and any other reply to the comment is refused (CommentVerdict).
  if (IsPrivateReply(message)) {
    checks.answered_at = commands.size();
    commands.push_back({"SET", keys_.CommentAnswered(delivery.shard, CommentOf(message)), message.id(), "NX", "GET",
                        "PX", std::to_string(kCommentClaimMs)});
  }
  if (delivery.first_slot_taken) {
    auto prepared = limiter_.Prepare(client, message.page_id(), delivery.plan.media, delivery.InFlightKey());
    if (!prepared) return prepared.error();
    checks.ask = std::move(*prepared);
    if (!checks.ask->decided) {
      checks.limiter_at = commands.size();
      commands.push_back(limiter_.Command(*checks.ask));
    }
    // If this round trip fails after Redis set the mark, the next attempt finds it and waits
    // out one request timeout before sending (as a possible duplicate): rare, and never a loss.
    commands.push_back(InFlightCommand(delivery.InFlightKey(), checks.now_ms));
  }
  return checks;
}

std::optional<redis::HandleResult> SenderHandler::JudgeChecks(redis::Client& client, Delivery& delivery,
                                                              const Checks& checks,
                                                              std::span<const redis::Reply> replies) const {
  auto finished = VerdictOfChecks(client, delivery, replies, checks);
  if (!finished && checks.answered_at) finished = CommentVerdict(delivery, replies[*checks.answered_at]);
  if (!delivery.first_slot_taken) return finished;
  const std::string inflight_key = delivery.InFlightKey();
  const redis::Reply& mark = replies.back();
  if (!finished) {
    const PageLimiter::Ask& ask = *checks.ask;
    auto gate = ask.decided ? Result<PageGate>(*ask.decided)
                            : limiter_.Finish(client, replies[*checks.limiter_at], ask, inflight_key);
    finished = OnGate(gate, delivery);
    if (!finished) finished = OnInFlight(ReadInFlight(client, inflight_key, mark, checks.now_ms), delivery.message);
  }
  // A mark this call set for a part that does not go now would hold its next attempt back.
  if (finished && mark.IsNil()) LogIfFailed(client.Command({"DEL", inflight_key}), "cannot clear an in-flight mark");
  return finished;
}

std::optional<redis::HandleResult> SenderHandler::CommentVerdict(const Delivery& delivery,
                                                                 const redis::Reply& claim) const {
  const katy::v1::OutboundMessage& message = delivery.message;
  if (claim.IsError()) return redis::HandleResult::RedisFailed(redis::ReplyError(claim.str));
  if (!claim.IsNil() && claim.str != message.id()) {
    log::Warn("private reply refused: its comment has its reply already",
              {{"id", message.id()}, {"page", message.page_id()}, {"answered_by", claim.str}});
    metrics_.sends.Add({{"result", "comment_already_answered"}, {"code", "0"}}).Increment();
    return redis::HandleResult::Poison("comment_already_answered");
  }
  return std::nullopt;
}

int64_t WindowOf(const katy::v1::OutboundMessage& message, int64_t standard_window_ms) {
  // A private reply has the comment's 7 days instead (VerdictOfChecks); a public reply is no
  // message at all.
  if (IsAboutAComment(message)) return 0;
  if (message.messaging_type() != "MESSAGE_TAG") return standard_window_ms;
  return message.tag() == "HUMAN_AGENT" ? kHumanAgentWindowMs : 0;
}

std::vector<std::string> UserWindowRead(const std::string& conversation_key) {
  return {"HMGET", conversation_key, "last_user_ms", "ad_window_until_ms", "opted_out_ms"};
}

UserWindow UserWindowOfReply(const redis::Reply& reply) {
  UserWindow window;
  if (reply.elements.size() != 3) return window;
  window.last_user_ms = std::atoll(reply.elements[0].str.c_str());
  window.ad_window_until_ms = std::atoll(reply.elements[1].str.c_str());
  window.opted_out_ms = std::atoll(reply.elements[2].str.c_str());
  return window;
}

bool AnswersTheirMessage(const katy::v1::OutboundMessage& message) {
  return message.messaging_type() == "RESPONSE" && !message.in_reply_to_mid().empty();
}

bool OptOutStops(const katy::v1::OutboundMessage& message, int64_t opted_out_ms) {
  if (opted_out_ms <= 0 || IsAboutAComment(message)) return false;
  return !AnswersTheirMessage(message) || message.user_last_message_ms() < opted_out_ms;
}

bool NeedsWindowRead(const katy::v1::OutboundMessage& message, int64_t now_ms, int64_t standard_window_ms) {
  if (IsAboutAComment(message)) return false;
  if (!AnswersTheirMessage(message)) return true;  // the person's opt-out may stop it
  const int64_t window_ms = WindowOf(message, standard_window_ms);
  if (window_ms == 0) return false;
  // A minute short of the window's end: the verdict comes a little after this.
  constexpr int64_t kMargin = 60 * 1000;
  const int64_t own = message.user_last_message_ms();
  return own <= 0 || now_ms - own > window_ms - kMargin;
}

std::optional<redis::HandleResult> SenderHandler::SkipIfDelivered(redis::Client& client, const Delivery& delivery,
                                                                  const redis::Reply& mark) const {
  const katy::v1::OutboundMessage& message = delivery.message;
  bool delivered = mark.integer == 1;
  if (!delivered && !delivery.delivered.legacy_key().empty()) {
    auto legacy = client.Command({"EXISTS", delivery.delivered.legacy_key()});
    if (!legacy) return redis::HandleResult::RedisFailed(legacy.error());
    delivered = legacy->integer == 1;
  }
  if (!delivered) return std::nullopt;
  // Delivered before a crash that came between the send and the acknowledgement.
  auto finish = delivery.delivered.Keep(options_.sent_ttl, now_ms_());
  finish.push_back({"XACK", delivery.entry.stream, KeySpace::kSenderGroup, delivery.entry.id});
  auto acked = client.Pipeline(finish);
  if (!acked) return redis::HandleResult::RedisFailed(acked.error());
  log::Info("not sent again: delivered before a restart", {{"id", message.id()}, {"page", message.page_id()}});
  metrics_.skipped.Increment();
  return redis::HandleResult::Done();
}

std::optional<redis::HandleResult> SenderHandler::VerdictOfChecks(redis::Client& client, const Delivery& delivery,
                                                                  std::span<const redis::Reply> replies,
                                                                  const Checks& checks) const {
  const katy::v1::OutboundMessage& message = delivery.message;
  if (checks.lease_at && replies[*checks.lease_at].str != delivery.fence.owner) {
    return redis::HandleResult::Abandon("lost_lease");
  }
  const auto& pending_at = checks.pending_at;
  if (pending_at && replies[*pending_at].IsArray() && replies[*pending_at].elements.empty()) {
    log::Info("not sent: its entry is no longer pending (its person was forgotten)",
              {{"id", message.id()}, {"page", message.page_id()}, {"entry", delivery.entry.id}});
    metrics_.sends.Add({{"result", "forgotten"}, {"code", "0"}}).Increment();
    return redis::HandleResult::Done();
  }
  if (auto skipped = SkipIfDelivered(client, delivery, replies[0])) return skipped;

  // Past the comment's 7 days its private reply cannot go, and a public reply promising one
  // ("check your inbox") would mislead: neither goes.
  if (IsAboutAComment(message) && message.comment_created_ms() > 0 &&
      now_ms_() - message.comment_created_ms() > kPrivateReplyWindowMs) {
    metrics_.sends.Add({{"result", "outside_comment_window"}, {"code", "0"}}).Increment();
    return redis::HandleResult::Poison("outside_comment_window");
  }
  // The window runs from the user's last message: the one this replies to, or a later one (read
  // only when the message's own does not already show it inside: NeedsWindowRead). An
  // ad-started conversation's standard window lasts 7 days from its first message.
  UserWindow window = checks.window_at ? UserWindowOfReply(replies[*checks.window_at]) : UserWindow{};
  if (OptOutStops(message, window.opted_out_ms)) {
    metrics_.sends.Add({{"result", "opted_out"}, {"code", "0"}}).Increment();
    return redis::HandleResult::Poison("opted_out");
  }
  window.last_user_ms = std::max<int64_t>(message.user_last_message_ms(), window.last_user_ms);
  const int64_t window_ms = WindowOf(message, StandardWindowMs());
  const bool standard = message.messaging_type() != "MESSAGE_TAG";
  const int64_t closes_at = standard ? StandardWindowEnd(window, window_ms) : window.last_user_ms + window_ms;
  if (window_ms > 0 && window.last_user_ms > 0 && now_ms_() > closes_at) {
    // Automated messages keep the standard window; a person's HUMAN_AGENT message has 7 days.
    const std::string reason = standard ? "outside_window" : "outside_human_agent_window";
    metrics_.sends.Add({{"result", reason}, {"code", "0"}}).Increment();
    return redis::HandleResult::Poison(reason);
  }
  return std::nullopt;
}

}  // namespace katy::sender
