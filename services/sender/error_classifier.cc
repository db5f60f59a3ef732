#include "services/sender/error_classifier.h"

#include <nlohmann/json.hpp>

namespace katy::sender {
namespace {

using nlohmann::json;

struct Row {
  int code;
  int subcode;  // -1: any subcode
  SendAction action;
  const char* reason;
};

// docs/messenger-platform.md, "Send API errors", most specific rows first. The first matching row wins.
constexpr Row kTable[] = {
    {1, 1357046, SendAction::kDelivered, "already_delivered"},
    {613, 2018338, SendAction::kDeadLetter, "policy"},
    {200, 1545041, SendAction::kDeadLetter, "recipient_gone"},
    {10, 2018108, SendAction::kDeadLetter, "recipient_gone"},
    {100, 2018001, SendAction::kDeadLetter, "recipient_gone"},
    {10, 2018278, SendAction::kDeadLetter, "outside_window"},
    {10, 2534022, SendAction::kDeadLetter, "outside_window"},
    {10, 2018065, SendAction::kDeadLetter, "outside_window"},
    {10, 1893063, SendAction::kPausePage, "page_broken"},
    {10900, -1, SendAction::kDeadLetter, "comment_already_answered"},
    {10902, -1, SendAction::kDeadLetter, "comment_not_replyable"},
    {1, -1, SendAction::kRetry, "transient"},
    {2, -1, SendAction::kRetry, "transient"},
    {1200, -1, SendAction::kRetry, "transient"},
    {2018321, -1, SendAction::kRetry, "transient"},
    {4, -1, SendAction::kThrottle, "throttled"},
    {17, -1, SendAction::kThrottle, "throttled"},
    {32, -1, SendAction::kThrottle, "throttled"},
    {341, -1, SendAction::kThrottle, "throttled"},
    {613, -1, SendAction::kThrottle, "throttled"},
    {80001, -1, SendAction::kThrottle, "throttled"},
    {80006, -1, SendAction::kThrottle, "throttled"},
    {551, -1, SendAction::kDeadLetter, "recipient_gone"},
    {2018300, -1, SendAction::kDeadLetter, "policy"},
    {190, -1, SendAction::kPausePage, "page_broken"},
    {200, -1, SendAction::kPausePage, "page_broken"},
    {100, -1, SendAction::kDeadLetter, "bad_request"},
    {10, -1, SendAction::kDeadLetter, "bad_request"},
};

constexpr std::chrono::milliseconds kDefaultThrottle{1000};
constexpr std::chrono::milliseconds kUsageExhaustedWait{60000};

int IntField(const json& object, const char* key) {
  auto it = object.find(key);
  if (it == object.end()) return 0;
  if (it->is_number_integer()) return it->get<int>();
  if (it->is_string()) return std::atoi(it->get_ref<const std::string&>().c_str());
  return 0;
}

double NumberOf(const json& value) {
  if (value.is_number()) return value.get<double>();
  if (value.is_string()) return std::atof(value.get_ref<const std::string&>().c_str());
  return 0;
}

}  // namespace

std::chrono::milliseconds UsageBackoff(const std::map<std::string, std::string>& headers) {
  std::chrono::milliseconds wait{0};
  if (auto app = headers.find("x-app-usage"); app != headers.end()) {
    json usage = json::parse(app->second, nullptr, false);
    if (usage.is_object()) {
      for (const auto& [key, value] : usage.items()) {
        if (NumberOf(value) >= 100) wait = std::max(wait, kUsageExhaustedWait);
      }
    }
  }
  if (auto buc = headers.find("x-business-use-case-usage"); buc != headers.end()) {
    json usage = json::parse(buc->second, nullptr, false);
    if (usage.is_object()) {
      for (const auto& [id, entries] : usage.items()) {
        if (!entries.is_array()) continue;
        for (const auto& entry : entries) {
          if (!entry.is_object()) continue;
          // Meta's own estimate, when given, says how long; only without one does a figure at
          // 100 mean "stop for a while".
          if (entry.contains("estimated_time_to_regain_access")) {
            auto minutes = static_cast<long long>(NumberOf(entry["estimated_time_to_regain_access"]));
            wait = std::max(wait, std::chrono::milliseconds(minutes * 60000));
            continue;
          }
          for (const char* key : {"call_count", "total_cputime", "total_time"}) {
            if (entry.contains(key) && NumberOf(entry[key]) >= 100) wait = std::max(wait, kUsageExhaustedWait);
          }
        }
      }
    }
  }
  return wait;
}

Classification Classify(const SendResponse& response) {
  Classification out;
  const auto usage_wait = UsageBackoff(response.headers);
  if (!response.transport_error.empty() || response.http_status == 0) {
    // No answer: Meta may or may not have the message. Retrying risks one duplicate; dropping
    // risks a lost reply. Katy retries (at-least-once) and counts the risk.
    out.action = SendAction::kRetry;
    out.reason = "transient";
    return out;
  }
  if (response.http_status >= 200 && response.http_status < 300) {
    out.action = SendAction::kDelivered;
    out.reason = "delivered";
    out.wait = usage_wait;
    return out;
  }
  json body = json::parse(response.body, nullptr, false);
  if (body.is_object() && body.contains("error") && body["error"].is_object()) {
    out.code = IntField(body["error"], "code");
    out.subcode = IntField(body["error"], "error_subcode");
    for (const Row& row : kTable) {
      if (row.code == out.code && (row.subcode == -1 || row.subcode == out.subcode)) {
        out.action = row.action;
        out.reason = row.reason;
        if (out.action == SendAction::kThrottle) out.wait = std::max(kDefaultThrottle, usage_wait);
        return out;
      }
    }
  }
  // No known Graph error: fall back to the HTTP status.
  if (response.http_status == 429) {
    out.action = SendAction::kThrottle;
    out.reason = "throttled";
    out.wait = std::max(kDefaultThrottle, usage_wait);
  } else if (response.http_status >= 500) {
    out.action = SendAction::kRetry;
    out.reason = "transient";
  } else {
    out.action = SendAction::kDeadLetter;
    out.reason = out.code != 0 ? "unknown_error_" + std::to_string(out.code) : "bad_request";
  }
  return out;
}

const char* SendActionName(SendAction action) {
  switch (action) {
    case SendAction::kDelivered:
      return "delivered";
    case SendAction::kRetry:
      return "retry";
    case SendAction::kThrottle:
      return "throttle";
    case SendAction::kDeadLetter:
      return "dead_letter";
    case SendAction::kPausePage:
      return "pause_page";
  }
  return "unknown";
}

}  // namespace katy::sender
