#pragma once

// What the sender's stage files (sender_*.cc) share; not for other callers.

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

#include "common/http/http_client.h"
#include "common/log.h"
#include "common/result.h"
#include "katy/v1/events.pb.h"
#include "services/sender/error_classifier.h"
#include "services/sender/media_upload.h"

namespace katy::sender::internal {

// A page paused (by an operator or by Meta's answer) is looked at again this often.
constexpr std::chrono::milliseconds kPausedRecheck{1000};

// For Redis work whose failure changes no message's outcome, only its efficiency: a stale
// in-flight mark later counts a possible duplicate that was not one; a throttle not recorded
// lets other senders learn the limit from Meta themselves.
void WarnRedisFailure(std::string_view what, const Error& error);
template <typename T>
void LogIfFailed(const Result<T>& result, std::string_view what) {
  if (!result) WarnRedisFailure(what, result.error());
}

// The media in `body` that is uploaded once and then sent by attachment_id. Instagram takes
// media by url only (docs/messenger-platform.md, "Instagram").
std::optional<ReusableMedia> ReusableMediaFor(const katy::v1::OutboundMessage& message, const std::string& body);

// A call's outcome as the error classifier reads it.
SendResponse ToSendResponse(const Result<http::Response>& answer);

}  // namespace katy::sender::internal
