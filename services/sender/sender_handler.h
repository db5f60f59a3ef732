#pragma once

#include <chrono>
#include <functional>
#include <string>
#include <variant>

#include "common/http/http_client.h"
#include "common/metrics/bounded_label.h"
#include "common/metrics/metrics.h"
#include "common/page_tokens.h"
#include "common/redis/script.h"
#include "common/redis/sharded_consumer.h"
#include "common/shard.h"
#include "katy/v1/events.pb.h"
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
  // nothing; each one costs Redis ~150 bytes (bench/RESULTS.md, the backlog).
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
  prometheus::Counter& skipped;                         // already delivered (sent mark present)
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

// Handles one outbound stream entry (docs/sending.md):
//  1. in one round trip: was it delivered already (skip), does this instance still own the
//     shard (else leave it), when did the user last write (the 24 h window);
//  2. refuses automated messages outside the window (dead letter `outside_window`);
//  3. takes a slot from the page's shared rate limit (a wait or a pause is not a failure);
//  4. sends, part by part for text over 2000 characters (each part marked when delivered),
//     with an in-flight mark that reveals a possible duplicate after a crash or a timeout
//     (a one-part message asks for 3 and sets the mark in step 1's round trip);
//  5. acts on the classified answer: record the delivery (sent mark, in-flight mark cleared,
//     XACK: one pipeline), retry, throttle the page, pause the page, or dead-letter.
// Thread-compatible: one per worker thread (it owns an HTTP connection).
class SenderHandler {
 public:
  using Clock = std::function<int64_t()>;  // epoch ms

  SenderHandler(KeySpace keys, SenderOptions options, const PageTokens& tokens, const PageLimiter& limiter,
                SenderMetrics& metrics, Clock now_ms);

  redis::HandleResult operator()(redis::Client& client, const redis::StreamEntry& entry, const redis::Fence& fence);

 private:
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
                                                const katy::v1::OutboundMessage& message);

  // A single-part message's slot and in-flight mark, asked for in the same round trip as the
  // checks before sending: when those let the message go, both are taken.
  struct SlotClaim {
    std::string inflight_key;
    bool media = false;
  };

  KeySpace keys_;
  SenderOptions options_;
  const PageTokens& tokens_;
  const PageLimiter& limiter_;
  SenderMetrics& metrics_;
  Clock now_ms_;
  http::Client http_;
  // The slot the next Graph call goes on, when it was reserved: when that slot fell due.
  std::optional<std::chrono::steady_clock::time_point> reserved_slot_due_;

  // POSTs a Graph call on the slot just taken; a reserved slot's lateness is observed first.
  Result<http::Response> PostOnSlot(const std::string& url, const std::string& body);

  // Sends one Send API call for `message` with `body_json` as its message (a slot from the
  // page's limit first, an in-flight mark around it) and turns the classified answer into
  // what the consumer must do. On kDone, `meta_id` is Meta's message id.
  // `slot_taken`: CheckBeforeSending already took both.
  redis::HandleResult SendOne(redis::Client& client, const katy::v1::OutboundMessage& message,
                              const std::string& mark_key, const std::string& body_json, const std::string& token,
                              bool media, bool slot_taken, std::string* meta_id);
  // typing_on / mark_seen, best effort (a lost indicator is no reason to retry a reply).
  void SendAction(const katy::v1::OutboundMessage& message, const std::string& action, const std::string& token);

  // Before anything is sent, in one round trip: the lease still ours, not already delivered
  // (then acknowledged and counted as skipped), inside the 24 h window; with a `claim`, also
  // the part's slot and in-flight mark (cleared again when the part does not go now). What to
  // do when the entry is finished or must wait; nullopt when it may be sent.
  std::optional<redis::HandleResult> CheckBeforeSending(redis::Client& client, const redis::StreamEntry& entry,
                                                        const redis::Fence& fence,
                                                        const katy::v1::OutboundMessage& message, int shard,
                                                        const SlotClaim* claim);
  // What the checks' replies (sent mark, lease owner, last_user_ms) say.
  std::optional<redis::HandleResult> VerdictOfChecks(redis::Client& client, const redis::StreamEntry& entry,
                                                     const redis::Fence& fence,
                                                     const katy::v1::OutboundMessage& message,
                                                     const std::vector<redis::Reply>& checks);
  // Sends the parts not sent yet, in order, each recorded as sent before the next; the first
  // with the slot and mark CheckBeforeSending took when `first_slot_taken`.
  redis::HandleResult SendParts(redis::Client& client, const katy::v1::OutboundMessage& message,
                                const std::string& sent_key, const std::vector<std::string>& bodies,
                                const std::string& token, bool media, bool first_slot_taken, std::string* meta_id);
  // A slot from the page's limit for a Graph call (reserved for `slot_key` when due later).
  // nullopt when the call may go now.
  std::optional<redis::HandleResult> WaitForSlot(redis::Client& client, const katy::v1::OutboundMessage& message,
                                                 const std::string& slot_key, bool media);
  // What the consumer must do when the page's gate does not let the call go now.
  std::optional<redis::HandleResult> OnGate(const Result<PageGate>& gate, const katy::v1::OutboundMessage& message);
  // The part's body with its reusable media named by attachment_id: the cached one, else one
  // uploaded now (a slot from the page's limit first; its errors classified as a send's) and
  // cached for kAttachmentIdTtl. The body unchanged when it has no reusable media; a
  // HandleResult when the part must wait or fail.
  std::variant<std::string, redis::HandleResult> ResolveMedia(redis::Client& client,
                                                              const katy::v1::OutboundMessage& message,
                                                              const std::string& body, const std::string& token,
                                                              const std::string& slot_key, bool media);
  // A slot from the page's limit, then the part's in-flight mark. nullopt when the part may
  // be sent now.
  std::optional<redis::HandleResult> TakeSendSlot(redis::Client& client, const katy::v1::OutboundMessage& message,
                                                  const std::string& inflight_key, bool media);
  // Records a delivered message (sent mark, in-flight mark cleared, entry acknowledged),
  // trying again for up to kRecordRetryFor while Redis cannot be reached.
  static constexpr std::chrono::milliseconds kRecordRetryFor{5000};
  static constexpr std::chrono::milliseconds kRecordRetryPause{100};
  Status RecordDelivery(redis::Client& client, const redis::StreamEntry& entry, const std::string& sent_key,
                        const std::string& inflight_key, const std::string& meta_id) const;
  // What the consumer must do about a classified Send API answer (and the page state it
  // changes: throttle, pause).
  redis::HandleResult Act(redis::Client& client, const katy::v1::OutboundMessage& message,
                          const Classification& verdict);
  // The Send API base for the message's platform.
  const std::string& GraphUrlFor(const katy::v1::OutboundMessage& message) const;
  // The two end-to-end histograms, for a message Meta has just accepted (a reply to no event,
  // e.g. an outbound message, has neither time and is not counted).
  void ObserveLatencies(const katy::v1::OutboundMessage& message) const;
};

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

// The conversation an outbound entry belongs to ("<page>:<recipient>"): one message in flight
// per recipient, in order.
std::string ConversationOfMessage(const redis::StreamEntry& entry);

}  // namespace katy::sender
