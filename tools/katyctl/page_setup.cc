#include "tools/katyctl/page_setup.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <fstream>
#include <optional>
#include <sstream>

#include "common/config.h"
#include "common/defaults.h"
#include "common/hmac.h"
#include "common/http/http_client.h"
#include "common/page_setup.h"
#include "common/page_tokens.h"
#include "services/responder/rules.h"

namespace katy::ctl {
namespace {

using nlohmann::json;

json FromYaml(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Map: {
      json out = json::object();
      for (const auto& pair : node) out[pair.first.as<std::string>()] = FromYaml(pair.second);
      return out;
    }
    case YAML::NodeType::Sequence: {
      json out = json::array();
      for (const auto& item : node) out.push_back(FromYaml(item));
      return out;
    }
    case YAML::NodeType::Scalar: {
      const std::string& text = node.Scalar();
      const bool quoted = node.Tag() == "!";
      if (!quoted && (text == "true" || text == "false")) return text == "true";
      return text;
    }
    default:
      return nullptr;
  }
}

void EmitYaml(YAML::Emitter& out, const json& value) {
  if (value.is_object()) {
    out << YAML::BeginMap;
    for (const auto& [key, item] : value.items()) {
      out << YAML::Key << key << YAML::Value;
      EmitYaml(out, item);
    }
    out << YAML::EndMap;
  } else if (value.is_array()) {
    out << YAML::BeginSeq;
    for (const auto& item : value) EmitYaml(out, item);
    out << YAML::EndSeq;
  } else if (value.is_string()) {
    const auto& text = value.get_ref<const std::string&>();
    // Quoted when a plain scalar would read back as something else than this text.
    const bool ambiguous = text.empty() || text == "true" || text == "false" || text == "null" || text == "~";
    if (ambiguous) out << YAML::DoubleQuoted;
    out << text;
  } else if (value.is_boolean()) {
    out << YAML::TrueFalseBool << value.get<bool>();
  } else if (value.is_null()) {
    out << YAML::Null;
  } else {
    out << value.dump();
  }
}

// Where the Graph API is and which page and token a command works with.
struct GraphTarget {
  std::string base;    // KATY_GRAPH_URL without a trailing slash
  std::string node;    // the page id, or "me" (the token's page)
  std::string auth;    // "access_token=...[&appsecret_proof=...]"; a secret: never printed
  std::string app_id;  // KATY_APP_ID, or empty
  // An Instagram account's profile and fields: through its own token (node "me", on
  // KATY_INSTAGRAM_GRAPH_URL when set) or, with --platform instagram, its linked page's; the
  // profile calls then carry platform=instagram.
  bool instagram = false;
  bool instagram_login = false;  // an Instagram account on KATY_INSTAGRAM_GRAPH_URL (Instagram Login)
  bool comments = false;         // the rules answer comments on this platform (KATY_RULES)

