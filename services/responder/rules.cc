#include "services/responder/rules.h"

#include <re2/re2.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "common/events.h"
#include "common/instagram_limits.h"
#include "common/json_text.h"
#include "common/utf8.h"
#include "services/responder/text_normalize.h"

namespace katy::responder {
namespace {

constexpr size_t kMaxQuickReplies = 13;
constexpr size_t kMaxQuickReplyTitle = 20;
constexpr size_t kMaxPayload = 1000;
constexpr size_t kMaxText = 2000;
constexpr size_t kMaxButtons = 3;
constexpr size_t kMaxButtonTitle = 20;
constexpr size_t kMaxButtonText = 640;
constexpr size_t kMaxCards = 10;
constexpr size_t kMaxCardTitle = 80;

// Thrown only inside ParseRules and turned into an Error there.
struct RulesError {
  int line;
  std::string message;
};

int LineOf(const YAML::Node& node) { return node.Mark().line + 1; }

std::string Scalar(const YAML::Node& node, const std::string& what) {
  if (!node.IsScalar()) throw RulesError{LineOf(node), what + " must be a string"};
  return node.as<std::string>();
}

std::vector<std::string> StringList(const YAML::Node& node, const std::string& what) {
  std::vector<std::string> out;
  if (node.IsScalar()) {
    out.push_back(node.as<std::string>());
  } else if (node.IsSequence()) {
    for (const auto& item : node) out.push_back(Scalar(item, what));
  } else {
    throw RulesError{LineOf(node), what + " must be a string or a list of strings"};
  }
  return out;
}

void CheckText(const YAML::Node& node, const std::string& text) {
  if (CodePoints(text) >= kMaxText) {
    throw RulesError{LineOf(node), "reply text must be under 2000 characters (Meta's limit)"};
  }
}

MessageTemplate::Button ParseButton(const YAML::Node& node) {
  if (!node.IsMap() || !node["title"] || (!node["url"] == !node["payload"])) {
    throw RulesError{LineOf(node), "a button is {title, url} or {title, payload}"};
  }
  MessageTemplate::Button button;
  button.title = Scalar(node["title"], "title");
  if (button.title.empty() || CodePoints(button.title) > kMaxButtonTitle) {
    throw RulesError{LineOf(node), "button title '" + button.title + "' must have 1 to 20 characters (Meta's limit)"};
  }
  if (node["url"]) button.url = Scalar(node["url"], "url");
  if (node["payload"]) button.payload = Scalar(node["payload"], "payload");
  if (button.payload.size() > kMaxPayload) throw RulesError{LineOf(node), "button payload over 1000 characters"};
  return button;
}

std::vector<MessageTemplate::Button> ParseButtons(const YAML::Node& node) {
  if (!node.IsSequence() || node.size() == 0 || node.size() > kMaxButtons) {
    throw RulesError{LineOf(node), "buttons must be a list of 1 to 3 buttons (Meta's limit)"};
  }
  std::vector<MessageTemplate::Button> buttons;
  for (const auto& item : node) buttons.push_back(ParseButton(item));
  return buttons;
}

std::vector<MessageTemplate::Card> ParseCards(const YAML::Node& node) {
  if (!node.IsSequence() || node.size() == 0 || node.size() > kMaxCards) {
    throw RulesError{LineOf(node), "cards must be a list of 1 to 10 cards (Meta's limit)"};
  }
  std::vector<MessageTemplate::Card> cards;
  for (const auto& item : node) {
    if (!item.IsMap() || !item["title"]) throw RulesError{LineOf(item), "a card needs a title"};
    for (const auto& field : item) {
      auto key = field.first.as<std::string>();
      if (key != "title" && key != "subtitle" && key != "image_url" && key != "buttons") {
        throw RulesError{LineOf(field.first), "unknown card field '" + key + "'"};
      }
    }
    MessageTemplate::Card card;
    card.title = Scalar(item["title"], "title");
    if (card.title.empty() || CodePoints(card.title) > kMaxCardTitle) {
      throw RulesError{LineOf(item), "card title must have 1 to 80 characters (Meta's limit)"};
    }
    if (item["subtitle"]) card.subtitle = Scalar(item["subtitle"], "subtitle");
    if (item["image_url"]) card.image_url = Scalar(item["image_url"], "image_url");
    if (item["buttons"]) card.buttons = ParseButtons(item["buttons"]);
    cards.push_back(std::move(card));
  }
  return cards;
}

bool IsMediaKey(const std::string& key) { return key == "image" || key == "audio" || key == "video" || key == "file"; }

// `image: URL` (or audio, video, file), with `reusable: false` to upload it with every send.
std::optional<MessageTemplate::Media> ParseMedia(const YAML::Node& node) {
  std::optional<MessageTemplate::Media> media;
  for (const auto& field : node) {
    auto key = field.first.as<std::string>();
    if (!IsMediaKey(key)) continue;
    if (media) throw RulesError{LineOf(field.first), "a reply has one media attachment"};
    std::string url = Scalar(field.second, key);
    if (url.rfind("https://", 0) != 0 && url.rfind("http://", 0) != 0 && url.rfind("{{", 0) != 0) {
      throw RulesError{LineOf(field.second), key + " must be an http(s) URL Meta can fetch"};
    }
    media = MessageTemplate::Media{key, std::move(url), true};
  }
  if (const auto& reusable = node["reusable"]) {
    if (!media) throw RulesError{LineOf(reusable), "reusable goes with image, audio, video or file"};
    media->reusable = reusable.as<bool>();
  }
  return media;
}

MessageTemplate ParseMessage(const YAML::Node& node) {
  MessageTemplate message;
  if (node.IsScalar()) {
    message.variants.push_back(node.as<std::string>());
    CheckText(node, message.variants.back());
    return message;
  }
  if (!node.IsMap()) throw RulesError{LineOf(node), "a reply must be text or a map with text"};
  for (const auto& field : node) {
    auto key = field.first.as<std::string>();
    if (key != "text" && key != "variants" && key != "quick_replies" && key != "buttons" && key != "cards" &&
        !IsMediaKey(key) && key != "reusable") {
      throw RulesError{LineOf(field.first), "unknown reply field '" + key + "'"};
    }
  }
  message.media = ParseMedia(node);
  if (node["text"]) message.variants.push_back(Scalar(node["text"], "text"));
  if (node["variants"]) {
    for (auto& variant : StringList(node["variants"], "variants")) message.variants.push_back(variant);
  }
  if (message.media) {
    if (!message.variants.empty() || node["cards"] || node["buttons"]) {
      throw RulesError{LineOf(node), "a reply has either media or text, cards and buttons"};
    }
  } else if (node["cards"]) {
    if (!message.variants.empty()) throw RulesError{LineOf(node["cards"]), "a reply has either text or cards"};
    message.cards = ParseCards(node["cards"]);
  } else if (message.variants.empty()) {
    throw RulesError{LineOf(node), "a reply needs text, variants, cards or media (image, audio, video, file)"};
  }
  for (const auto& text : message.variants) CheckText(node, text);
  if (node["buttons"]) {
    if (message.variants.empty()) throw RulesError{LineOf(node["buttons"]), "buttons need a text"};
    for (const auto& text : message.variants) {
      if (CodePoints(text) > kMaxButtonText) {
        throw RulesError{LineOf(node), "text with buttons must be at most 640 characters (Meta's limit)"};
      }
    }
    message.buttons = ParseButtons(node["buttons"]);
  }
  if (const auto& list = node["quick_replies"]) {
    if (!list.IsSequence()) throw RulesError{LineOf(list), "quick_replies must be a list"};
    if (list.size() > kMaxQuickReplies) {
      throw RulesError{LineOf(list), "at most 13 quick replies (Meta's limit), got " + std::to_string(list.size())};
    }
    for (const auto& item : list) {
      MessageTemplate::QuickReply reply;
      if (item.IsScalar()) {
        reply.title = item.as<std::string>();
        reply.payload = reply.title;
      } else if (item.IsMap() && item["title"]) {
        reply.title = Scalar(item["title"], "title");
        reply.payload = item["payload"] ? Scalar(item["payload"], "payload") : reply.title;
      } else {
        throw RulesError{LineOf(item), "a quick reply is a title or {title, payload}"};
      }
      if (reply.title.empty() || CodePoints(reply.title) > kMaxQuickReplyTitle) {
        throw RulesError{LineOf(item),
                         "quick reply title '" + reply.title + "' must have 1 to 20 characters (Meta's limit)"};
      }
      if (reply.payload.size() > kMaxPayload) {
        throw RulesError{LineOf(item), "quick reply payload over 1000 characters (Meta's limit)"};
      }
      message.quick_replies.push_back(std::move(reply));
    }
  }
  return message;
}

std::vector<MessageTemplate> ParseReplies(const YAML::Node& node) {
  std::vector<MessageTemplate> replies;
  if (node.IsSequence()) {
    for (const auto& item : node) replies.push_back(ParseMessage(item));
  } else {
    replies.push_back(ParseMessage(node));
  }
  return replies;
}

Matcher ParseMatcher(const YAML::Node& node) {
  Matcher matcher;
  if (!node) return matcher;
  if (!node.IsMap()) throw RulesError{LineOf(node), "'when' must be a map of conditions"};
  for (const auto& field : node) {
    auto key = field.first.as<std::string>();
    const YAML::Node& value = field.second;
    if (key == "keywords") {
      for (const auto& keyword : StringList(value, "keywords")) {
        matcher.keywords.push_back(FoldForMatching(keyword));
      }
    } else if (key == "postback") {
      matcher.postbacks = StringList(value, "postback");
    } else if (key == "quick_reply") {
      matcher.quick_replies = StringList(value, "quick_reply");
    } else if (key == "ref") {
      matcher.refs = StringList(value, "ref");
    } else if (key == "optin") {
      matcher.optins = StringList(value, "optin");
    } else if (key == "regex") {
      RE2::Options options;
      options.set_log_errors(false);
      auto regex = std::make_shared<re2::RE2>(Scalar(value, "regex"), options);
      if (!regex->ok()) throw RulesError{LineOf(value), "bad regex: " + regex->error()};
      matcher.regex = std::move(regex);
    } else if (key == "attachment") {
      matcher.attachment = Scalar(value, "attachment");
    } else if (key == "state") {
      matcher.state = value.IsNull() ? "" : Scalar(value, "state");
    } else if (key == "first_contact") {
      matcher.first_contact = value.as<bool>();
    } else if (key == "comment") {
      matcher.comment = value.as<bool>();
    } else if (key == "post") {
      matcher.posts = StringList(value, "post");
    } else if (key == "timer") {
      matcher.timer = Scalar(value, "timer");
      if (!IsReminderName(matcher.timer)) {
        throw RulesError{LineOf(value), "timer: a reminder's name is 1 to 64 of A-Z, a-z, 0-9, _ and -"};
      }
    } else if (key == "page") {
      matcher.pages = StringList(value, "page");
      for (const auto& page : matcher.pages) {
        if (!IsNumericId(page, 64)) throw RulesError{LineOf(value), "page: '" + page + "' is not a numeric id"};
      }
    } else if (key == "platform") {
      matcher.platform = Scalar(value, "platform");
      if (matcher.platform != "instagram" && matcher.platform != "messenger") {
        throw RulesError{LineOf(value), "platform is instagram or messenger"};
      }
    } else {
      throw RulesError{LineOf(field.first), "unknown condition '" + key + "'"};
    }
  }
  if (!matcher.posts.empty() && !matcher.comment) throw RulesError{LineOf(node), "'post' goes with 'comment: true'"};
  if (matcher.comment && (!matcher.postbacks.empty() || !matcher.quick_replies.empty() || !matcher.refs.empty() ||
                          !matcher.optins.empty() || !matcher.attachment.empty())) {
    throw RulesError{LineOf(node), "a comment has no postback, quick_reply, ref, optin or attachment"};
  }
  if (!matcher.timer.empty() && (matcher.comment || !matcher.keywords.empty() || matcher.regex ||
                                 !matcher.postbacks.empty() || !matcher.quick_replies.empty() ||
                                 !matcher.refs.empty() || !matcher.optins.empty() || !matcher.attachment.empty())) {
    throw RulesError{LineOf(node), "a reminder has no text, comment, postback, quick_reply, ref, optin or attachment"};
  }
  return matcher;
}

Skill ParseSkill(const YAML::Node& node) {
  if (!node.IsScalar() && (!node.IsMap() || !node["url"])) {
    throw RulesError{LineOf(node), "a skill is a URL or {url, timeout_ms, fallback}"};
  }
  if (node.IsMap()) {
    for (const auto& field : node) {
      auto key = field.first.as<std::string>();
      if (key != "url" && key != "timeout_ms" && key != "fallback") {
        throw RulesError{LineOf(field.first), "unknown skill field '" + key + "'"};
      }
    }
  }
  const YAML::Node url = node.IsScalar() ? node : node["url"];
  Skill skill;
  skill.url = Scalar(url, "url");
  if (skill.url.rfind("http://", 0) != 0 && skill.url.rfind("https://", 0) != 0) {
    throw RulesError{LineOf(url), "skill url must start with http:// or https://"};
  }
  if (node.IsScalar()) return skill;
  if (node["timeout_ms"]) {
    int timeout = node["timeout_ms"].as<int>();
    if (timeout < 10 || timeout > 30000) throw RulesError{LineOf(node["timeout_ms"]), "timeout_ms must be 10 to 30000"};
    skill.timeout = std::chrono::milliseconds(timeout);
  }
  if (node["fallback"]) skill.fallback = ParseReplies(node["fallback"]);
  return skill;
}

bool Mentions(const std::string& text) { return text.find("first_name") != std::string::npos; }

bool MentionsFirstName(const std::vector<MessageTemplate>& messages) {
  for (const auto& message : messages) {
    for (const auto& text : message.variants) {
      if (Mentions(text)) return true;
    }
    for (const auto& card : message.cards) {
      if (Mentions(card.title) || Mentions(card.subtitle)) return true;
    }
  }
  return false;
}

bool MentionsFirstName(const Rule& rule) {
  if (MentionsFirstName(rule.replies)) return true;
  if (rule.skill && MentionsFirstName(rule.skill->fallback)) return true;
  for (const auto& [name, value] : rule.set) {
    if (Mentions(value)) return true;
  }
  return false;
}

// A rule for Instagram must keep Instagram's limits (common/instagram_limits.h). Of those, rules
// can only break the text's: they write text quick replies and generic or button templates,
// which Instagram has. Text in bytes, as Instagram counts (placeholders are not yet filled in).
void CheckInstagramLimits(const std::vector<MessageTemplate>& messages, const YAML::Node& where) {
  for (const auto& message : messages) {
    for (const auto& text : message.variants) {
      if (text.size() > kInstagramMaxTextBytes) {
        throw RulesError{LineOf(where), "reply text must be at most 1000 bytes on Instagram (Meta's limit), got " +
                                            std::to_string(text.size())};
      }
    }
  }
}

// `handover: inbox` (or an app id, or `back`), or {to: ..., reason: "..."}.
Handover ParseHandover(const YAML::Node& node, const std::string& rule_name) {
  std::string target;
  std::string reason = "katy rule " + rule_name;
  if (node.IsMap()) {
    for (const auto& field : node) {
      const auto key = field.first.as<std::string>();
      if (key != "to" && key != "reason") throw RulesError{LineOf(field.first), "unknown handover field '" + key + "'"};
    }
    if (!node["to"]) throw RulesError{LineOf(node), "a handover needs 'to' (inbox, an app id, or back)"};
    target = Scalar(node["to"], "to");
    if (node["reason"]) reason = Scalar(node["reason"], "reason");
  } else {
    target = Scalar(node, "handover");
  }
  auto handover = ParseHandoverTarget(target, reason);
  if (!handover) throw RulesError{LineOf(node), "handover is 'inbox', an app id or 'back', got '" + target + "'"};
  return *handover;
}

// Meta takes one private reply per comment, and the person is not in a conversation with the
// page until they answer it: a comment rule sends at most one message, and neither typing nor a
// handover (docs/comments.md).
void CheckCommentRule(const Rule& rule, const YAML::Node& node) {
  if (rule.replies.size() > 1)
    throw RulesError{LineOf(node["reply"]), "a comment has one private reply (Meta's limit)"};
  if (rule.typing) throw RulesError{LineOf(node["typing"]), "a comment rule cannot send typing"};
  if (rule.handover) throw RulesError{LineOf(node["handover"]), "a comment rule cannot hand the thread over"};
  if (rule.replies.empty() && !rule.skill && rule.comment_reply.empty()) {
    throw RulesError{LineOf(node), "a comment rule needs reply, skill or comment_reply"};
  }
  if (!rule.comment_reply.empty() && CodePoints(rule.comment_reply) >= kMaxText) {
    throw RulesError{LineOf(node["comment_reply"]), "comment_reply must be under 2000 characters"};
  }
}

// remind: {after: 30m, name: NUDGE, keep: true}, or a list of them.
std::vector<ReminderRequest> ParseReminders(const YAML::Node& node) {
  std::vector<ReminderRequest> reminders;
  auto parse_one = [&](const YAML::Node& item) {
    if (!item.IsMap()) throw RulesError{LineOf(item), "remind: {after: 30m, name: NUDGE} (keep: true optional)"};
    for (const auto& field : item) {
      const auto key = field.first.as<std::string>();
      if (key != "after" && key != "name" && key != "keep") {
        throw RulesError{LineOf(field.first), "remind: unknown field '" + key + "' (after, name, keep)"};
      }
    }
    if (!item["after"] || !item["name"]) throw RulesError{LineOf(item), "remind needs 'after' and 'name'"};
    ReminderRequest reminder;
    reminder.name = Scalar(item["name"], "name");
    if (!IsReminderName(reminder.name)) {
      throw RulesError{LineOf(item["name"]), "remind: a name is 1 to 64 of A-Z, a-z, 0-9, _ and -"};
    }
    auto after = ParseReminderDelay(Scalar(item["after"], "after"));
    if (!after) throw RulesError{LineOf(item["after"]), "remind: " + after.error().message};
    reminder.after = *after;
    if (item["keep"]) reminder.keep = item["keep"].as<bool>();
    reminders.push_back(std::move(reminder));
  };
  if (node.IsSequence()) {
    for (const auto& item : node) parse_one(item);
  } else {
    parse_one(node);
  }
  return reminders;
}

// forget, opt_out, opt_in: at most one of them, each `true` (false is the same as leaving it out).
PrivacyAction ParsePrivacyAction(const YAML::Node& node) {
  PrivacyAction action = PrivacyAction::kNone;
  const std::pair<const char*, PrivacyAction> kinds[] = {
      {"forget", PrivacyAction::kForget}, {"opt_out", PrivacyAction::kOptOut}, {"opt_in", PrivacyAction::kOptIn}};
  for (const auto& [key, kind] : kinds) {
    const YAML::Node& value = node[key];
    if (!value) continue;
    bool on = false;
    if (!value.IsScalar() || !YAML::convert<bool>::decode(value, on)) {
      throw RulesError{LineOf(value), std::string(key) + " is true or false"};
    }
    if (!on) continue;
    if (action != PrivacyAction::kNone) throw RulesError{LineOf(value), "a rule has one of forget, opt_out and opt_in"};
    action = kind;
  }
  return action;
}

Rule ParseRule(const YAML::Node& node, const std::string& default_name) {
  if (!node.IsMap()) throw RulesError{LineOf(node), "a rule must be a map"};
  Rule rule;
  rule.line = LineOf(node);
  rule.name = node["name"] ? Scalar(node["name"], "name") : default_name;
  for (const auto& field : node) {
    auto key = field.first.as<std::string>();
    if (key != "name" && key != "when" && key != "reply" && key != "set" && key != "state" && key != "typing" &&
        key != "skill" && key != "handover" && key != "comment_reply" && key != "remind" && key != "cancel" &&
        key != "forget" && key != "opt_out" && key != "opt_in") {
      throw RulesError{LineOf(field.first), "unknown rule field '" + key + "'"};
    }
  }
  rule.when = ParseMatcher(node["when"]);
  if (node["reply"] && node["skill"]) {
    throw RulesError{LineOf(node["skill"]), "a rule has either 'reply' or 'skill' (the skill's fallback is its own)"};
  }
  if (node["reply"]) rule.replies = ParseReplies(node["reply"]);
  if (const auto& skill = node["skill"]) rule.skill = ParseSkill(skill);
  if (const auto& typing = node["typing"]) rule.typing = typing.as<bool>();
  if (const auto& set = node["set"]) {
    if (!set.IsMap()) throw RulesError{LineOf(set), "'set' must be a map of variable: value"};
    for (const auto& item : set) rule.set[item.first.as<std::string>()] = Scalar(item.second, "value");
  }
  if (const auto& state = node["state"]) rule.next_state = state.IsNull() ? "" : Scalar(state, "state");
  if (const auto& handover = node["handover"]) rule.handover = ParseHandover(handover, rule.name);
  if (const auto& public_reply = node["comment_reply"]) rule.comment_reply = Scalar(public_reply, "comment_reply");
  if (const auto& remind = node["remind"]) rule.remind = ParseReminders(remind);
  if (const auto& cancel = node["cancel"]) {
    rule.cancel = StringList(cancel, "cancel");
    for (const auto& name : rule.cancel) {
      if (!IsReminderName(name)) throw RulesError{LineOf(cancel), "cancel: '" + name + "' is no reminder's name"};
    }
  }
  rule.privacy = ParsePrivacyAction(node);
  if (rule.when.comment && rule.privacy != PrivacyAction::kNone) {
    throw RulesError{LineOf(node),
                     "a comment rule has no forget, opt_out or opt_in: the commenter has no conversation yet"};
  }
  if (rule.when.comment && (!rule.remind.empty() || !rule.cancel.empty())) {
    throw RulesError{LineOf(node), "a comment rule sets no reminder: the commenter has no conversation yet"};
  }
  if (rule.when.comment) CheckCommentRule(rule, node);
  if (!rule.comment_reply.empty() && !rule.when.comment) {
    throw RulesError{LineOf(node["comment_reply"]), "comment_reply goes with 'comment: true'"};
  }
  rule.uses_first_name = MentionsFirstName(rule);
  if (rule.when.platform == "instagram") {
    CheckInstagramLimits(rule.replies, node["reply"]);
    if (rule.skill) CheckInstagramLimits(rule.skill->fallback, node["skill"]);
  }
  return rule;
}

nlohmann::json ButtonsJson(const std::vector<MessageTemplate::Button>& buttons,
                           const std::map<std::string, std::string>& values) {
  nlohmann::json out = nlohmann::json::array();
  for (const auto& button : buttons) {
    if (!button.url.empty()) {
      out.push_back(
          {{"type", "web_url"}, {"title", Render(button.title, values)}, {"url", Render(button.url, values)}});
    } else {
      out.push_back({{"type", "postback"}, {"title", Render(button.title, values)}, {"payload", button.payload}});
    }
  }
  return out;
}

std::string MessageJson(const MessageTemplate& message, const std::map<std::string, std::string>& values,
                        const std::function<size_t(size_t)>& pick) {
  nlohmann::json out;
  if (message.media) {
    out["attachment"] = {
        {"type", message.media->type},
        {"payload", {{"url", Render(message.media->url, values)}, {"is_reusable", message.media->reusable}}}};
  } else if (!message.cards.empty()) {
    nlohmann::json elements = nlohmann::json::array();
    for (const auto& card : message.cards) {
      nlohmann::json element{{"title", Render(card.title, values)}};
      if (!card.subtitle.empty()) element["subtitle"] = Render(card.subtitle, values);
      if (!card.image_url.empty()) element["image_url"] = Render(card.image_url, values);
      if (!card.buttons.empty()) element["buttons"] = ButtonsJson(card.buttons, values);
      elements.push_back(std::move(element));
    }
    out["attachment"] = {{"type", "template"},
                         {"payload", {{"template_type", "generic"}, {"elements", std::move(elements)}}}};
  } else {
    const std::string& variant =
        message.variants.size() == 1 ? message.variants[0] : message.variants[pick(message.variants.size())];
    std::string text = Render(variant, values);
    if (message.buttons.empty()) {
      out["text"] = std::move(text);
    } else {
      out["attachment"] = {{"type", "template"},
                           {"payload",
                            {{"template_type", "button"},
                             {"text", std::move(text)},
                             {"buttons", ButtonsJson(message.buttons, values)}}}};
    }
  }
  for (const auto& reply : message.quick_replies) {
    out["quick_replies"].push_back({{"content_type", "text"}, {"title", reply.title}, {"payload", reply.payload}});
  }
  return ToJsonText(out);
}

// "PROMO*": every non-empty value starting with PROMO; anything else: exactly this value.
bool AnyPatternMatches(const std::vector<std::string>& patterns, const std::string& value) {
  if (value.empty()) return false;
  for (const auto& pattern : patterns) {
    if (!pattern.empty() && pattern.back() == '*') {
      if (value.compare(0, pattern.size() - 1, pattern, 0, pattern.size() - 1) == 0) return true;
    } else if (pattern == value) {
      return true;
    }
  }
  return false;
}

bool IsReferralOrOptin(const katy::v1::InboundEvent& event) {
  return event.kind() == katy::v1::EVENT_KIND_REFERRAL || event.kind() == katy::v1::EVENT_KIND_OPTIN;
}

bool Matches(const Matcher& when, const katy::v1::InboundEvent& event, const Conversation& conversation,
             const std::string& folded_text, std::map<std::string, std::string>* captures) {
  auto one_of = [](const std::vector<std::string>& list, const std::string& value) {
    return std::find(list.begin(), list.end(), value) != list.end();
  };
  if (!when.postbacks.empty() &&
      (event.kind() != katy::v1::EVENT_KIND_POSTBACK || !one_of(when.postbacks, event.postback_payload()))) {
    return false;
  }
  if (!when.quick_replies.empty() && !one_of(when.quick_replies, event.quick_reply_payload())) return false;
  if (!when.refs.empty() && !AnyPatternMatches(when.refs, event.referral().ref())) return false;
  if (!when.optins.empty() &&
      (event.kind() != katy::v1::EVENT_KIND_OPTIN || (!AnyPatternMatches(when.optins, event.postback_payload()) &&
                                                      !AnyPatternMatches(when.optins, event.referral().ref())))) {
    return false;
  }
  // A referral or an opt-in alone is answered only by a rule written for it; a comment only by
  // a comment rule, which answers nothing else.
  if (IsReferralOrOptin(event) && when.refs.empty() && when.optins.empty()) return false;
  if (when.comment != (event.kind() == katy::v1::EVENT_KIND_COMMENT)) return false;
  // A reminder only by a rule for that reminder, which answers nothing else.
  if (when.timer.empty() != (event.kind() != katy::v1::EVENT_KIND_TIMER)) return false;
  if (!when.timer.empty() && event.kind_key() != when.timer) return false;
  if (!when.posts.empty() && !one_of(when.posts, event.post_id())) return false;
  if (!when.pages.empty() && !one_of(when.pages, event.page_id())) return false;
  if (!when.platform.empty() && when.platform != (event.platform().empty() ? "messenger" : event.platform())) {
    return false;
  }
  if (when.state && conversation.state != *when.state) return false;
  if (when.first_contact && conversation.first_contact != *when.first_contact) return false;
  if (!when.attachment.empty()) {
    bool found = false;
    for (const auto& attachment : event.attachments()) found = found || attachment.type() == when.attachment;
    if (!found) return false;
  }
  if (!when.keywords.empty()) {
    bool found = false;
    for (const auto& keyword : when.keywords) found = found || ContainsWord(folded_text, keyword);
    if (!found) return false;
  }
  if (when.regex) {
    const re2::RE2& regex = *when.regex;
    std::vector<re2::StringPiece> groups(regex.NumberOfCapturingGroups() + 1);
    if (!regex.Match(event.text(), 0, event.text().size(), re2::RE2::UNANCHORED, groups.data(),
                     static_cast<int>(groups.size()))) {
      return false;
    }
    for (const auto& [name, index] : regex.NamedCapturingGroups()) {
      (*captures)[name] = std::string(groups[index].data(), groups[index].size());
    }
  }
  return true;
}

// Placeholder values, in lookup order: captures (already in `values`), built-ins, variables.
std::map<std::string, std::string> Values(const katy::v1::InboundEvent& event, const Conversation& conversation,
                                          std::map<std::string, std::string> values) {
  values.emplace("text", event.text());
  values.emplace("ref", event.referral().ref());
  std::string first_name = conversation.first_name;
  if (event.kind() == katy::v1::EVENT_KIND_COMMENT) {
    values.emplace("comment_text", event.text());
    values.emplace("commenter_name", event.user_name());
    // A commenter's name comes with the comment (no profile look-up): its first word.
    if (first_name.empty()) first_name = event.user_name().substr(0, event.user_name().find(' '));
  }
  values.emplace("first_name", first_name.empty() ? "there" : first_name);
  for (const auto& [name, value] : conversation.vars) values.emplace(name, value);
  return values;
}

}  // namespace

Decision ApplyRule(const Rule& rule, const katy::v1::InboundEvent& event, const Conversation& conversation,
                   std::map<std::string, std::string> captures, const std::function<size_t(size_t)>& pick) {
  auto values = Values(event, conversation, std::move(captures));
  Decision decision;
  decision.rule = rule.name;
  for (const auto& [name, value] : rule.set) {
    decision.set_vars[name] = Render(value, values);
    values[name] = decision.set_vars[name];  // later replies of the same rule see the new value
  }
  for (const auto& message : rule.replies) decision.messages.push_back(MessageJson(message, values, pick));
  decision.next_state = rule.next_state;
  decision.typing = rule.typing;
  if (rule.skill) decision.skill = &*rule.skill;
  if (rule.handover) decision.handover = Handover{rule.handover->target_app_id, Render(rule.handover->reason, values)};
  if (!rule.comment_reply.empty()) decision.public_reply = Render(rule.comment_reply, values);
  decision.remind = rule.remind;
  decision.cancel = rule.cancel;
  decision.privacy = rule.privacy;
  return decision;
}

std::optional<Handover> ParseHandoverTarget(const std::string& target, std::string reason) {
  if (target == "inbox") return Handover{kPageInboxAppId, std::move(reason)};
  if (target == "back") return Handover{"", std::move(reason)};
  if (IsNumericId(target, 20)) return Handover{target, std::move(reason)};
  return std::nullopt;
}

std::vector<std::string> RenderMessages(const std::vector<MessageTemplate>& templates,
                                        const katy::v1::InboundEvent& event, const Conversation& conversation,
                                        const std::function<size_t(size_t)>& pick) {
  auto values = Values(event, conversation, {});
  std::vector<std::string> out;
  for (const auto& message : templates) out.push_back(MessageJson(message, values, pick));
  return out;
}

std::string Render(const std::string& text, const std::map<std::string, std::string>& values) {
  std::string out;
  out.reserve(text.size());
  size_t pos = 0;
  while (pos < text.size()) {
    size_t open = text.find("{{", pos);
    if (open == std::string::npos) break;
    size_t close = text.find("}}", open + 2);
    if (close == std::string::npos) break;
    out.append(text, pos, open - pos);
    std::string name = text.substr(open + 2, close - open - 2);
    std::string fallback;
    if (auto bar = name.find('|'); bar != std::string::npos) {
      fallback = name.substr(bar + 1);
      name.erase(bar);
    }
    auto trim = [](std::string& s) {
      while (!s.empty() && s.front() == ' ') s.erase(0, 1);
      while (!s.empty() && s.back() == ' ') s.pop_back();
    };
    trim(name);
    trim(fallback);
    auto it = values.find(name);
    out += it != values.end() && !it->second.empty() ? it->second : fallback;
    pos = close + 2;
  }
  out.append(text, pos, std::string::npos);
  return out;
}

bool IsReplyable(const katy::v1::InboundEvent& event) {
  if (event.standby() || event.user_id().empty()) return false;
  switch (event.kind()) {
    case katy::v1::EVENT_KIND_MESSAGE:
    case katy::v1::EVENT_KIND_POSTBACK:
      return true;
    default:
      return false;
  }
}

bool AnswersComments(const RuleSet& rules, const std::string& platform) {
  return std::any_of(rules.rules.begin(), rules.rules.end(), [&](const Rule& rule) {
    return rule.when.comment && (rule.when.platform.empty() || rule.when.platform == platform);
  });
}

bool IsAnswerableComment(const katy::v1::InboundEvent& event) {
  return event.kind() == katy::v1::EVENT_KIND_COMMENT && event.verb() == "add" && !event.by_page() &&
         !event.standby() && !event.user_id().empty() && !event.mid().empty();
}

namespace {

// bot_disclosure: {<page id>: <text>}: the page's own KATY_BOT_DISCLOSURE ("" turns it off).
std::map<std::string, std::string> ParseDisclosures(const YAML::Node& node) {
  if (!node.IsMap()) throw RulesError{LineOf(node), "'bot_disclosure' must map page ids to texts"};
  std::map<std::string, std::string> by_page;
  for (const auto& page : node) {
    const auto id = page.first.as<std::string>();
    if (!IsNumericId(id, 64)) {
      throw RulesError{LineOf(page.first), "bot_disclosure: '" + id + "' is not a page's or account's numeric id"};
    }
    if (!page.second.IsScalar()) throw RulesError{LineOf(page.second), "bot_disclosure: a page's text is a string"};
    const auto text = page.second.as<std::string>();
    if (CodePoints(text) >= kMaxText) {
      throw RulesError{LineOf(page.second), "bot_disclosure text must be under 2000 characters (Meta's limit)"};
    }
    by_page[id] = text;
  }
  return by_page;
}

}  // namespace

Result<RuleSet> ParseRules(const std::string& yaml_text, const std::string& file_name) {
  try {
    YAML::Node root = YAML::Load(yaml_text);
    if (!root.IsMap()) return Error{ErrorCode::kConfig, file_name + ":1: the file must be a map with 'rules'"};
    RuleSet set;
    for (const auto& field : root) {
      auto key = field.first.as<std::string>();
      if (key != "rules" && key != "fallback" && key != "bot_disclosure") {
        throw RulesError{LineOf(field.first), "unknown top-level key '" + key + "'"};
      }
    }
    if (const auto& disclosure = root["bot_disclosure"]) set.disclosure_by_page = ParseDisclosures(disclosure);
    if (const auto& rules = root["rules"]) {
      if (!rules.IsSequence()) throw RulesError{LineOf(rules), "'rules' must be a list"};
      for (size_t i = 0; i < rules.size(); ++i) {
        set.rules.push_back(ParseRule(rules[i], "rule" + std::to_string(i + 1)));
      }
    }
    if (const auto& fallback = root["fallback"]) set.fallback = ParseRule(fallback, "fallback");
    for (const auto& rule : set.rules) {
      for (const auto& reminder : rule.remind) {
        if (reminder.after <= std::chrono::hours(24)) continue;
        set.warnings.push_back(file_name + ":" + std::to_string(rule.line) + ": rule " + rule.name + " reminds " +
                               reminder.name +
                               " after more than 24 hours: its reply goes untagged, so unless the person writes "
                               "again first it falls outside the window and is dead-lettered (outside_window)");
      }
    }
    return set;
  } catch (const RulesError& e) {
    return Error{ErrorCode::kConfig, file_name + ":" + std::to_string(e.line) + ": " + e.message};
  } catch (const YAML::Exception& e) {
    return Error{ErrorCode::kConfig, file_name + ":" + std::to_string(e.mark.line + 1) + ": " + e.msg};
  }
}

Result<RuleSet> LoadRulesFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) return Error{ErrorCode::kConfig, path + ": cannot read the rules file"};
  std::stringstream text;
  text << in.rdbuf();
  return ParseRules(text.str(), path);
}

