#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <variant>

#include "common/bucketed_marks.h"
#include "common/http/async_client.h"
#include "common/http/http_client.h"
#include "common/message_tags.h"
#include "common/metrics/bounded_label.h"
#include "common/metrics/metrics.h"
#include "common/page_tokens.h"
#include "common/redis/script.h"
#include "common/redis/sharded_consumer.h"
#include "common/shard.h"
#include "katy/v1/events.pb.h"
#include "services/sender/delivered_mark.h"
#include "services/sender/error_classifier.h"
#include "services/sender/page_limiter.h"

namespace katy::sender {

struct SenderOptions {
  std::string graph_url;  // base, e.g. https://graph.facebook.com/v25.0
  // For Instagram accounts' messages (OutboundMessage.platform "instagram"); empty: graph_url.
  std::string instagram_graph_url;
  std::string appsecret;  // non-empty: send appsecret_proof with every call
  // How long delivered marks are kept (KATY_SENT_MARK_TTL_S). A bot reply is never sent more
  // than 24 h after the user's message (the window), so a mark older than that protects
  // nothing (a reply's mark costs Redis 8 bytes, an outbound API message's ~100: DeliveredMark).
  std::chrono::seconds sent_ttl{2 * 24 * 3600};
  std::chrono::hours window{24};                     // Meta's standard messaging window
  std::chrono::milliseconds request_timeout{10000};  // one Send API call, connect to answer
  std::chrono::seconds retry_max_age{3600};          // a message failing transiently is dead-lettered
                                                     // ("expired") once this old
  bool typing = false;                               // typing_on before every text reply
  bool mark_seen = false;                            // mark_seen before the first reply to an event
};

struct SenderMetrics {
  explicit SenderMetrics(prometheus::Registry& registry);
  prometheus::Family<prometheus::Counter>& sends;       // by result (action reason) and code
  prometheus::Histogram& latency;                       // Send API call, seconds
  prometheus::Histogram& end_to_end;                    // ingress receipt -> Send API 2xx, seconds
  prometheus::Histogram& webhook_to_send;               // event's webhook timestamp -> Send API 2xx
  prometheus::Counter& skipped;                         // already delivered (delivered mark present)
  prometheus::Family<prometheus::Counter>& throttled;   // by page: seconds of throttle imposed
  prometheus::Family<prometheus::Counter>& pauses;      // by page and reason
  prometheus::Counter& possible_duplicates;             // sends after an unknown outcome
  prometheus::Family<prometheus::Counter>& rate_waits;  // by page: times a message waited for a slot
  prometheus::Histogram& slot_lateness;                 // a reserved slot's call: seconds after it fell due
  prometheus::Counter& media_uploads;                   // reusable media uploaded (Attachment Upload API)
  prometheus::Counter& media_reused;                    // reusable media sent by a cached attachment_id
  prometheus::Family<prometheus::Counter>& delivered;   // by source: reply, outbound, handover
  metrics::BoundedLabel page_label;                     // the page label of the families above
};

// Where an outbound entry came from: "reply" (the responder's), "outbound" (katy.v1.Outbound),
// "handover" (a thread-control call). Pure.
std::string SourceOf(const katy::v1::OutboundMessage& message);

// What one outbound message becomes on the wire: a sender action alone (one empty body), or
// the message with long text in ordered parts (quick replies ride on the last part; Instagram
// parts are at most 1000 bytes). nullopt when message_json is not a JSON object.
struct PlannedParts {
  std::vector<std::string> bodies;
  bool media = false;  // audio or video: the media rate applies
  // Why Instagram cannot take the message (common/instagram_limits.h), or empty: such a message
  // is dead-lettered as "instagram_unsupported" without calling Meta.
  std::string refusal;
};
std::optional<PlannedParts> PlanParts(const katy::v1::OutboundMessage& message);

// The window `message` must go in after the user's last message (ms): the standard one for
// an automated message, 7 days for HUMAN_AGENT, 0 (none) for the other tags.
int64_t WindowOf(const katy::v1::OutboundMessage& message, int64_t standard_window_ms);
// Whether `message` answers a message (or postback) of the person's: a responder's reply
// with the mid it answers. Anything else (a reminder's reply, the outbound API's messages) the
// person's opt-out stops. Pure.
bool AnswersTheirMessage(const katy::v1::OutboundMessage& message);
// Whether the conversation's hash must be read before `message` goes: for its window, unless
// the user's last message the message carries already puts it inside with a minute to spare
// (a later message of the user only moves the window on) or no window applies; and for the
// person's opt-out, unless it answers their message. A comment's messages read nothing.
bool NeedsWindowRead(const katy::v1::OutboundMessage& message, int64_t now_ms, int64_t standard_window_ms);
// Whether the person's opt-out (at `opted_out_ms`, 0 for none) stops `message`: everything but
// an answer to a message of theirs from the opt-out on (the opt-out's own confirmation). Pure.
bool OptOutStops(const katy::v1::OutboundMessage& message, int64_t opted_out_ms);
// The read of the conversation's windows (its last user message, an ad's 7 days) and opt-out:
// the command, and what its reply says.
std::vector<std::string> UserWindowRead(const std::string& conversation_key);
UserWindow UserWindowOfReply(const redis::Reply& reply);

// Handles outbound stream entries (docs/sending.md, "The sender's loop"), a batch of
// conversations' first messages at a time (sender_batch.cc), each message in stages, each in
// its own file:
//  - plan (sender_plan.cc): the parts the message goes in;
//  - gate (sender_gate.cc), on a worker: in one round trip for the batch, was it delivered
//    already (skip), does this instance still own the shard (else leave it), when did the user
//    last write (the standard window: 24 h, or an ad's 7 days; read only near its end:
//    NeedsWindowRead; automated messages outside it are dead-lettered `outside_window`); then
//    a slot from the page's shared rate limit (a wait or a pause is not a failure) and an
//    in-flight mark that reveals a possible duplicate after a crash or a timeout (a one-part
//    message asks for both in the checks' round trip);
//  - call (sender_call.cc): the Send API call goes on the shared event-loop client and the
//    entry is kLater, so no thread waits on Meta; its classified answer comes back through the
//    consumer's Resume to a worker, which retries, throttles or pauses the page, or
//    dead-letters;
//  - record (sender_record.cc): a delivered part is marked (its mark, in-flight mark cleared)
//    before the next part goes; a delivered message's mark, in-flight mark cleared and XACK go
//    in one pipeline with those of the batch's other messages answered meanwhile.
// mark_seen and typing_on go the same way, each before what it announces. Thread-safe: one
// serves every worker.
class SenderHandler {
 public:
  using Clock = std::function<int64_t()>;  // epoch ms