  std::string Url(const std::string& edge, std::string query = "") const {
    if (instagram && edge == "messenger_profile") query += std::string(query.empty() ? "" : "&") + "platform=instagram";
    return base + "/" + node + "/" + edge + "?" + (query.empty() ? "" : query + "&") + auth;
  }
};

// The sender's settings that page setup uses, read the way the services read them (environment,
// NAME_FILE for secrets, defaults). Throws config::ConfigError when one is unreadable.
config::Settings GraphSettings() {
  return config::Settings::Load(
      {
          {"KATY_GRAPH_URL", std::string(defaults::kGraphUrl), "Graph API base URL"},
          {"KATY_PAGE_TOKEN", "", "Page access token for every page without its own", false, true},
          {"KATY_PAGE_TOKENS_FILE", "", R"(JSON file {"<page id>": "<token>"})"},
          {"KATY_APP_SECRET", "", "Meta app secret, for appsecret_proof", false, true},
          {"KATY_APPSECRET_PROOF", "0", "Send appsecret_proof"},
          {"KATY_APP_ID", "", "This app's id among the page's subscribed apps"},
          {"KATY_INSTAGRAM_GRAPH_URL", "", "Graph API base URL for Instagram accounts (Instagram Login)"},
          {"KATY_RULES", "deploy/rules/katy.yaml", "The responder's rules: comment rules want the comments' field"},
      },
      std::vector<std::string>{});
}

// PAGE given: its token. Left out: the one page configured, or "me" with the default token.
// Whether the rules at KATY_RULES answer comments on the platform; a rules file that cannot be
// read answers none (katyctl may run where the responder's file is not).
bool RulesAnswerComments(const std::string& path, bool instagram) {
  auto rules = responder::LoadRulesFile(path);
  return rules && responder::AnswersComments(*rules, instagram ? "instagram" : "messenger");
}

Result<GraphTarget> TargetFor(const std::string& page, bool instagram_platform) {
  std::optional<config::Settings> settings;
  try {
    settings = GraphSettings();
  } catch (const config::ConfigError& e) {
    return Error{ErrorCode::kConfig, e.what()};
  }
  auto tokens = PageTokens::Load(settings->String("KATY_PAGE_TOKEN"), settings->String("KATY_PAGE_TOKENS_FILE"));
  if (!tokens) return tokens.error();
  GraphTarget target;
  target.base = settings->String("KATY_GRAPH_URL");
  while (!target.base.empty() && target.base.back() == '/') target.base.pop_back();
  target.app_id = settings->String("KATY_APP_ID");
  target.node = page;
  if (page.empty()) {
    const auto pages = tokens->pages();
    if (pages.size() == 1 && !tokens->has_default()) {
      target.node = pages.front();
    } else if (pages.empty() && tokens->has_default()) {
      target.node = "me";
    } else if (!pages.empty()) {
      return Error{ErrorCode::kInvalid, "several pages are configured: name the PAGE"};
    }
  }
  auto token = tokens->For(target.node);
  target.instagram = instagram_platform || tokens->IsInstagram(target.node);
  if (tokens->IsInstagram(target.node)) {
    // The account's own token names it ("me"), on Instagram's Graph host when it has one.
    target.node = "me";
    const std::string& instagram_base = settings->String("KATY_INSTAGRAM_GRAPH_URL");
    if (!instagram_base.empty()) target.base = instagram_base;
    target.instagram_login = !instagram_base.empty();
    while (!target.base.empty() && target.base.back() == '/') target.base.pop_back();
  }
  target.comments = RulesAnswerComments(settings->String("KATY_RULES"), target.instagram);
  if (!token) {
    return Error{ErrorCode::kConfig, "no page token" + (page.empty() ? std::string() : " for page " + page) +
                                         ": set KATY_PAGE_TOKEN or KATY_PAGE_TOKENS_FILE as for the sender"};
  }
  target.auth = "access_token=" + http::UrlEncode(*token);
  const std::string& secret = settings->String("KATY_APP_SECRET");
  if (settings->Bool("KATY_APPSECRET_PROOF") && !secret.empty()) {
    target.auth += "&appsecret_proof=" + HmacSha256Hex(secret, *token);
  }
  return target;
}

// One Graph call; its JSON answer, or Meta's error message.
Result<json> Graph(const std::string& method, const std::string& url, const std::string& body = "") {
  http::Client http;
  auto answer = http.Request(method, url, body, {"Content-Type: application/json"});
  if (!answer) return Error{answer.error().code, "cannot reach the Graph API: " + answer.error().message};
  json parsed = json::parse(answer->body, nullptr, false);
  if (answer->status != 200) {
    std::string message = "HTTP " + std::to_string(answer->status);
    if (parsed.is_object() && parsed.contains("error") && parsed["error"].is_object()) {
      message =
          parsed["error"].value("message", message) + " (code " + parsed["error"].value("code", json(0)).dump() + ")";
    }
    return Error{ErrorCode::kReply, "the Graph API refused: " + message};
  }
  if (parsed.is_discarded()) return Error{ErrorCode::kReply, "the Graph API answered something not JSON"};
  return parsed;
}

std::string FieldList() {
  std::string out;
  for (const char* field : kMessengerProfileFields) out += (out.empty() ? "" : ",") + std::string(field);
  return out;
}

Result<json> CurrentProfile(const GraphTarget& target) {
  auto answer = Graph("GET", target.Url("messenger_profile", "fields=" + FieldList()));
  if (!answer) return answer.error();
  const json& data = answer->value("data", json::array());
  return data.is_array() && !data.empty() && data[0].is_object() ? data[0] : json::object();
}

int Failed(std::ostream& err, const Error& error) {
  err << "katyctl: " << error.message << "\n";
  return error.code == ErrorCode::kInvalid ? 2 : 1;
}

int ProfileGet(const GraphTarget& target, std::ostream& out, std::ostream& err) {
  auto current = CurrentProfile(target);
  if (!current) return Failed(err, current.error());
  out << ProfileToYaml(*current) << "\n";
  return 0;
}

int ProfileApply(const GraphTarget& target, const std::string& file, bool dry_run, std::ostream& out,
                 std::ostream& err) {
  std::ifstream in(file);
  if (!in) return Failed(err, {ErrorCode::kConfig, "cannot read " + file});
  std::stringstream text;
  text << in.rdbuf();
  auto desired = ProfileFromYaml(text.str());
  if (!desired) return Failed(err, {ErrorCode::kConfig, file + ": " + desired.error().message});
  if (target.instagram) (*desired)["platform"] = "instagram";
  if (auto broken = target.instagram ? InstagramProfileError(*desired) : MessengerProfileError(*desired)) {
    return Failed(err, {ErrorCode::kConfig, file + ": " + *broken + "; nothing was changed"});
  }
  auto current = CurrentProfile(target);
  if (!current) return Failed(err, current.error());
  json changed = json::object();
  desired->erase("platform");
  for (const auto& [field, value] : desired->items()) {
    if (!current->contains(field) || (*current)[field] != value) changed[field] = value;
  }
  for (const auto& line : ProfileChanges(*current, *desired)) out << line << "\n";
  if (target.instagram && !changed.empty()) changed["platform"] = "instagram";
  if (dry_run) {
    out << "dry run: " << changed.size() << " field(s) would change; nothing was changed\n";
    return 0;
  }
  if (changed.empty()) {
    out << "nothing to change\n";
    return 0;
  }
  auto set = Graph("POST", target.Url("messenger_profile"), changed.dump());
  if (!set) return Failed(err, set.error());
  out << "applied " << changed.size() - (target.instagram ? 1 : 0) << " field(s)\n";
  return 0;
}

// The app's subscribed fields on the page (KATY_APP_ID's entry, else the only one).
Result<std::vector<std::string>> SubscribedFields(const GraphTarget& target) {
  auto answer = Graph("GET", target.Url("subscribed_apps"));
  if (!answer) return answer.error();
  const json& apps = answer->value("data", json::array());
  for (const auto& app : apps) {
    if (!target.app_id.empty() && app.value("id", "") != target.app_id) continue;
    std::vector<std::string> fields;
    for (const auto& field : app.value("subscribed_fields", json::array())) {
      if (field.is_string()) fields.push_back(field.get<std::string>());
    }
    return fields;
  }
  return std::vector<std::string>{};  // the app is not subscribed at all
}

std::string Joined(const std::vector<std::string>& items) {
  std::string out;
  for (const auto& item : items) out += (out.empty() ? "" : ", ") + item;
  return out.empty() ? "(none)" : out;
}

int Subscriptions(const GraphTarget& target, bool fix, std::ostream& out, std::ostream& err) {
  if (target.instagram && !target.instagram_login) {
    // Through a Facebook Page, an account's fields are the app's Instagram webhook subscription.
    return Failed(err, {ErrorCode::kInvalid,
                        "an Instagram account linked to a page gets the fields of the app's Instagram webhooks "
                        "subscription (App Dashboard, Webhooks, Instagram): subscribe " +
                            Joined(WantedWebhookFields(true, target.comments)) +
                            " there; with Instagram Login, set KATY_INSTAGRAM_GRAPH_URL"});
  }
  auto subscribed = SubscribedFields(target);
  if (!subscribed) return Failed(err, subscribed.error());
  const auto missing = MissingSubscriptions(*subscribed, WantedWebhookFields(target.instagram, target.comments));
  out << "subscribed: " << Joined(*subscribed) << "\nmissing: " << Joined(missing) << "\n";
  if (missing.empty()) return 0;
  if (!fix) {
    out << "the page sends no webhook for the missing fields: katyctl subscriptions fix\n";
    return 1;
  }
  // POST sets the app's whole list: what it had (handled or not) and what was missing.
  std::vector<std::string> wanted = *subscribed;
  wanted.insert(wanted.end(), missing.begin(), missing.end());
  std::string list;
  for (const auto& field : wanted) list += (list.empty() ? "" : ",") + field;
  auto set = Graph("POST", target.Url("subscribed_apps", "subscribed_fields=" + http::UrlEncode(list)));
  if (!set) return Failed(err, set.error());
  out << "subscribed the missing fields: " << Joined(missing) << "\n";
  return 0;
}

}  // namespace

