#pragma once

#include <atomic>
#include <chrono>
#include <initializer_list>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace katy::log {

enum class Level { kDebug = 0, kInfo = 1, kWarn = 2, kError = 3 };

// A field value that is already JSON (an object or array) and is written as it is.
struct RawJson {
  std::string text;
};

// A field value: strings are JSON-escaped, numbers and booleans written bare.
using Value = std::variant<std::string, std::string_view, const char*, long long, int, unsigned, unsigned long,
                           unsigned long long, long, double, bool, RawJson>;
using Field = std::pair<std::string_view, Value>;

// Set once at start-up, before any thread logs. `service` becomes the "service" key of every
// line. Not thread-safe with concurrent logging.
void Init(std::string service, Level level);

// Parses "debug", "info", "warn"/"warning", "error"; returns false for anything else.
bool ParseLevel(std::string_view text, Level* level);

bool Enabled(Level level);

// What people write and what the bot answers stays out of the logs unless the operator allows
// it (KATY_LOG_MESSAGE_TEXT, for debugging). Lines that would carry it add it only when
// MessageTextAllowed(). Set once at start-up.
void AllowMessageText(bool allowed);
bool MessageTextAllowed();

// Writes one JSON object per line to stdout: {"ts","level","service","msg",...fields}.
// Thread-safe: a line is written with one write(2) so lines of different threads never mix.
// Never pass secrets as fields.
void Write(Level level, std::string_view msg, std::initializer_list<Field> fields = {});

inline void Debug(std::string_view msg, std::initializer_list<Field> fields = {}) {
  if (Enabled(Level::kDebug)) Write(Level::kDebug, msg, fields);
}
inline void Info(std::string_view msg, std::initializer_list<Field> fields = {}) {
  if (Enabled(Level::kInfo)) Write(Level::kInfo, msg, fields);
}
inline void Warn(std::string_view msg, std::initializer_list<Field> fields = {}) {
  if (Enabled(Level::kWarn)) Write(Level::kWarn, msg, fields);
}
inline void Error(std::string_view msg, std::initializer_list<Field> fields = {}) {
  if (Enabled(Level::kError)) Write(Level::kError, msg, fields);
}

// Lets through at most one message per `interval` (plus a count of what it held back), so a
// failure repeated thousands of times a second cannot flood the log. Thread-safe.
class RateLimited {
 public:
  explicit RateLimited(std::chrono::milliseconds interval) : interval_ms_(interval.count()) {}
  void Write(Level level, std::string_view msg, std::initializer_list<Field> fields = {});

 private:
  long long interval_ms_;
  std::atomic_llong next_allowed_ms_{0};
  std::atomic_llong suppressed_{0};
};

}  // namespace katy::log
