#include "services/ingress/webhook_parser.h"

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "common/shard.h"

namespace katy::ingress {
namespace {

using nlohmann::json;
using katy::v1::EventKind;
using katy::v1::InboundEvent;

// Meta documents ids and timestamps as numbers but some pages show them as strings.
std::string IdString(const json& value) {
  if (value.is_string()) return value.get<std::string>();
  if (value.is_number_unsigned()) return std::to_string(value.get<uint64_t>());
  if (value.is_number_integer()) return std::to_string(value.get<int64_t>());
  return "";
}

// Epoch milliseconds from a number or a numeric string; 0 when absent, malformed or out of
// range (a float like 1e20 must not reach an integer cast: that is undefined behaviour).
int64_t Millis(const json& parent, const char* key) {
  constexpr double kLimit = 9.2e18;  // just under INT64_MAX
  auto it = parent.find(key);
  if (it == parent.end()) return 0;
  if (it->is_number_unsigned()) {
    uint64_t value = it->get<uint64_t>();
    return value <= static_cast<uint64_t>(INT64_MAX) ? static_cast<int64_t>(value) : 0;
  }
  if (it->is_number_integer()) return it->get<int64_t>();
  if (it->is_number_float()) {
    double value = it->get<double>();
    return std::isfinite(value) && std::fabs(value) < kLimit ? static_cast<int64_t>(value) : 0;
  }
  if (it->is_string()) {
    const std::string& text = it->get_ref<const std::string&>();
    char* end = nullptr;
    errno = 0;
    long long value = std::strtoll(text.c_str(), &end, 10);
    if (!text.empty() && *end == '\0' && errno == 0) return value;
  }
  return 0;
}

std::string Str(const json& parent, const char* key) {
  auto it = parent.find(key);
  if (it == parent.end()) return "";
  if (it->is_string()) return it->get<std::string>();
  if (it->is_number()) return IdString(*it);
  return "";
}

void ReadReferral(const json& node, InboundEvent& event) {
  auto* referral = event.mutable_referral();
  referral->set_ref(Str(node, "ref"));
  referral->set_source(Str(node, "source"));
  referral->set_type(Str(node, "type"));
  referral->set_ad_id(Str(node, "ad_id"));
}

void ReadMessage(const json& message, InboundEvent& event) {
  event.set_mid(Str(message, "mid"));
  event.set_text(Str(message, "text"));
  if (auto qr = message.find("quick_reply"); qr != message.end() && qr->is_object()) {
    event.set_quick_reply_payload(Str(*qr, "payload"));
  }
  if (auto reply_to = message.find("reply_to"); reply_to != message.end() && reply_to->is_object()) {
    event.set_reply_to_mid(Str(*reply_to, "mid"));
  }
  if (auto list = message.find("attachments"); list != message.end() && list->is_array()) {
    for (const auto& item : *list) {
      if (!item.is_object()) continue;
      auto* attachment = event.add_attachments();
      attachment->set_type(Str(item, "type"));
      attachment->set_title(Str(item, "title"));
      std::string url = Str(item, "URL");  // fallback attachments put the link here
      if (auto payload = item.find("payload"); payload != item.end() && payload->is_object()) {
        if (std::string payload_url = Str(*payload, "url"); !payload_url.empty()) url = payload_url;
      }
      attachment->set_url(url);
    }
  }
  if (auto referral = message.find("referral"); referral != message.end() && referral->is_object()) {
    ReadReferral(*referral, event);
  }
  if (message.value("is_echo", false)) {
    event.set_kind(katy::v1::EVENT_KIND_ECHO);
    event.set_app_id(Str(message, "app_id"));
    event.set_metadata(Str(message, "metadata"));
  } else {
    event.set_kind(katy::v1::EVENT_KIND_MESSAGE);
  }
}

// Sets kind and kind-specific fields from the one key that names the event.
void ReadKind(const json& item, InboundEvent& event) {
  static const char* const kHandover[] = {"pass_thread_control", "take_thread_control",
                                          "request_thread_control", "app_roles"};
  if (auto it = item.find("message"); it != item.end() && it->is_object()) {
    event.set_kind_key("message");
    ReadMessage(*it, event);
  } else if (auto it = item.find("postback"); it != item.end() && it->is_object()) {
    event.set_kind_key("postback");
    event.set_kind(katy::v1::EVENT_KIND_POSTBACK);
    event.set_mid(Str(*it, "mid"));
    event.set_postback_title(Str(*it, "title"));
    event.set_postback_payload(Str(*it, "payload"));
    if (auto ref = it->find("referral"); ref != it->end() && ref->is_object()) ReadReferral(*ref, event);
  } else if (auto it = item.find("delivery"); it != item.end() && it->is_object()) {
    event.set_kind_key("delivery");
    event.set_kind(katy::v1::EVENT_KIND_DELIVERY);
    event.set_watermark(Millis(*it, "watermark"));
  } else if (auto it = item.find("read"); it != item.end() && it->is_object()) {
    event.set_kind_key("read");
    event.set_kind(katy::v1::EVENT_KIND_READ);
    event.set_watermark(Millis(*it, "watermark"));
  } else if (auto it = item.find("reaction"); it != item.end() && it->is_object()) {
    event.set_kind_key("reaction");
    event.set_kind(katy::v1::EVENT_KIND_REACTION);
    event.set_mid(Str(*it, "mid"));
    event.set_reaction(Str(*it, "reaction"));
    event.set_emoji(Str(*it, "emoji"));
    event.set_action(Str(*it, "action"));
  } else if (auto it = item.find("message_edit"); it != item.end() && it->is_object()) {
    event.set_kind_key("message_edit");
    event.set_kind(katy::v1::EVENT_KIND_MESSAGE_EDIT);
    event.set_mid(Str(*it, "mid"));
    event.set_text(Str(*it, "text"));
    event.set_watermark(Millis(*it, "num_edit"));  // edit counter: distinguishes successive edits
  } else if (auto it = item.find("optin"); it != item.end() && it->is_object()) {
    event.set_kind_key("optin");
    event.set_kind(katy::v1::EVENT_KIND_OPTIN);
    event.set_postback_payload(Str(*it, "payload"));
  } else if (auto it = item.find("referral"); it != item.end() && it->is_object()) {
    event.set_kind_key("referral");
    event.set_kind(katy::v1::EVENT_KIND_REFERRAL);
    ReadReferral(*it, event);
  } else if (auto it = item.find("account_linking"); it != item.end() && it->is_object()) {
    event.set_kind_key("account_linking");
    event.set_kind(katy::v1::EVENT_KIND_ACCOUNT_LINKING);
    event.set_action(Str(*it, "status"));
  } else if (auto it = item.find("policy_enforcement"); it != item.end() && it->is_object()) {
    event.set_kind_key("policy_enforcement");
    event.set_kind(katy::v1::EVENT_KIND_POLICY_ENFORCEMENT);
    event.set_action(Str(*it, "action"));
    event.set_text(Str(*it, "reason"));
  } else {
    for (const char* key : kHandover) {
      if (item.contains(key)) {
        event.set_kind_key(key);
        event.set_kind(katy::v1::EVENT_KIND_HANDOVER);
        return;
      }
    }
    event.set_kind(katy::v1::EVENT_KIND_UNKNOWN);
    for (const auto& [key, value] : item.items()) {
      if (key != "sender" && key != "recipient" && key != "timestamp") {
        event.set_kind_key(key);
        break;
      }
    }
  }
}

std::optional<Error> ParseItem(const json& item, const std::string& page_id, int64_t entry_time,
                               bool standby, int64_t received_at_ms, std::vector<InboundEvent>& out) {
  if (!item.is_object()) return Error{"bad_shape", "a messaging item is not an object"};
  InboundEvent event;
  event.set_page_id(page_id);
  event.set_standby(standby);
  event.set_entry_time_ms(entry_time);
  event.set_received_at_ms(received_at_ms);
  event.set_timestamp_ms(Millis(item, "timestamp"));
  ReadKind(item, event);

  // The conversation's user is the sender, except in echoes where the page is the sender.
  const char* user_side = event.kind() == katy::v1::EVENT_KIND_ECHO ? "recipient" : "sender";
  if (auto party = item.find(user_side); party != item.end() && party->is_object()) {
    if (std::string id = Str(*party, "id"); !id.empty()) {
      event.set_user_id(id);
    } else if (std::string ref = Str(*party, "user_ref"); !ref.empty()) {
      event.set_user_id(ref);
      event.set_user_is_ref(true);
    }
  }
  event.set_raw_json(item.dump());
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
      if (c == '\\') ++i;
      else if (c == '"') in_string = false;
      continue;
    }
    if (c == '"') in_string = true;
    else if (c == '{' || c == '[') deepest = std::max(deepest, ++depth);
    else if (c == '}' || c == ']') --depth;
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
    case katy::v1::EVENT_KIND_MESSAGE_EDIT:
      return "edit:" + event.mid() + ":" + std::to_string(event.watermark());
    case katy::v1::EVENT_KIND_DELIVERY:
      return "dlv:" + user + ":" + std::to_string(event.watermark());
    case katy::v1::EVENT_KIND_READ:
      return "read:" + user + ":" + std::to_string(event.watermark());
    case katy::v1::EVENT_KIND_REACTION:
      return "rx:" + event.mid() + ":" + event.action() + ":" + event.emoji();
    default:
      break;
  }
  // No id of its own (or an old postback without mid): the item itself identifies it; a
  // redelivery repeats the item byte for byte (only entry.time changes).
  char hash[24];
  std::snprintf(hash, sizeof hash, "%016llx",
                static_cast<unsigned long long>(Fnv1a64(event.raw_json())));
  return std::string(event.standby() ? "sb-raw:" : "raw:") + hash;
}

