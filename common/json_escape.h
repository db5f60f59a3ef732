#pragma once

#include <string>
#include <string_view>

namespace katy {

// Appends `text` escaped for use inside a JSON string literal (quotes not added). Bytes of
// UTF-8 are copied as they are; control characters become \uXXXX.
void AppendJsonEscaped(std::string& out, std::string_view text);

// Escapes the way Meta does on the wire: every non-ASCII code point as \uXXXX in lowercase hex
// (surrogate pairs above U+FFFF) and '/' as "\/". Input must be valid UTF-8 JSON text; the
// result is pure ASCII. Used by the emulator so that ingress sees exactly Meta's byte form.
std::string EscapeJsonLikeMeta(std::string_view json);

}  // namespace katy