Result<json> ProfileFromYaml(const std::string& text) {
  YAML::Node root;
  try {
    root = YAML::Load(text);
  } catch (const YAML::Exception& e) {
    return Error{ErrorCode::kInvalid, "line " + std::to_string(e.mark.line + 1) + ": " + e.msg};
  }
  if (!root.IsMap()) return Error{ErrorCode::kInvalid, "the profile must be a mapping of Messenger Profile fields"};
  return FromYaml(root);
}

std::string ProfileToYaml(const json& profile) {
  YAML::Emitter out;
  EmitYaml(out, profile.empty() ? json::object() : profile);
  return out.c_str();
}

std::vector<std::string> ProfileChanges(const json& current, const json& desired) {
  std::vector<std::string> lines;
  for (const auto& [field, value] : desired.items()) {
    if (!current.contains(field)) {
      lines.push_back("+ " + field + ": " + value.dump());
    } else if (current[field] != value) {
      lines.push_back("~ " + field + ": " + current[field].dump() + " -> " + value.dump());
    } else {
      lines.push_back("= " + field);
    }
  }
  return lines;
}

std::vector<std::string> MissingSubscriptions(const std::vector<std::string>& subscribed,
                                              const std::vector<std::string>& wanted) {
  std::vector<std::string> missing;
  for (const std::string& field : wanted) {
    if (std::find(subscribed.begin(), subscribed.end(), field) == subscribed.end()) missing.emplace_back(field);
  }
  return missing;
}

