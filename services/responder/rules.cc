#include "services/responder/rules.h"

#include <re2/re2.h>
#include <yaml-cpp/yaml.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "services/responder/text_normalize.h"

namespace katy::responder {
namespace {

constexpr size_t kMaxQuickReplies = 13;
constexpr size_t kMaxQuickReplyTitle = 20;
constexpr size_t kMaxPayload = 1000;
constexpr size_t kMaxText = 2000;

// Thrown only inside ParseRules and turned into an Error there.
struct RulesError {
  int line;
  std::string message;
};

size_t CodePoints(const std::string& utf8) {
  size_t n = 0;
  for (unsigned char c : utf8) n += (c & 0xC0) != 0x80;
  return n;
}

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

MessageTemplate ParseMessage(const YAML::Node& node) {
  MessageTemplate message;
  if (node.IsScalar()) {
    message.variants.push_back(node.as<std::string>());
    CheckText(node, message.variants.back());
    return message;
  }
  if (!node.IsMap()) throw RulesError{LineOf(node), "a reply must be text or a map with text"};
  for (const auto& field : node) {
    std::string key = field.first.as<std::string>();
    if (key != "text" && key != "variants" && key != "quick_replies") {
      throw RulesError{LineOf(field.first), "unknown reply field '" + key + "'"};
    }
  }
  if (node["text"]) message.variants.push_back(Scalar(node["text"], "text"));
  if (node["variants"]) {
    for (auto& variant : StringList(node["variants"], "variants")) message.variants.push_back(variant);
  }
  if (message.variants.empty()) throw RulesError{LineOf(node), "a reply needs text or variants"};
  for (const auto& text : message.variants) CheckText(node, text);
  if (const auto& list = node["quick_replies"]) {
    if (!list.IsSequence()) throw RulesError{LineOf(list), "quick_replies must be a list"};
    if (list.size() > kMaxQuickReplies) {
      throw RulesError{LineOf(list), "at most 13 quick replies (Meta's limit), got " +
                                         std::to_string(list.size())};
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
        throw RulesError{LineOf(item), "quick reply title '" + reply.title +
                                           "' must have 1 to 20 characters (Meta's limit)"};
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
    std::string key = field.first.as<std::string>();
    const YAML::Node& value = field.second;
    if (key == "keywords") {
      for (const auto& keyword : StringList(value, "keywords")) {
        matcher.keywords.push_back(FoldForMatching(keyword));
      }
    } else if (key == "postback") {
      matcher.postback = Scalar(value, "postback");
    } else if (key == "quick_reply") {
      matcher.quick_reply = Scalar(value, "quick_reply");
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
    } else {
      throw RulesError{LineOf(field.first), "unknown condition '" + key + "'"};
    }
  }
  return matcher;
}

Rule ParseRule(const YAML::Node& node, const std::string& default_name) {
  if (!node.IsMap()) throw RulesError{LineOf(node), "a rule must be a map"};
  Rule rule;
  rule.line = LineOf(node);
  rule.name = node["name"] ? Scalar(node["name"], "name") : default_name;
  for (const auto& field : node) {
    std::string key = field.first.as<std::string>();
    if (key != "name" && key != "when" && key != "reply" && key != "set" && key != "state") {
      throw RulesError{LineOf(field.first), "unknown rule field '" + key + "'"};
    }
  }
  rule.when = ParseMatcher(node["when"]);
  if (node["reply"]) rule.replies = ParseReplies(node["reply"]);
  if (const auto& set = node["set"]) {
    if (!set.IsMap()) throw RulesError{LineOf(set), "'set' must be a map of variable: value"};
    for (const auto& item : set) rule.set[item.first.as<std::string>()] = Scalar(item.second, "value");
  }
  if (const auto& state = node["state"]) rule.next_state = state.IsNull() ? "" : Scalar(state, "state");
  return rule;
}

std::string MessageJson(const MessageTemplate& message, const std::map<std::string, std::string>& values,
                        const std::function<size_t(size_t)>& pick) {
  const std::string& text =
      message.variants.size() == 1 ? message.variants[0] : message.variants[pick(message.variants.size())];
  nlohmann::json out;
  out["text"] = Render(text, values);
  for (const auto& reply : message.quick_replies) {
    out["quick_replies"].push_back(
        {{"content_type", "text"}, {"title", reply.title}, {"payload", reply.payload}});
  }
  return out.dump();
}

bool Matches(const Matcher& when, const katy::v1::InboundEvent& event, const Conversation& conversation,
             const std::string& folded_text, std::map<std::string, std::string>* captures) {
  if (!when.postback.empty() && (event.kind() != katy::v1::EVENT_KIND_POSTBACK ||
                                 event.postback_payload() != when.postback)) {
    return false;
  }
  if (!when.quick_reply.empty() && event.quick_reply_payload() != when.quick_reply) return false;
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

Decision Apply(const Rule& rule, const katy::v1::InboundEvent& event, const Conversation& conversation,
               std::map<std::string, std::string> values, const std::function<size_t(size_t)>& pick) {
  // Lookup order: captures (already in `values`), then built-ins, then variables.
  values.emplace("text", event.text());
  values.emplace("first_name", conversation.first_name.empty() ? "there" : conversation.first_name);
  for (const auto& [name, value] : conversation.vars) values.emplace(name, value);
  Decision decision;
  decision.rule = rule.name;
  for (const auto& [name, value] : rule.set) {
    decision.set_vars[name] = Render(value, values);
    values[name] = decision.set_vars[name];  // later replies of the same rule see the new value
  }
  for (const auto& message : rule.replies) decision.messages.push_back(MessageJson(message, values, pick));
  decision.next_state = rule.next_state;
  return decision;
}

}  // namespace

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

Result<RuleSet> ParseRules(const std::string& yaml_text, const std::string& file_name) {
  try {
    YAML::Node root = YAML::Load(yaml_text);
    if (!root.IsMap()) return Error{"rules", file_name + ":1: the file must be a map with 'rules'"};
    RuleSet set;
    for (const auto& field : root) {
      std::string key = field.first.as<std::string>();
      if (key != "rules" && key != "fallback") {
        throw RulesError{LineOf(field.first), "unknown top-level key '" + key + "'"};
      }
    }
    if (const auto& rules = root["rules"]) {
      if (!rules.IsSequence()) throw RulesError{LineOf(rules), "'rules' must be a list"};
      for (size_t i = 0; i < rules.size(); ++i) {
        set.rules.push_back(ParseRule(rules[i], "rule" + std::to_string(i + 1)));
      }
    }
    if (const auto& fallback = root["fallback"]) set.fallback = ParseRule(fallback, "fallback");
    return set;
  } catch (const RulesError& e) {
    return Error{"rules", file_name + ":" + std::to_string(e.line) + ": " + e.message};
  } catch (const YAML::Exception& e) {
    return Error{"rules", file_name + ":" + std::to_string(e.mark.line + 1) + ": " + e.msg};
  }
}

Result<RuleSet> LoadRulesFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) return Error{"rules", path + ": cannot read the rules file"};
  std::stringstream text;
  text << in.rdbuf();
  return ParseRules(text.str(), path);
}

Decision Decide(const RuleSet& rules, const katy::v1::InboundEvent& event,
                const Conversation& conversation, const std::function<size_t(size_t)>& pick) {
  if (!IsReplyable(event)) return {};
  const std::string folded = FoldForMatching(event.text());
  for (const auto& rule : rules.rules) {
    std::map<std::string, std::string> captures;
    if (Matches(rule.when, event, conversation, folded, &captures)) {
      return Apply(rule, event, conversation, std::move(captures), pick);
    }
  }
  if (rules.fallback) return Apply(*rules.fallback, event, conversation, {}, pick);
  return {};
}

}  // namespace katy::responder
