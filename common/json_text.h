#pragma once

#include <nlohmann/json.hpp>
#include <string>

namespace katy {

// `value` as compact JSON text. Never throws: a string holding invalid UTF-8 (a byte cut from a
// sequence, a value from outside) has the invalid bytes replaced by U+FFFD, where a plain
// dump() throws, which would take a worker down with it. Found by the rules and Send API
// fuzzers (tests/fuzz/corpus/*/invalid_utf8).
inline std::string ToJsonText(const nlohmann::json& value) {
  return value.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace katy