  SenderHandler(KeySpace keys, SenderOptions options, const PageTokens& tokens, const PageLimiter& limiter,
                SenderMetrics& metrics, Clock now_ms, const http::AsyncClientOptions& calls = {});

  // Starts the deliveries of the first messages of several conversations (redis::BatchHandler;
  // sender_batch.cc): their checks, slots and in-flight marks in one round trip, then their
  // calls on the event loop. Each message is done, or kLater until its own call answers: then
  // `resume` is called, and its continuation takes every message whose call has answered
  // since the last, records the delivered ones together (one pipeline, their marks and
  // acknowledgements merged: redis::CommandBatch) and leaves the others kLater. So no message
  // waits for another's call, and under load the records of many share a round trip.
  std::vector<redis::HandleResult> HandleBatch(redis::Client& client, const std::vector<redis::BatchEntry>& batch,
                                               const redis::Resume& resume) const;
  // One entry's HandleBatch, its calls waited for on this thread: for a caller with a thread
  // to spare (tests). Without `in_hand`, the entry counts as held since long ago.
  redis::HandleResult operator()(redis::Client& client, const redis::BatchEntry& one) const;
  redis::HandleResult operator()(redis::Client& client, const redis::StreamEntry& entry,
                                 const redis::Fence& fence) const;

