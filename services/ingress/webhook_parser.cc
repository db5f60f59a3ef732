#include "services/ingress/webhook_parser.h"

#include <simdjson.h>

#include <cerrno>
#include <cmath>

#include "common/hmac.h"

namespace katy::ingress {
namespace {

// simdjson's DOM: it validates UTF-8 and the whole document in one pass and builds a flat
// tape, reused between calls, instead of a tree of maps. Parsing was most of ingress's
// per-request CPU with a tree-building parser (bench/RESULTS.md).
using katy::v1::EventKind;
using katy::v1::InboundEvent;
using simdjson::dom::element;
using simdjson::dom::element_type;
using simdjson::dom::object;

// The member `key` of `parent`, if any.
std::optional<element> Field(const object& parent, std::string_view key) {
  element value;
  if (parent.at_key(key).get(value) != simdjson::SUCCESS) return std::nullopt;
  return value;
}

std::optional<object> ObjectField(const object& parent, std::string_view key) {
  auto value = Field(parent, key);
  object out;
  if (!value || value->get_object().get(out) != simdjson::SUCCESS) return std::nullopt;
  return out;
}

// Meta documents ids and timestamps as numbers but some pages show them as strings.
std::string IdString(const element& value) {
  switch (value.type()) {
    case element_type::STRING:
      return std::string(value.get_string().value_unsafe());
    case element_type::INT64:
      return std::to_string(value.get_int64().value_unsafe());
    case element_type::UINT64:
      return std::to_string(value.get_uint64().value_unsafe());
    default:
      return "";
  }
}

// Epoch milliseconds from a number or a numeric string; 0 when absent, malformed or out of
// range (a float like 1e20 must not reach an integer cast: that is undefined behaviour).
int64_t Millis(const object& parent, std::string_view key) {
  constexpr double kLimit = 9.2e18;  // just under INT64_MAX
  auto value = Field(parent, key);
  if (!value) return 0;
  switch (value->type()) {
    case element_type::INT64:
      return value->get_int64().value_unsafe();
    case element_type::UINT64: {
      const uint64_t big = value->get_uint64().value_unsafe();
      return big <= static_cast<uint64_t>(INT64_MAX) ? static_cast<int64_t>(big) : 0;
    }
    case element_type::DOUBLE: {
      const double d = value->get_double().value_unsafe();
      return std::isfinite(d) && std::fabs(d) < kLimit ? static_cast<int64_t>(d) : 0;
    }
    case element_type::STRING: {
      const std::string text(value->get_string().value_unsafe());
      char* end = nullptr;
      errno = 0;
      long long parsed = std::strtoll(text.c_str(), &end, 10);
      if (!text.empty() && *end == '\0' && errno == 0) return parsed;
      return 0;
    }
    default:
      return 0;
  }
}

std::string Str(const object& parent, std::string_view key) {
  auto value = Field(parent, key);
  return value ? IdString(*value) : "";
}

// A member that is the JSON `true` (absent, false or not a boolean: false).
bool Flag(const object& parent, std::string_view key) {
  auto value = Field(parent, key);
  bool flag = false;
  return value && value->get_bool().get(flag) == simdjson::SUCCESS && flag;
}

void ReadReferral(const object& node, InboundEvent& event) {
  auto* referral = event.mutable_referral();
  referral->set_ref(Str(node, "ref"));
  referral->set_source(Str(node, "source"));
  referral->set_type(Str(node, "type"));
  referral->set_ad_id(Str(node, "ad_id"));
}

void ReadMessage(const object& message, InboundEvent& event) {
  event.set_mid(Str(message, "mid"));
  event.set_text(Str(message, "text"));
  if (auto qr = ObjectField(message, "quick_reply")) event.set_quick_reply_payload(Str(*qr, "payload"));
  if (auto reply_to = ObjectField(message, "reply_to")) {
    event.set_reply_to_mid(Str(*reply_to, "mid"));
    if (auto story = ObjectField(*reply_to, "story")) {  // Instagram: a reply to a story
      event.set_reply_to_story_id(Str(*story, "id"));
      event.set_reply_to_story_url(Str(*story, "url"));
    }
  }
  simdjson::dom::array list;
  if (auto attachments = Field(message, "attachments");
      attachments && attachments->get_array().get(list) == simdjson::SUCCESS) {
    for (element entry : list) {
      object item;
      if (entry.get_object().get(item) != simdjson::SUCCESS) continue;
      auto* attachment = event.add_attachments();
      attachment->set_type(Str(item, "type"));
      attachment->set_title(Str(item, "title"));
      std::string url = Str(item, "URL");  // fallback attachments put the link here
      if (auto payload = ObjectField(item, "payload")) {
        if (std::string payload_url = Str(*payload, "url"); !payload_url.empty()) url = payload_url;
        // Instagram shares of a post carry its caption in the payload.
        if (attachment->title().empty()) attachment->set_title(Str(*payload, "title"));
      }
      attachment->set_url(url);
    }
  }
  if (auto referral = ObjectField(message, "referral")) ReadReferral(*referral, event);
  event.set_unsupported(Flag(message, "is_unsupported"));
  if (Flag(message, "is_deleted")) {
    event.set_kind(katy::v1::EVENT_KIND_MESSAGE_DELETE);
  } else if (Flag(message, "is_echo")) {
    event.set_kind(katy::v1::EVENT_KIND_ECHO);
    event.set_app_id(Str(message, "app_id"));
    event.set_metadata(Str(message, "metadata"));
  } else {
    event.set_kind(katy::v1::EVENT_KIND_MESSAGE);
  }
}

// pass/take_thread_control name the new owner and the previous one; request_thread_control the
// app asking. Any of them may carry metadata.
void ReadHandover(const object& handover, InboundEvent& event) {
  std::string owner = Str(handover, "new_owner_app_id");
  if (owner.empty()) owner = Str(handover, "requested_owner_app_id");
  event.set_app_id(owner);
  event.set_previous_app_id(Str(handover, "previous_owner_app_id"));
  event.set_metadata(Str(handover, "metadata"));
}

// Sets kind and kind-specific fields from the one key that names the event.
void ReadKind(const object& item, InboundEvent& event) {
  static const char* const kHandover[] = {"pass_thread_control", "take_thread_control", "request_thread_control",
                                          "app_roles"};
  if (auto it = ObjectField(item, "message")) {
    event.set_kind_key("message");
    ReadMessage(*it, event);
  } else if (auto it = ObjectField(item, "postback")) {
    event.set_kind_key("postback");
    event.set_kind(katy::v1::EVENT_KIND_POSTBACK);
    event.set_mid(Str(*it, "mid"));
    event.set_postback_title(Str(*it, "title"));
    event.set_postback_payload(Str(*it, "payload"));
    if (auto ref = ObjectField(*it, "referral")) ReadReferral(*ref, event);
  } else if (auto it = ObjectField(item, "delivery")) {
    event.set_kind_key("delivery");
    event.set_kind(katy::v1::EVENT_KIND_DELIVERY);
    event.set_watermark(Millis(*it, "watermark"));
  } else if (auto it = ObjectField(item, "read")) {
    event.set_kind_key("read");
    event.set_kind(katy::v1::EVENT_KIND_READ);
    event.set_watermark(Millis(*it, "watermark"));
    event.set_mid(Str(*it, "mid"));  // Instagram marks the message read, not a watermark
  } else if (auto it = ObjectField(item, "reaction")) {
    event.set_kind_key("reaction");
    event.set_kind(katy::v1::EVENT_KIND_REACTION);
    event.set_mid(Str(*it, "mid"));
    event.set_reaction(Str(*it, "reaction"));
    event.set_emoji(Str(*it, "emoji"));
    event.set_action(Str(*it, "action"));
  } else if (auto it = ObjectField(item, "message_edit")) {
    event.set_kind_key("message_edit");
    event.set_kind(katy::v1::EVENT_KIND_MESSAGE_EDIT);
    event.set_mid(Str(*it, "mid"));
    event.set_text(Str(*it, "text"));
    event.set_watermark(Millis(*it, "num_edit"));  // edit counter: distinguishes successive edits
  } else if (auto it = ObjectField(item, "optin")) {
    event.set_kind_key("optin");
    event.set_kind(katy::v1::EVENT_KIND_OPTIN);
    event.set_postback_payload(Str(*it, "payload"));
    event.mutable_referral()->set_ref(Str(*it, "ref"));  // the Send to Messenger plugin's data-ref
  } else if (auto it = ObjectField(item, "referral")) {
    event.set_kind_key("referral");
    event.set_kind(katy::v1::EVENT_KIND_REFERRAL);
    ReadReferral(*it, event);
  } else if (auto it = ObjectField(item, "account_linking")) {
    event.set_kind_key("account_linking");
    event.set_kind(katy::v1::EVENT_KIND_ACCOUNT_LINKING);
    event.set_action(Str(*it, "status"));
  } else if (auto it = ObjectField(item, "policy_enforcement")) {
    event.set_kind_key("policy_enforcement");
    event.set_kind(katy::v1::EVENT_KIND_POLICY_ENFORCEMENT);
    event.set_action(Str(*it, "action"));
    event.set_text(Str(*it, "reason"));
  } else {
    for (const char* key : kHandover) {
      if (auto handover = ObjectField(item, key)) {
        event.set_kind_key(key);
        event.set_kind(katy::v1::EVENT_KIND_HANDOVER);
        ReadHandover(*handover, event);
        return;
      }
      if (Field(item, key)) {  // app_roles and other shapes: kept raw
        event.set_kind_key(key);
        event.set_kind(katy::v1::EVENT_KIND_HANDOVER);
        return;
      }
    }
    event.set_kind(katy::v1::EVENT_KIND_UNKNOWN);
    for (auto field : item) {
      if (field.key != "sender" && field.key != "recipient" && field.key != "timestamp") {
        event.set_kind_key(std::string(field.key));
        break;
      }
    }
  }
}

// An event of an entry, before its item is read: what every item of the entry shares.
InboundEvent EntryEvent(const std::string& page_id, int64_t entry_time, int64_t received_at_ms) {
  InboundEvent event;
  event.set_page_id(page_id);
  event.set_entry_time_ms(entry_time);
  event.set_received_at_ms(received_at_ms);
  return event;
}

Error TooManyEvents(size_t max_events) {
  return Error{ErrorCode::kRejected, "more than " + std::to_string(max_events) + " events in one request",
               std::string(kTooManyEvents)};
}

std::optional<Error> ParseItem(const element& value, const std::string& page_id, int64_t entry_time, bool standby,
                               int64_t received_at_ms, std::vector<InboundEvent>& out) {
  object item;
  if (value.get_object().get(item) != simdjson::SUCCESS) {
    return Error{ErrorCode::kRejected, "a messaging item is not an object", "bad_shape"};
  }
  InboundEvent event = EntryEvent(page_id, entry_time, received_at_ms);
  event.set_standby(standby);
  event.set_timestamp_ms(Millis(item, "timestamp"));
  ReadKind(item, event);

  // The conversation's user is the sender, except in echoes where the page is the sender.
  const char* user_side = event.kind() == katy::v1::EVENT_KIND_ECHO ? "recipient" : "sender";
  if (auto party = ObjectField(item, user_side)) {
    if (std::string id = Str(*party, "id"); !id.empty()) {
      event.set_user_id(id);
    } else if (std::string ref = Str(*party, "user_ref"); !ref.empty()) {
      event.set_user_id(ref);
      event.set_user_is_ref(true);
    }
  }
  event.set_raw_json(simdjson::minify(value));
  event.set_dedupe_key(DedupeKey(event));
  out.push_back(std::move(event));
  return std::nullopt;
}

// The item of a Page `feed` change that is a comment or a visitor's post; any other item (a
// reaction, a like, a share...) is a feed change Katy keeps but never answers.
void ReadFeedChange(const object& value, InboundEvent& event) {
  const std::string item = Str(value, "item");
  event.set_kind(item == "comment" || item == "post" ? katy::v1::EVENT_KIND_COMMENT : katy::v1::EVENT_KIND_FEED);
  event.set_verb(Str(value, "verb"));
  event.set_post_id(Str(value, "post_id"));
  if (item == "comment") event.set_comment_id(Str(value, "comment_id"));
  event.set_parent_id(Str(value, "parent_id"));
  event.set_text(Str(value, "message"));
  event.set_reaction(Str(value, "reaction_type"));
  // created_time is epoch seconds (Meta's reference); a redelivery repeats it.
  if (const int64_t created_s = Millis(value, "created_time"); created_s > 0 && created_s < INT64_MAX / 1000) {
    event.set_timestamp_ms(created_s * 1000);
  }
  if (auto from = ObjectField(value, "from")) {
    event.set_user_id(Str(*from, "id"));
    event.set_user_name(Str(*from, "name"));
  }
}

// An Instagram `comments` or `live_comments` change: always a new comment (Meta sends no verb
// and no creation time).
void ReadInstagramComment(const object& value, InboundEvent& event) {
  event.set_kind(katy::v1::EVENT_KIND_COMMENT);
  event.set_verb("add");
  event.set_comment_id(Str(value, "id"));
  event.set_parent_id(Str(value, "parent_id"));
  event.set_text(Str(value, "text"));
  if (auto media = ObjectField(value, "media")) event.set_post_id(Str(*media, "id"));
  if (auto from = ObjectField(value, "from")) {
    event.set_user_id(Str(*from, "id"));
    event.set_user_name(Str(*from, "username"));
  }
}

// One item of entry[].changes[]: {"field": ..., "value": {...}}. Fields Katy does not read are
// kept raw as UNKNOWN, named by their field.
std::optional<Error> ParseChange(const element& change_value, const std::string& page_id, int64_t entry_time,
                                 bool instagram, int64_t received_at_ms, std::vector<InboundEvent>& out) {
  object change;
  if (change_value.get_object().get(change) != simdjson::SUCCESS) {
    return Error{ErrorCode::kRejected, "a changes item is not an object", "bad_shape"};
  }
  InboundEvent event = EntryEvent(page_id, entry_time, received_at_ms);
  event.set_kind_key(Str(change, "field"));
  const auto value = ObjectField(change, "value");
  const std::string& field = event.kind_key();
  if (value && field == "feed" && !instagram) {
    ReadFeedChange(*value, event);
  } else if (value && (field == "comments" || field == "live_comments") && instagram) {
    ReadInstagramComment(*value, event);
  } else {
    event.set_kind(katy::v1::EVENT_KIND_UNKNOWN);
  }
  event.set_by_page(!event.user_id().empty() && event.user_id() == page_id);
  if (event.kind() == katy::v1::EVENT_KIND_COMMENT && event.comment_id().empty()) event.set_mid(event.post_id());
  if (!event.comment_id().empty()) event.set_mid(event.comment_id());
  event.set_raw_json(simdjson::minify(change_value));
  event.set_dedupe_key(DedupeKey(event));
  out.push_back(std::move(event));
  return std::nullopt;
}

}  // namespace

int JsonDepth(std::string_view json_text) {
  int depth = 0;
  int deepest = 0;
  bool in_string = false;
  for (size_t i = 0; i < json_text.size(); ++i) {
    char c = json_text[i];
    if (in_string) {
      if (c == '\\')
        ++i;
      else if (c == '"')
        in_string = false;
      continue;
    }
    if (c == '"')
      in_string = true;
    else if (c == '{' || c == '[')
      deepest = std::max(deepest, ++depth);
    else if (c == '}' || c == ']')
      --depth;
  }
  return deepest;
}

std::string DedupeKey(const InboundEvent& event) {
  const std::string& user = event.user_id();
  switch (event.kind()) {
    case katy::v1::EVENT_KIND_MESSAGE:
      if (!event.mid().empty()) return "msg:" + event.mid();
      break;
    case katy::v1::EVENT_KIND_ECHO:
      if (!event.mid().empty()) return "echo:" + event.mid();
      break;
    case katy::v1::EVENT_KIND_POSTBACK:
      if (!event.mid().empty()) return "pb:" + event.mid();
      break;
    case katy::v1::EVENT_KIND_MESSAGE_DELETE:  // the deleted message's mid: "msg:" would drop it
      if (!event.mid().empty()) return "del:" + event.mid();
      break;
    case katy::v1::EVENT_KIND_MESSAGE_EDIT:
      return "edit:" + event.mid() + ":" + std::to_string(event.watermark());
    case katy::v1::EVENT_KIND_DELIVERY:
      return "dlv:" + user + ":" + std::to_string(event.watermark());
    case katy::v1::EVENT_KIND_READ:
      if (event.watermark() == 0 && !event.mid().empty()) return "read:" + user + ":" + event.mid();
      return "read:" + user + ":" + std::to_string(event.watermark());
    case katy::v1::EVENT_KIND_REACTION:
      return "rx:" + event.mid() + ":" + event.action() + ":" + event.emoji();
    case katy::v1::EVENT_KIND_COMMENT:
      // An edit changes the text, not the id or the verb: each distinct text is its own edit.
      if (event.mid().empty()) break;
      if (event.verb() == "edited") return "cmt:" + event.mid() + ":edited:" + Sha256Hex(event.text()).substr(0, 16);
      return "cmt:" + event.mid() + ":" + event.verb();
    default:
      break;
  }
  // No id of its own (or an old postback without mid): the item itself identifies it; a
  // redelivery repeats the item byte for byte (only entry.time changes). SHA-256, not a 64-bit
  // hash: two different events sharing a mark would drop the second as a duplicate, and anyone
  // who can send Katy events could search for a 64-bit collision.
  return std::string(event.standby() ? "sb-sha:" : "sha:") + Sha256Hex(event.raw_json());
}

namespace {

// entry.changes[], after the entry's messaging and standby items.
std::optional<Error> ParseChanges(const object& entry, const std::string& page_id, int64_t entry_time, bool instagram,
                                  int64_t received_at_ms, size_t max_events, std::vector<InboundEvent>& events) {
  auto list = Field(entry, "changes");
  if (!list) return std::nullopt;
  simdjson::dom::array changes;
  if (list->get_array().get(changes) != simdjson::SUCCESS) {
    return Error{ErrorCode::kRejected, "\"changes\" must be an array", "bad_shape"};
  }
  for (element change : changes) {
    if (events.size() == max_events) return TooManyEvents(max_events);
    if (auto error = ParseChange(change, page_id, entry_time, instagram, received_at_ms, events)) return error;
    if (instagram) events.back().set_platform("instagram");
  }
  return std::nullopt;
}

}  // namespace

Result<std::vector<InboundEvent>> ParseWebhook(std::string_view body, int64_t received_at_ms, size_t max_events) {
  if (JsonDepth(body) > kMaxJsonDepth) {
    return Error{ErrorCode::kRejected, "JSON nests deeper than " + std::to_string(kMaxJsonDepth) + " levels",
                 "too_deep"};
  }
  // One parser per thread: its buffers are reused from one webhook to the next.
  thread_local simdjson::dom::parser parser;
  element root;
  if (parser.parse(body.data(), body.size()).get(root) != simdjson::SUCCESS) {
    return Error{ErrorCode::kRejected, "body is not valid UTF-8 JSON", "invalid_json"};
  }
  object top;
  if (root.get_object().get(top) != simdjson::SUCCESS)
    return Error{ErrorCode::kRejected, "body is not a JSON object", "not_an_object"};
  std::string_view object_name;
  if (auto name = Field(top, "object"); !name || name->get_string().get(object_name) != simdjson::SUCCESS ||
                                        (object_name != "page" && object_name != "instagram")) {
    return Error{ErrorCode::kRejected, R"(field "object" must be "page" or "instagram")", "wrong_object"};
  }
  // Instagram Direct comes through the same webhook shape, keyed by the professional account.
  const bool instagram = object_name == "instagram";
  simdjson::dom::array entries;
  if (auto list = Field(top, "entry"); !list || list->get_array().get(entries) != simdjson::SUCCESS) {
    return Error{ErrorCode::kRejected, "field \"entry\" must be an array", "bad_shape"};
  }
  std::vector<InboundEvent> events;
  for (element entry_value : entries) {
    object entry;
    if (entry_value.get_object().get(entry) != simdjson::SUCCESS)
      return Error{ErrorCode::kRejected, "an entry is not an object", "bad_shape"};
    auto id = Field(entry, "id");
    std::string page_id = id ? IdString(*id) : "";
    if (page_id.empty()) return Error{ErrorCode::kRejected, "an entry has no page id", "bad_shape"};
    int64_t entry_time = Millis(entry, "time");
    for (const auto& [key, standby] : {std::pair{"messaging", false}, std::pair{"standby", true}}) {
      auto list = Field(entry, key);
      if (!list) continue;
      simdjson::dom::array items;
      if (list->get_array().get(items) != simdjson::SUCCESS) {
        return Error{ErrorCode::kRejected, std::string("\"") + key + "\" must be an array", "bad_shape"};
      }
      for (element item : items) {
        if (events.size() == max_events) return TooManyEvents(max_events);
        if (auto error = ParseItem(item, page_id, entry_time, standby, received_at_ms, events)) {
          return *error;
        }
        if (instagram) events.back().set_platform("instagram");
      }
    }
    if (auto error = ParseChanges(entry, page_id, entry_time, instagram, received_at_ms, max_events, events)) {
      return *error;
    }
  }
  return events;
}

}  // namespace katy::ingress
