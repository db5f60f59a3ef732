#include "common/page_tokens.h"

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

namespace katy {

namespace {

constexpr const char* kShape = R"(KATY_PAGE_TOKENS_FILE: expected a JSON object {"<page id>": "<token>"} or )"
                               R"({"<id>": {"token": "<token>", "platform": "messenger" or "instagram"}})";

// One entry: a token string (a Messenger page), or {token, platform}. Sets *instagram.
Result<std::string> ReadEntry(const std::string& id, const nlohmann::json& entry, bool* instagram) {
  *instagram = false;
  nlohmann::json token = entry;
  if (entry.is_object()) {
    for (const auto& [key, value] : entry.items()) {
      if (key != "token" && key != "platform") {
        return Error{ErrorCode::kConfig, "KATY_PAGE_TOKENS_FILE: unknown key '" + key + "' in the entry of " + id};
      }
    }
    const std::string platform = entry.value("platform", "messenger");
    if (platform != "messenger" && platform != "instagram") {
      return Error{ErrorCode::kConfig,
                   "KATY_PAGE_TOKENS_FILE: the platform of " + id + R"( is "messenger" or "instagram")"};
    }
    *instagram = platform == "instagram";
    token = entry.value("token", nlohmann::json());
  }
  if (!token.is_string() || token.get<std::string>().empty()) {
    return Error{ErrorCode::kConfig, "KATY_PAGE_TOKENS_FILE: the token of " + id + " is not a string"};
  }
  return token.get<std::string>();
}

}  // namespace

Result<PageTokens> PageTokens::Load(std::string default_token, const std::string& file_path) {
  std::map<std::string, std::string> per_page;
  std::set<std::string> instagram;
  if (!file_path.empty()) {
    std::ifstream in(file_path);
    if (!in) return Error{ErrorCode::kConfig, "KATY_PAGE_TOKENS_FILE: cannot read " + file_path};
    std::stringstream text;
    text << in.rdbuf();
    auto json = nlohmann::json::parse(text.str(), nullptr, false);
    if (!json.is_object()) return Error{ErrorCode::kConfig, kShape};
    for (const auto& [id, entry] : json.items()) {
      bool is_instagram = false;
      auto token = ReadEntry(id, entry, &is_instagram);
      if (!token) return token.error();
      per_page[id] = *token;
      if (is_instagram) instagram.insert(id);
    }
  }
  PageTokens tokens = FromMap(std::move(default_token), std::move(per_page));
  tokens.instagram_ = std::move(instagram);
  return tokens;
}

PageTokens PageTokens::FromMap(std::string default_token, std::map<std::string, std::string> per_page) {
  PageTokens tokens;
  tokens.default_token_ = std::move(default_token);
  tokens.per_page_ = std::move(per_page);
  return tokens;
}

std::optional<std::string> PageTokens::For(const std::string& page_id) const {
  if (auto it = per_page_.find(page_id); it != per_page_.end()) return it->second;
  if (!default_token_.empty()) return default_token_;
  return std::nullopt;
}

std::vector<std::string> PageTokens::pages() const {
  std::vector<std::string> out;
  for (const auto& [page, token] : per_page_) out.push_back(page);
  return out;
}

}  // namespace katy