  // A message held at least this long since it was read has its entry checked, before it is
  // sent, to be still pending (a person forgotten meanwhile has theirs deleted,
  // docs/privacy.md); one read just now is on its way, as one already called is. Saves the
  // XPENDING of nearly every message (bench/RESULTS.md).
  static constexpr std::chrono::milliseconds kPendingCheckAfter{100};

 private:
  // One message on its way through the stages; shared by the continuations of its calls.
  struct Delivery {
    size_t index = 0;          // in its batch
    redis::StreamEntry entry;  // a copy: the consumer's is the handler call's only
    redis::Fence fence;
    std::chrono::milliseconds in_hand{0};  // redis::BatchEntry::in_hand
    katy::v1::OutboundMessage message;
    int shard = 0;
    std::string token;  // the page's; empty when it has none (then dead-lettered: Begin)
    PlannedParts plan;
    std::string sent_key;           // keys.Sent: its parts' and in-flight marks are named after it
    DeliveredMark delivered;        // where the whole message's delivered mark is
    bool first_slot_taken = false;  // the checks took the first part's slot and in-flight mark
    size_t part = 0;                // the part being sent
    std::string body;               // its body, media resolved
    std::string meta_id;            // Meta's id of the last part delivered
    // The slot the next Graph call goes on, when it was reserved: when that slot fell due.
    std::optional<std::chrono::steady_clock::time_point> slot_due;
    std::chrono::steady_clock::time_point call_started;
    // Set while a batch's continuation runs the message: its record (Delivered) joins the
    // continuation's one pipeline instead of going on its own.
    std::vector<const Delivery*>* deferred_records = nullptr;

    std::string MarkKey() const;  // a part's mark (of its own); for one part, sent_key
    std::string InFlightKey() const { return MarkKey() + ":inflight"; }
    bool LastPart() const { return part + 1 == plan.bodies.size(); }
  };
  using DeliveryPtr = std::shared_ptr<Delivery>;
  // What runs on a worker once a call has answered.
  using Then = std::function<redis::HandleResult(redis::Client&, const DeliveryPtr&, const Result<http::Response>&,
                                                 const redis::Resume&)>;

  // --- the batch (sender_batch.cc)
  class BatchRun;
  // The message's delivery from its entry, or what to do with an entry that cannot be one.
  std::variant<DeliveryPtr, redis::HandleResult> DeliveryOf(const redis::BatchEntry& one) const;
  // A batch's continuation: the messages whose calls have answered, their records in one
  // pipeline; a result for each message of the batch still kLater, in the batch's order.
  std::vector<redis::HandleResult> Drain(redis::Client& client, BatchRun& run) const;

  // --- the loop (sender_handler.cc)
  // Once the checks let the message go: the refusals that need no Redis, then the parts.
  redis::HandleResult Begin(redis::Client& client, const DeliveryPtr& delivery, const redis::Resume& resume) const;
  // mark_seen before the first reply to an event, then the parts.
  redis::HandleResult BeginParts(redis::Client& client, const DeliveryPtr& delivery, const redis::Resume& resume) const;
  // The current part, unless it went out before a retry: its media resolved, typing_on first.
  redis::HandleResult NextPart(redis::Client& client, const DeliveryPtr& delivery, const redis::Resume& resume) const;
  // Puts `request` on the event loop; `then` runs on a worker with its answer. Returns kLater.
  redis::HandleResult CallThen(const DeliveryPtr& delivery, http::Request request, const redis::Resume& resume,
                               Then then) const;

