#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "katy/v1/events.pb.h"

namespace katy::ingress {

// Deepest JSON nesting accepted. Meta's payloads nest about 8 levels; anything near this is
// an attack or a bug, and rejecting it bounds the parser's memory and stack.
inline constexpr int kMaxJsonDepth = 64;

// Turns a webhook POST body into one InboundEvent per item of every entry[].messaging[],
// entry[].standby[] and entry[].changes[], in that order within each entry. Pure and
// thread-safe.
//
// changes[]: a Page `feed` change whose item is a comment or a (visitor's) post, and an
// Instagram `comments` or `live_comments` change, become EVENT_KIND_COMMENT (user_id = from.id,
// so a commenter's comments share a shard and keep their order); other feed items become
// EVENT_KIND_FEED; any other field is kept raw as EVENT_KIND_UNKNOWN with kind_key = the field.
//
// Accepts numbers given as strings, unknown keys and unknown event kinds (kept as
// EVENT_KIND_UNKNOWN with their raw JSON), items without a sender (policy_enforcement) and
// chat-plugin senders (user_ref). Each event carries its dedupe key (see DedupeKey).
//
// Meta batches at most 1,000 items in one webhook (docs/messenger-platform.md); more in one
// body is not Meta, and would let one signed request become a flood of events.
inline constexpr size_t kDefaultMaxEventsPerRequest = 1000;

// Errors are ErrorCode::kRejected with one of these reasons: kTooManyEvents (more than
// `max_events` items; answer 413; parsing stops there, so a hostile body costs no more than
// `max_events` events), and, all meaning "answer 400": "invalid_json" (includes invalid
// UTF-8), "too_deep", "not_an_object", "wrong_object" (object neither "page" nor "instagram"), "bad_shape"
// (entry/messaging/changes not arrays, an item not an object, an entry without id).
inline constexpr std::string_view kTooManyEvents = "too_many_events";
Result<std::vector<katy::v1::InboundEvent>> ParseWebhook(std::string_view body, int64_t received_at_ms,
                                                         size_t max_events = kDefaultMaxEventsPerRequest);

// What identifies a redelivery of `event` (docs/messenger-platform.md, "Redelivery and duplicates"): the mid for
// messages, echoes, postbacks and Instagram deletions (each kind its own key); mid + edit count for edits; (user,
// watermark) for deliveries and reads; (mid, action, emoji) for reactions; (comment or post id, verb) for comments,
// with a hash of the text for edits; a hash of the raw item for everything else.
// Meta's genuine duplicates differ in entry.time, which no key includes.
std::string DedupeKey(const katy::v1::InboundEvent& event);

// Largest nesting depth of `json`'s arrays and objects (strings are skipped). Linear, no
// allocation: it runs before the real parser so hostile depth is refused cheaply.
int JsonDepth(std::string_view json);

}  // namespace katy::ingress