Result<std::vector<InboundEvent>> ParseWebhook(std::string_view body, int64_t received_at_ms) {
  if (JsonDepth(body) > kMaxJsonDepth) {
    return Error{"too_deep", "JSON nests deeper than " + std::to_string(kMaxJsonDepth) + " levels"};
  }
  json root = json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (root.is_discarded()) return Error{"invalid_json", "body is not valid UTF-8 JSON"};
  if (!root.is_object()) return Error{"not_an_object", "body is not a JSON object"};
  auto object = root.find("object");
  if (object == root.end() || !object->is_string() || *object != "page") {
    return Error{"wrong_object", "field \"object\" must be \"page\""};
  }
  auto entries = root.find("entry");
  if (entries == root.end() || !entries->is_array()) {
    return Error{"bad_shape", "field \"entry\" must be an array"};
  }
  std::vector<InboundEvent> events;
  for (const auto& entry : *entries) {
    if (!entry.is_object()) return Error{"bad_shape", "an entry is not an object"};
    std::string page_id = entry.contains("id") ? IdString(entry["id"]) : "";
    if (page_id.empty()) return Error{"bad_shape", "an entry has no page id"};
    int64_t entry_time = Millis(entry, "time");
    for (const auto& [key, standby] : {std::pair{"messaging", false}, std::pair{"standby", true}}) {
      auto list = entry.find(key);
      if (list == entry.end()) continue;
      if (!list->is_array()) return Error{"bad_shape", std::string("\"") + key + "\" must be an array"};
      for (const auto& item : *list) {
        if (auto error = ParseItem(item, page_id, entry_time, standby, received_at_ms, events)) {
          return *error;
        }
      }
    }
  }
  return events;
}

}  // namespace katy::ingress