  // --- gate (sender_gate.cc)
  // What the in-flight mark of a part says about an earlier attempt.
  struct InFlight {
    bool possible_duplicate = false;    // an earlier attempt's outcome is unknown: send, count it
    std::chrono::milliseconds wait{0};  // > 0: an earlier attempt may still be under way
  };
  // Sets the part's in-flight mark, or reads an earlier one (see the .cc).
  Result<InFlight> MarkInFlight(redis::Client& client, const std::string& key) const;
  // MarkInFlight in two steps, for a pipeline: the command that sets the mark unless one is
  // there (answering the earlier one), and what its reply says (restarting a stale mark).
  static std::vector<std::string> InFlightCommand(const std::string& key, int64_t now_ms);
  Result<InFlight> ReadInFlight(redis::Client& client, const std::string& key, const redis::Reply& earlier,
                                int64_t now_ms) const;
  // What the consumer must do when the in-flight mark does not let the part go now (and the
  // possible duplicate counted when it goes after an unknown outcome). nullopt: go.
  std::optional<redis::HandleResult> OnInFlight(const Result<InFlight>& in_flight,
                                                const katy::v1::OutboundMessage& message) const;
  // The checks before anything is sent, for one round trip (a batch's messages' together):
  // the lease still ours, not already delivered (then acknowledged and counted as skipped),
  // inside the 24 h window; with `first_slot_taken`, also the part's slot and in-flight mark.
  // `commands` in that round trip's order, and where each check's reply is.
  struct Checks {
    std::vector<std::vector<std::string>> commands;
    std::optional<size_t> lease_at;     // the shard lease's GET, unless surely ours (Fence)
    std::optional<size_t> pending_at;   // the entry's XPENDING
    std::optional<size_t> window_at;    // the UserWindowRead
    std::optional<size_t> answered_at;  // a private reply's claim on its comment
    std::optional<size_t> limiter_at;   // the page limiter's script, when it runs
    std::optional<PageLimiter::Ask> ask;
    int64_t now_ms = 0;
  };
  Result<Checks> ChecksOf(redis::Client& client, Delivery& delivery) const;
  // What the checks' replies (in their commands' order) say: what to do when the entry is
  // finished or must wait (a mark the checks set for a part that does not go now is cleared
  // again); nullopt when it may be sent.
  std::optional<redis::HandleResult> JudgeChecks(redis::Client& client, Delivery& delivery, const Checks& checks,
                                                 std::span<const redis::Reply> replies) const;
  // What the checks' replies say of the message itself: [0] the delivered mark and, where the
  // checks put them, the lease owner, the entry's XPENDING and the UserWindowRead.
  std::optional<redis::HandleResult> VerdictOfChecks(redis::Client& client, const Delivery& delivery,
                                                     std::span<const redis::Reply> replies, const Checks& checks) const;
  // Done (the entry acknowledged, counted as skipped) when the message's delivered mark (the
  // checks' `mark` reply, or its mark from before buckets) says an earlier attempt delivered it.
  std::optional<redis::HandleResult> SkipIfDelivered(redis::Client& client, const Delivery& delivery,
                                                     const redis::Reply& mark) const;
  // A private reply's claim on its comment (the reply of the SET NX GET): refused when another
  // message has the claim.
  std::optional<redis::HandleResult> CommentVerdict(const Delivery& delivery, const redis::Reply& claim) const;
  int64_t StandardWindowMs() const {
    return std::chrono::duration_cast<std::chrono::milliseconds>(options_.window).count();
  }
  // A slot from the page's limit for a Graph call (reserved for `slot_key` when due later:
  // delivery.slot_due). nullopt when the call may go now.
  std::optional<redis::HandleResult> WaitForSlot(redis::Client& client, Delivery& delivery,
                                                 const std::string& slot_key) const;
  // What the consumer must do when the page's gate does not let the call go now.
  std::optional<redis::HandleResult> OnGate(const Result<PageGate>& gate, Delivery& delivery) const;
  // A slot from the page's limit, then the part's in-flight mark. nullopt when the part may
  // be sent now.
  std::optional<redis::HandleResult> TakeSendSlot(redis::Client& client, Delivery& delivery) const;
  // The current part's body with its reusable media named by attachment_id: the cached one,
  // else one uploaded now (a slot from the page's limit first; its errors classified as a
  // send's; the upload, rare, waited for on this worker) and cached for kAttachmentIdTtl. The
  // body unchanged when it has no reusable media; a HandleResult when the part must wait or
  // fail.
  std::variant<std::string, redis::HandleResult> ResolveMedia(redis::Client& client, Delivery& delivery) const;

