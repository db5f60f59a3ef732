#pragma once

#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "common/result.h"

namespace katy {

// Which access token sends for which page or Instagram account: a per-id map
// (KATY_PAGE_TOKENS_FILE, JSON {"<page id>": "<token>", "<account id>": {"token": "<token>",
// "platform": "instagram"}}; a bare string is a Messenger page's) with a default for every other
// page (KATY_PAGE_TOKEN).
// Immutable after loading; thread-safe. Tokens are secrets: never log them.
class PageTokens {
 public:
  // Error "config" when the file cannot be read or is not a JSON object of strings.
  static Result<PageTokens> Load(std::string default_token, const std::string& file_path);
  static PageTokens FromMap(std::string default_token, std::map<std::string, std::string> per_page);

  // The page's token, the default one, or nullopt when neither exists.
  std::optional<std::string> For(const std::string& page_id) const;
  bool empty() const { return default_token_.empty() && per_page_.empty(); }
  bool has_default() const { return !default_token_.empty(); }
  // The pages with a token of their own, in id order.
  std::vector<std::string> pages() const;
  // True when the file names `page_id` an Instagram account ("platform": "instagram").
  bool IsInstagram(const std::string& page_id) const { return instagram_.contains(page_id); }

 private:
  std::string default_token_;
  std::map<std::string, std::string> per_page_;
  std::set<std::string> instagram_;
};

}  // namespace katy
