#include "services/sender/text_split.h"

#include "common/instagram_limits.h"

namespace katy::sender {

std::vector<std::string> SplitText(std::string_view text, size_t max_chars, size_t max_bytes) {
  std::vector<std::string> parts;
  while (!text.empty()) {
    // Walk up to max_chars code points (and max_bytes), remembering the last whitespace seen.
    size_t bytes = 0;
    size_t chars = 0;
    size_t last_space_end = 0;
    while (bytes < text.size() && chars < max_chars) {
      auto c = static_cast<unsigned char>(text[bytes]);
      size_t length = c < 0x80 ? 1 : c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1;
      if (bytes + length > max_bytes && bytes > 0) break;
      bytes = std::min(text.size(), bytes + length);
      ++chars;
      if (c == ' ' || c == '\n' || c == '\t') last_space_end = bytes;
    }
    size_t cut = bytes;
    if (bytes < text.size() && last_space_end > 0) cut = last_space_end;
    std::string part(text.substr(0, cut));
    while (!part.empty() && (part.back() == ' ' || part.back() == '\n' || part.back() == '\t')) part.pop_back();
    if (!part.empty()) parts.push_back(std::move(part));
    text.remove_prefix(cut);
    while (!text.empty() && (text.front() == ' ' || text.front() == '\n' || text.front() == '\t')) {
      text.remove_prefix(1);
    }
  }
  return parts;
}

std::vector<std::string> SplitMessageText(std::string_view text, bool instagram) {
  constexpr size_t kMaxTextChars = 2000;  // Meta: under 2000, so parts of at most 1999
  return SplitText(text, kMaxTextChars - 1, instagram ? kInstagramMaxTextBytes : SIZE_MAX);
}

}  // namespace katy::sender