int RunPageSetup(const std::vector<std::string>& words, bool dry_run, const std::string& platform, std::ostream& out,
                 std::ostream& err) {
  if (!platform.empty() && platform != "instagram" && platform != "messenger") {
    err << "katyctl: --platform is instagram or messenger\n";
    return 2;
  }
  const std::string& command = words[0];
  const std::string action = words.size() > 1 ? words[1] : "";
  const bool apply = command == "profile" && action == "apply";
  const size_t page_at = apply ? 3 : 2;
  const bool known = (command == "profile" && (action == "get" || apply)) ||
                     (command == "subscriptions" && (action == "check" || action == "fix"));
  if (!known || (apply && words.size() < 3) || words.size() > page_at + 1) {
    err << "katyctl: " << command
        << (command == "profile" ? " takes get [PAGE] or apply FILE [PAGE] [--dry-run]"
                                 : " takes check [PAGE] or fix [PAGE]")
        << " (katyctl --help)\n";
    return 2;
  }
  auto target = TargetFor(words.size() > page_at ? words[page_at] : "", platform == "instagram");
  if (!target) return Failed(err, target.error());
  if (command == "profile")
    return apply ? ProfileApply(*target, words[2], dry_run, out, err) : ProfileGet(*target, out, err);
  return Subscriptions(*target, action == "fix", out, err);
}

}  // namespace katy::ctl
