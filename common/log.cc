#include "common/log.h"

#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <ctime>
#include <string>

#include "common/json_escape.h"

namespace katy::log {
namespace {

std::string g_service = "katy";
std::atomic<int> g_level{static_cast<int>(Level::kInfo)};

const char* LevelName(Level level) {
  switch (level) {
    case Level::kDebug:
      return "debug";
    case Level::kInfo:
      return "info";
    case Level::kWarn:
      return "warn";
    case Level::kError:
      return "error";
  }
  return "info";
}

void AppendTimestamp(std::string& out) {
  auto now = std::chrono::system_clock::now();
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count();
  std::time_t secs = ms / 1000;
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[96];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<int>(ms % 1000));
  out += buf;
}

void AppendValue(std::string& out, const Value& value) {
  std::visit(
      [&out](const auto& v) {
        using T = std::decay_t<decltype(v)>;
        if constexpr (std::is_same_v<T, RawJson>) {
          out += v.text;
        } else if constexpr (std::is_same_v<T, bool>) {
          out += v ? "true" : "false";
        } else if constexpr (std::is_same_v<T, std::string> || std::is_same_v<T, std::string_view>) {
          out += '"';
          AppendJsonEscaped(out, v);
          out += '"';
        } else if constexpr (std::is_same_v<T, const char*>) {
          out += '"';
          AppendJsonEscaped(out, v ? std::string_view(v) : std::string_view());
          out += '"';
        } else if constexpr (std::is_same_v<T, double>) {
          char buf[32];
          std::snprintf(buf, sizeof buf, "%.6g", v);
          out += buf;
        } else {
          out += std::to_string(v);
        }
      },
      value);
}

}  // namespace

void Init(std::string service, Level level) {
  g_service = std::move(service);
  g_level = static_cast<int>(level);
}

bool ParseLevel(std::string_view text, Level* level) {
  if (text == "debug")
    *level = Level::kDebug;
  else if (text == "info")
    *level = Level::kInfo;
  else if (text == "warn" || text == "warning")
    *level = Level::kWarn;
  else if (text == "error")
    *level = Level::kError;
  else
    return false;
  return true;
}

namespace {
std::atomic<bool> g_message_text{false};
}  // namespace

void AllowMessageText(bool allowed) { g_message_text = allowed; }
bool MessageTextAllowed() { return g_message_text.load(std::memory_order_relaxed); }

bool Enabled(Level level) { return static_cast<int>(level) >= g_level.load(std::memory_order_relaxed); }

void Write(Level level, std::string_view msg, std::initializer_list<Field> fields) {
  std::string line;
  line.reserve(160);
  line += R"({"ts":")";
  AppendTimestamp(line);
  line += R"(","level":")";
  line += LevelName(level);
  line += R"(","service":")";
  AppendJsonEscaped(line, g_service);
  line += R"(","msg":")";
  AppendJsonEscaped(line, msg);
  line += '"';
  for (const auto& [key, value] : fields) {
    line += ",\"";
    AppendJsonEscaped(line, key);
    line += "\":";
    AppendValue(line, value);
  }
  line += "}\n";
  // One write(2) per line: the kernel keeps it whole with respect to other threads' lines.
  const char* data = line.data();
  size_t left = line.size();
  while (left > 0) {
    ssize_t n = ::write(STDOUT_FILENO, data, left);
    if (n <= 0) break;
    data += n;
    left -= static_cast<size_t>(n);
  }
}

void RateLimited::Write(Level level, std::string_view msg, std::initializer_list<Field> fields) {
  if (!Enabled(level)) return;
  long long now =
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch())
          .count();
  long long next = next_allowed_ms_.load(std::memory_order_relaxed);
  if (now < next || !next_allowed_ms_.compare_exchange_strong(next, now + interval_ms_)) {
    suppressed_.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  long long held_back = suppressed_.exchange(0);
  if (held_back == 0) {
    log::Write(level, msg, fields);
    return;
  }
  std::string with_count = std::string(msg) + " (" + std::to_string(held_back) + " similar messages suppressed)";
  log::Write(level, with_count, fields);
}

}  // namespace katy::log