  // --- call (sender_call.cc)
  // The part's Send API call, on its slot (taken now unless the checks took it).
  redis::HandleResult SendPart(redis::Client& client, const DeliveryPtr& delivery, const redis::Resume& resume) const;
  // The part's answer: what the consumer must do, the part recorded and the next one begun
  // when Meta took it.
  redis::HandleResult OnAnswer(redis::Client& client, const DeliveryPtr& delivery, const Result<http::Response>& answer,
                               const redis::Resume& resume) const;
  // typing_on / mark_seen, best effort (a lost indicator is no reason to retry a reply), then
  // `then`.
  redis::HandleResult SendActionThen(redis::Client& client, const DeliveryPtr& delivery, const std::string& action,
                                     const redis::Resume& resume, Then then) const;
  // A Graph POST (an action's: on no slot of its own) with the send timeout; a reserved
  // slot's lateness is observed when one was taken for it.
  http::Request PostOnSlot(Delivery& delivery, std::string url, std::string body) const;
  // What the consumer must do about a classified Send API answer (and the page state it
  // changes: throttle, pause).
  redis::HandleResult Act(redis::Client& client, const katy::v1::OutboundMessage& message,
                          const Classification& verdict) const;
  // The Send API base for the message's platform.
  const std::string& GraphUrlFor(const katy::v1::OutboundMessage& message) const;

  // --- record (sender_record.cc)
  // A part that is not the last, delivered: its mark, its in-flight mark cleared.
  std::optional<redis::HandleResult> RecordPart(redis::Client& client, const Delivery& delivery) const;
  // Records delivered messages (delivered marks, in-flight marks cleared, entries
  // acknowledged) in one pipeline, trying again for up to kRecordRetryFor while Redis cannot be
  // reached.
  static constexpr std::chrono::milliseconds kRecordRetryFor{5000};
  static constexpr std::chrono::milliseconds kRecordRetryPause{100};
  Status RecordDeliveries(redis::Client& client, const std::vector<const Delivery*>& deliveries) const;
  // The whole message delivered: recorded (or left to its batch's record: deferred_records),
  // counted, logged.
  redis::HandleResult Delivered(redis::Client& client, const Delivery& delivery) const;
  // What Redis did not record: Meta has the message, so its retry will count a possible
  // duplicate.
  redis::HandleResult NotRecorded(const Delivery& delivery, const Error& error) const;
  void CountDelivered(const Delivery& delivery) const;
  // The two end-to-end histograms, for a message Meta has just accepted (a reply to no event,
  // e.g. an outbound message, has neither time and is not counted).
  void ObserveLatencies(const katy::v1::OutboundMessage& message) const;

  KeySpace keys_;
  SenderOptions options_;
  const PageTokens& tokens_;
  const PageLimiter& limiter_;
  SenderMetrics& metrics_;
  Clock now_ms_;
  // Messages created before this: their delivered mark may be a key of its own, from before
  // sent buckets (DeliveredMark).
  int64_t legacy_before_ms_;
  mutable http::AsyncClient calls_;       // every Graph call of every worker, on one loop
  mutable BucketExpiries sent_expiries_;  // when a delivered-mark bucket's EXPIREAT goes
};

// The conversation an outbound entry belongs to ("<page>:<recipient>"): one message in flight
// per recipient, in order.
std::string ConversationOfMessage(const redis::StreamEntry& entry);

}  // namespace katy::sender
