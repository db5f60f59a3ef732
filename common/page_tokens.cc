#include "common/page_tokens.h"

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

namespace katy {

Result<PageTokens> PageTokens::Load(std::string default_token, const std::string& file_path) {
  std::map<std::string, std::string> per_page;
  if (!file_path.empty()) {
    std::ifstream in(file_path);
    if (!in) return Error{ErrorCode::kConfig, "KATY_PAGE_TOKENS_FILE: cannot read " + file_path};
    std::stringstream text;
    text << in.rdbuf();
    auto json = nlohmann::json::parse(text.str(), nullptr, false);
    if (!json.is_object()) {
      return Error{ErrorCode::kConfig, R"(KATY_PAGE_TOKENS_FILE: expected a JSON object {"page id": "token"})"};
    }
    for (const auto& [page, token] : json.items()) {
      if (!token.is_string() || token.get<std::string>().empty()) {
        return Error{ErrorCode::kConfig, "KATY_PAGE_TOKENS_FILE: the token of page " + page + " is not a string"};
      }
      per_page[page] = token.get<std::string>();
    }
  }
  return FromMap(std::move(default_token), std::move(per_page));
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
