#include "common/json_escape.h"

#include <cstdint>
#include <cstdio>

namespace katy {

void AppendJsonEscaped(std::string& out, std::string_view text) {
  for (char c : text) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char buf[16];
          std::snprintf(buf, sizeof buf, "\\u%04x", static_cast<unsigned char>(c));
          out += buf;
        } else {
          out += c;
        }
    }
  }
}

namespace {

void AppendU16(std::string& out, uint32_t unit) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "\\u%04x", unit);
  out += buf;
}

}  // namespace

std::string EscapeJsonLikeMeta(std::string_view json) {
  std::string out;
  out.reserve(json.size() + json.size() / 4);
  bool in_string = false;
  for (size_t i = 0; i < json.size(); ++i) {
    auto c = static_cast<unsigned char>(json[i]);
    if (c < 0x80) {
      if (in_string && c == '\\' && i + 1 < json.size()) {
        out += json[i];
        out += json[++i];  // keep existing escapes (\" \\ \n ...) untouched
        continue;
      }
      if (c == '"') in_string = !in_string;
      if (c == '/' && in_string) {
        out += "\\/";
      } else {
        out += static_cast<char>(c);
      }
      continue;
    }
    // Decode one UTF-8 sequence (the input is valid UTF-8: it came from a JSON serializer).
    int extra = c >= 0xF0 ? 3 : c >= 0xE0 ? 2 : 1;
    uint32_t cp = c & (0x3F >> extra);
    for (int k = 0; k < extra && i + 1 < json.size(); ++k) {
      cp = (cp << 6) | (static_cast<unsigned char>(json[++i]) & 0x3F);
    }
    if (cp >= 0x10000) {
      cp -= 0x10000;
      AppendU16(out, 0xD800 + (cp >> 10));
      AppendU16(out, 0xDC00 + (cp & 0x3FF));
    } else {
      AppendU16(out, cp);
    }
  }
  return out;
}

}  // namespace katy
