#pragma once

#include <string>
#include <string_view>

namespace katy {

// Lowercase hex of bytes ("\x01\xab" -> "01ab"). Pure.
std::string LowerHex(std::string_view bytes);

// Lowercase hex HMAC-SHA256(key, data). Thread-safe.
std::string HmacSha256Hex(std::string_view key, std::string_view data);
// Lowercase hex SHA-256(data): a name for data too long or too free to be a key. Thread-safe.
std::string Sha256Hex(std::string_view data);

// Lowercase hex HMAC-SHA1(key, data), for Meta's legacy X-Hub-Signature header. Thread-safe.
std::string HmacSha1Hex(std::string_view key, std::string_view data);

// Compares in time that depends only on the lengths, never on where the inputs differ, so a
// signature cannot be guessed byte by byte from response timing.
bool ConstantTimeEquals(std::string_view a, std::string_view b);

}  // namespace katy
