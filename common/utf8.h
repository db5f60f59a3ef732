#pragma once

#include <cstddef>
#include <string_view>

namespace katy {

// Characters (Unicode code points) in UTF-8 text: Meta counts its length limits this way. Pure.
inline size_t CodePoints(std::string_view utf8) {
  size_t n = 0;
  for (unsigned char c : utf8) n += (c & 0xC0) != 0x80;  // every byte but continuation bytes
  return n;
}

}  // namespace katy
