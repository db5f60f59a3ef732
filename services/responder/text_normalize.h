#pragma once

#include <string>
#include <string_view>

namespace katy::responder {

// Lowercases and folds Latin accents to ASCII ("Ça VA, Zürich" -> "ca va, zurich"), so that
// keyword rules match what people type on any keyboard. Other scripts pass through unchanged.
// Pure, thread-safe.
std::string FoldForMatching(std::string_view utf8);

// True when `keyword` (already folded) occurs in `folded_text` as a whole word or phrase:
// bounded by the text's ends or by characters that are not ASCII letters or digits.
bool ContainsWord(std::string_view folded_text, std::string_view keyword);

}  // namespace katy::responder
