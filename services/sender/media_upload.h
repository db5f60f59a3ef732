#pragma once

#include <chrono>
#include <optional>
#include <string>

#include "services/sender/send_request.h"

namespace katy::sender {

// Reusable media (docs/sending.md, "Media"; docs/messenger-platform.md, "Attachments"): a
// message whose image, audio, video or file has a url and `is_reusable: true` goes out by the
// attachment_id of one upload through the Attachment Upload API, kept in Redis a day short of
// Meta's 90-day expiry of the id.
inline constexpr std::chrono::hours kAttachmentIdTtl{89 * 24};

struct ReusableMedia {
  std::string type;  // image, audio, video, file
  std::string url;
};

// The media of a Send API `message` body to upload once and reuse, or nullopt (text, templates,
// media already sent by attachment_id, or is_reusable not true). Pure.
std::optional<ReusableMedia> ReusableMediaOf(const std::string& message_json);

// The message with its media named by `attachment_id` instead of its url. Pure.
std::string WithAttachmentId(const std::string& message_json, const std::string& attachment_id);

// The Attachment Upload API call: POST <graph>/<page>/message_attachments with the page token
// (and appsecret_proof when `app_secret` is set), body {"message":{"attachment":{"type",
// "payload":{"url","is_reusable":true}}}}. Pure; the URL carries the token: never log it.
SendRequest BuildUploadRequest(const std::string& graph_url, const std::string& page_id, const ReusableMedia& media,
                               const std::string& page_token, const std::string& app_secret);

// The attachment_id of an upload's answer, or "" when it has none. Pure.
std::string UploadedAttachmentId(const std::string& body);

}  // namespace katy::sender
