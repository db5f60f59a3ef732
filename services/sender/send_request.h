#pragma once

#include <optional>
#include <string>

#include "katy/v1/events.pb.h"

namespace katy::sender {

// The HTTP request for one OutboundMessage.
struct SendRequest {
  std::string url;   // <graph>/<page>/messages?access_token=...[&appsecret_proof=...]
  std::string body;  // Send API JSON
};

// Builds the Send API call: {"recipient":{"id"|"user_ref"},"messaging_type",["tag"],
// "message"|"sender_action"}; for a private reply {"recipient":{"comment_id"|"post_id"},
// "message"}; for a public reply under a comment, POST /{comment}/comments (or /replies on
// Instagram) with {"message": text}; for a thread-control message, the pass_thread_control or
// take_thread_control call ({"recipient","target_app_id","metadata"}). `appsecret_proof` is added when `app_secret` is
// non-empty. Returns nullopt when the message's JSON is unusable (the message must be dead-lettered). Pure,
// thread-safe. The URL carries the token: never log it.
std::optional<SendRequest> BuildSendRequest(const katy::v1::OutboundMessage& message, const std::string& graph_url,
                                            const std::string& page_token, const std::string& app_secret);

// The comment (or visitor's post) `message` answers: recipient_comment_id, else
// recipient_post_id; empty for a message to a person.
const std::string& CommentOf(const katy::v1::OutboundMessage& message);
// A private reply (docs/comments.md): to recipient.comment_id or post_id, one per comment, ever.
bool IsPrivateReply(const katy::v1::OutboundMessage& message);
// A private reply or a public reply under a comment: neither is in a Messenger conversation,
// so no 24 h window, typing or mark_seen applies.
bool IsAboutAComment(const katy::v1::OutboundMessage& message);

// <graph>/<page>/<edge>?access_token=...[&appsecret_proof=...]: a Graph call on the page with
// its token. Pure; the URL carries the token: never log it.
std::string PageEdgeUrl(const std::string& graph_url, const std::string& page_id, const std::string& edge,
                        const std::string& page_token, const std::string& app_secret);

}  // namespace katy::sender