const Rule* FindRule(const RuleSet& rules, const katy::v1::InboundEvent& event, const Conversation& conversation,
                     std::map<std::string, std::string>* captures) {
  const bool of_a_person = !event.standby() && !event.user_id().empty();
  const bool referral_or_optin = IsReferralOrOptin(event) && of_a_person;
  const bool comment = event.kind() == katy::v1::EVENT_KIND_COMMENT;
  const bool timer = event.kind() == katy::v1::EVENT_KIND_TIMER;
  if (timer) {
    if (!of_a_person) return nullptr;
  } else if (comment ? !IsAnswerableComment(event) : !IsReplyable(event) && !referral_or_optin) {
    return nullptr;
  }
  const std::string folded = FoldForMatching(event.text());
  for (const auto& rule : rules.rules) {
    captures->clear();
    if (Matches(rule.when, event, conversation, folded, captures)) return &rule;
  }
  captures->clear();
  // "Sorry, I did not understand" is no answer to a link followed, a box ticked, a comment or
  // a reminder.
  if (IsReferralOrOptin(event) || comment || timer) return nullptr;
  return rules.fallback ? &*rules.fallback : nullptr;
}

Decision Decide(const RuleSet& rules, const katy::v1::InboundEvent& event, const Conversation& conversation,
                const std::function<size_t(size_t)>& pick) {
  std::map<std::string, std::string> captures;
  const Rule* rule = FindRule(rules, event, conversation, &captures);
  if (rule == nullptr) return {};
  return ApplyRule(*rule, event, conversation, std::move(captures), pick);
}

}  // namespace katy::responder
