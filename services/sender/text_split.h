#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace katy::sender {

// Splits UTF-8 text into ordered parts of at most `max_chars` code points and `max_bytes` bytes
// each (Messenger counts characters, Instagram bytes), cutting after the last whitespace of a
// part when there is one (a single longer word is cut inside), never inside a UTF-8 sequence.
// Text that fits comes back as one part. Pure.
std::vector<std::string> SplitText(std::string_view text, size_t max_chars, size_t max_bytes = SIZE_MAX);

// The parts a message's text is sent as: under Meta's 2,000 characters each for Messenger,
// 1,000 bytes each for Instagram. Pure.
std::vector<std::string> SplitMessageText(std::string_view text, bool instagram);

}  // namespace katy::sender
