#include "services/responder/text_normalize.h"

#include <cstdint>

namespace katy::responder {
namespace {

// ASCII stand-ins for U+00C0..U+017F (Latin-1 Supplement letters and Latin Extended-A),
// generated from Unicode's canonical decompositions; '\0' keeps the original character.
// An array, not a string_view: the table contains NUL bytes.
constexpr char kFold0xC0[] =
    "aaaaaaaceeeeiiiidnooooo\0ouuuuyts"  // U+00C0..U+00DF
    "aaaaaaaceeeeiiiidnooooo\0ouuuuyty"  // U+00E0..U+00FF
    "aaaaaaccccccccddddeeeeeeeeeegggg"   // U+0100..U+011F
    "gggghhhhiiiiiiiiiiiijjkkklllllll"   // U+0120..U+013F
    "lllnnnnnnnnnoooooooorrrrrrssssss"   // U+0140..U+015F
    "ssttttttuuuuuuuuuuuuwwyyyzzzzzzs";  // U+0160..U+017F
constexpr uint32_t kFoldCount = sizeof(kFold0xC0) - 1;

bool IsWordChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
         static_cast<unsigned char>(c) >= 0x80;
}

}  // namespace

std::string FoldForMatching(std::string_view utf8) {
  std::string out;
  out.reserve(utf8.size());
  for (size_t i = 0; i < utf8.size(); ++i) {
    auto c = static_cast<unsigned char>(utf8[i]);
    if (c < 0x80) {
      out += static_cast<char>(c >= 'A' && c <= 'Z' ? c + 32 : c);
      continue;
    }
    if ((c & 0xE0) == 0xC0 && i + 1 < utf8.size()) {
      uint32_t cp = ((c & 0x1F) << 6) | (static_cast<unsigned char>(utf8[i + 1]) & 0x3F);
      if (cp >= 0xC0 && cp - 0xC0 < kFoldCount && kFold0xC0[cp - 0xC0] != '\0') {
        out += kFold0xC0[cp - 0xC0];
        ++i;
        continue;
      }
    }
    out += static_cast<char>(c);
  }
  return out;
}

bool ContainsWord(std::string_view folded_text, std::string_view keyword) {
  if (keyword.empty()) return false;
  for (size_t pos = folded_text.find(keyword); pos != std::string_view::npos;
       pos = folded_text.find(keyword, pos + 1)) {
    bool starts = pos == 0 || !IsWordChar(folded_text[pos - 1]) || !IsWordChar(keyword.front());
    size_t end = pos + keyword.size();
    bool ends = end == folded_text.size() || !IsWordChar(folded_text[end]) || !IsWordChar(keyword.back());
    if (starts && ends) return true;
  }
  return false;
}

}  // namespace katy::responder
