#pragma once

#include <algorithm>
#include <string>
#include <string_view>

#include "katy/v1/events.pb.h"

namespace katy {

// The kind's short lowercase name used in metrics, logs and katyctl ("message", "echo", ...).
std::string EventKindName(katy::v1::EventKind kind);

// "<hostname>-<pid>": names this process as a stream consumer and lease owner. A restarted
// process gets a new name; its old pending entries are taken over like any dead consumer's.
std::string InstanceId();

// Whether `text` can be one of Meta's numeric ids (a page, an Instagram account, an app): 1 to
// `max_length` decimal digits. Pure.
inline bool IsNumericId(std::string_view text, size_t max_length) {
  return !text.empty() && text.size() <= max_length &&
         std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; });
}

}  // namespace katy
