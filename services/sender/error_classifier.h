#pragma once

#include <chrono>
#include <map>
#include <string>

namespace katy::sender {

// What to do after one Send API call (docs/messenger-platform.md, "Send API errors").
enum class SendAction {
  kDelivered,   // Meta accepted it (or it was already delivered): record and acknowledge
  kRetry,       // transient: retry with exponential backoff and jitter, bounded
  kThrottle,    // rate-limited: slow the page down, wait at least `wait`, then retry
  kDeadLetter,  // permanent for this message: never retry, dead-letter with `reason`
  kPausePage,   // the page cannot send at all (token, restriction): pause it, keep messages
};

struct Classification {
  SendAction action = SendAction::kRetry;
  std::string reason;                 // transient, throttled, recipient_gone, outside_window, bad_request,
                                      // page_broken, policy, already_delivered, delivered,
                                      // comment_already_answered, comment_not_replyable
  int code = 0;                       // Graph error code (0 when none)
  int subcode = 0;                    // Graph error_subcode (0 when none)
  std::chrono::milliseconds wait{0};  // for kThrottle: the least time to wait
};

// The result of one HTTP exchange as the classifier sees it.
struct SendResponse {
  long http_status = 0;         // 0 when the request never got an answer
  std::string transport_error;  // "timeout", "connect", "io" or "" (from http::Client)
  std::string body;
  std::map<std::string, std::string> headers;  // lowercase names
};

// Classifies by Graph `code`/`error_subcode` first and HTTP status only when the body carries
// no error (Meta has answered outside-window with 400 and transient errors with 500). Also reads
// X-App-Usage and X-Business-Use-Case-Usage: a success while a usage figure is at 100% or
// with estimated_time_to_regain_access still asks the caller to throttle (in `wait`) without
// retrying the delivered message. Pure, thread-safe.
Classification Classify(const SendResponse& response);

// Longest wait the usage headers ask for: a business use case's estimated_time_to_regain_access
// (minutes) when Meta gives one; else one minute when any X-App-Usage or
// X-Business-Use-Case-Usage figure has reached 100. Zero if none.
std::chrono::milliseconds UsageBackoff(const std::map<std::string, std::string>& headers);

const char* SendActionName(SendAction action);

}  // namespace katy::sender
