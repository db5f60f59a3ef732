#include "common/page_setup.h"

#include <algorithm>
#include <limits>

#include "common/utf8.h"

namespace katy {
namespace {

using nlohmann::json;

// Meta's limits, each with its source in docs/messenger-platform.md ("Page setup").
constexpr size_t kMaxPayload = 1000;
constexpr size_t kMaxGreeting = 160;
constexpr size_t kMaxMenuItems = 20;
constexpr size_t kMaxButtonTitle = 20;
constexpr size_t kMaxIceBreakers = 4;
constexpr size_t kMaxDomains = 50;
constexpr size_t kAnyLength = std::numeric_limits<size_t>::max();  // not empty, no limit of Meta's known

bool IsText(const json& value, size_t max_chars) {
  return value.is_string() && !value.get<std::string>().empty() && CodePoints(value.get<std::string>()) <= max_chars;
}

std::optional<std::string> GetStartedError(const json& value) {
  if (!value.is_object() || !value.contains("payload")) return "get_started: needs a payload";
  if (!IsText(value["payload"], kMaxPayload)) return "get_started.payload: 1 to 1000 characters";
  return std::nullopt;
}

std::optional<std::string> GreetingError(const json& value) {
  if (!value.is_array() || value.empty()) return "greeting: a list of {locale, text}";
  for (size_t i = 0; i < value.size(); ++i) {
    const std::string at = "greeting[" + std::to_string(i) + "]";
    if (!value[i].is_object() || !IsText(value[i].value("locale", json()), kAnyLength)) return at + ": needs a locale";
    if (!IsText(value[i].value("text", json()), kMaxGreeting)) return at + ".text: 1 to 160 characters";
  }
  return std::nullopt;
}

std::optional<std::string> MenuItemError(const json& item, const std::string& at) {
  if (!item.is_object()) return at + ": a button object";
  const std::string type = item.value("type", "");
  if (type == "nested") return at + ": nested menus were removed in Graph API v8.0; at most 20 flat items instead";
  if (type != "postback" && type != "web_url") return at + ".type: postback or web_url";
  if (!IsText(item.value("title", json()), kMaxButtonTitle)) return at + ".title: 1 to 20 characters";
  if (type == "postback" && !IsText(item.value("payload", json()), kMaxPayload)) {
    return at + ".payload: 1 to 1000 characters";
  }
  if (type == "web_url" && !IsText(item.value("url", json()), kAnyLength)) return at + ".url: needed for web_url";
  return std::nullopt;
}

std::optional<std::string> PersistentMenuError(const json& value) {
  if (!value.is_array() || value.empty()) return "persistent_menu: a list of menus, one per locale";
  bool has_default = false;
  for (size_t i = 0; i < value.size(); ++i) {
    const std::string at = "persistent_menu[" + std::to_string(i) + "]";
    const json& menu = value[i];
    if (!menu.is_object() || !IsText(menu.value("locale", json()), kAnyLength)) return at + ": needs a locale";
    has_default = has_default || menu["locale"] == "default";
    const json items = menu.value("call_to_actions", json::array());
    if (!items.is_array()) return at + ".call_to_actions: a list of buttons";
    if (items.size() > kMaxMenuItems) return at + ".call_to_actions: at most 20 items";
    for (size_t k = 0; k < items.size(); ++k) {
      if (auto error = MenuItemError(items[k], at + ".call_to_actions[" + std::to_string(k) + "]")) return error;
    }
  }
  if (!has_default) return "persistent_menu: one menu must have the locale \"default\"";
  return std::nullopt;
}

// Two formats: [{question, payload}, ...], or localized [{locale, call_to_actions: [...]}, ...].
std::optional<std::string> IceBreakersError(const json& value) {
  if (!value.is_array()) return "ice_breakers: a list";
  auto questions_error = [](const json& list, const std::string& at) -> std::optional<std::string> {
    if (list.size() > kMaxIceBreakers) return at + ": at most 4 questions";
    for (size_t i = 0; i < list.size(); ++i) {
      const std::string item = at + "[" + std::to_string(i) + "]";
      if (!list[i].is_object() || !IsText(list[i].value("question", json()), kAnyLength)) {
        return item + ".question: needed";
      }
      if (!IsText(list[i].value("payload", json()), kMaxPayload)) return item + ".payload: 1 to 1000 characters";
    }
    return std::nullopt;
  };
  const bool localized = !value.empty() && value[0].is_object() && value[0].contains("call_to_actions");
  if (!localized) return questions_error(value, "ice_breakers");
  for (size_t i = 0; i < value.size(); ++i) {
    const std::string at = "ice_breakers[" + std::to_string(i) + "]";
    if (!value[i].is_object() || !value[i].contains("call_to_actions") || !value[i]["call_to_actions"].is_array()) {
      return at + ": {locale, call_to_actions} (one format per request)";
    }
    if (auto error = questions_error(value[i]["call_to_actions"], at + ".call_to_actions")) return error;
  }
  return std::nullopt;
}

std::optional<std::string> DomainsError(const json& value) {
  if (!value.is_array() || value.size() > kMaxDomains) return "whitelisted_domains: a list of at most 50";
  for (size_t i = 0; i < value.size(); ++i) {
    if (!value[i].is_string() || value[i].get<std::string>().rfind("https://", 0) != 0) {
      return "whitelisted_domains[" + std::to_string(i) + "]: an https:// URL";
    }
  }
  return std::nullopt;
}

}  // namespace

bool IsInstagramWebhookField(std::string_view field) {
  for (std::string_view known : kInstagramWebhookFields) {
    if (known == field) return true;
  }
  return false;
}

std::vector<std::string> WantedWebhookFields(bool instagram, bool comments) {
  std::vector<std::string> wanted;
  if (instagram) {
    wanted.assign(std::begin(kInstagramHandledFields), std::end(kInstagramHandledFields));
    if (comments) wanted.insert(wanted.end(), std::begin(kInstagramCommentFields), std::end(kInstagramCommentFields));
  } else {
    wanted.assign(std::begin(kHandledWebhookFields), std::end(kHandledWebhookFields));
    if (comments) wanted.emplace_back(kCommentWebhookField);
  }
  return wanted;
}

std::optional<std::string> InstagramProfileError(const nlohmann::json& profile) {
  if (!profile.is_object()) return "the profile must be an object";
  nlohmann::json fields = profile;
  fields.erase("platform");  // the body may name the platform, as Meta's examples do
  for (const auto& [field, value] : fields.items()) {
    if (std::find(std::begin(kInstagramProfileFields), std::end(kInstagramProfileFields), field) ==
        std::end(kInstagramProfileFields)) {
      return field + ": an Instagram account's profile has only ice_breakers and persistent_menu";
    }
  }
  return MessengerProfileError(fields);
}

bool IsMessengerWebhookField(std::string_view field) {
  for (std::string_view known : kMessengerWebhookFields) {
    if (known == field) return true;
  }
  return false;
}

std::optional<std::string> MessengerProfileError(const json& profile) {
  if (!profile.is_object() || profile.empty()) return "the Messenger Profile needs at least one field";
  for (const auto& [field, value] : profile.items()) {
    std::optional<std::string> error;
    if (field == "get_started") {
      error = GetStartedError(value);
    } else if (field == "greeting") {
      error = GreetingError(value);
    } else if (field == "persistent_menu") {
      error = PersistentMenuError(value);
    } else if (field == "ice_breakers") {
      error = IceBreakersError(value);
    } else if (field == "whitelisted_domains") {
      error = DomainsError(value);
    } else {
      error = "unknown Messenger Profile field '" + field + "'";
    }
    if (error) return error;
  }
  return std::nullopt;
}

}  // namespace katy
