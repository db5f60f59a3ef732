#include "tools/emulator/comment_book.h"

#include "common/message_tags.h"

namespace katy::emulator {
namespace {

GraphError NotReplyable() {
  return GraphError{400, 10902, 0, "OAuthException", "(#10902) This is not a Replyable activity"};
}

}  // namespace

Comment CommentBook::Add(Comment comment) {
  std::lock_guard lock(mutex_);
  const std::string n = std::to_string(++next_);
  if (comment.post_id.empty()) {
    // A page's post id is "<page>_<post>"; an Instagram media id is a number of its own.
    comment.post_id = comment.instagram ? "18000000000000000" : comment.page_id + "_900000000000000";
  }
  if (comment.visitor_post) {
    comment.post_id = comment.page_id + "_9100000000" + n;
    comment.id = comment.post_id;
  }
  if (comment.id.empty()) {
    const std::string post = comment.post_id.substr(comment.post_id.find('_') + 1);
    comment.id = comment.instagram ? "1790000000000" + n : post + "_1200000000" + n;
  }
  if (!by_id_.contains(comment.id)) order_.push_back(comment.id);
  by_id_[comment.id] = comment;
  return comment;
}

std::optional<Comment> CommentBook::Find(const std::string& id) const {
  std::lock_guard lock(mutex_);
  auto found = by_id_.find(id);
  if (found == by_id_.end()) return std::nullopt;
  return found->second;
}

std::variant<Comment, GraphError> CommentBook::TakePrivateReply(const std::string& id, int64_t now_ms) {
  std::lock_guard lock(mutex_);
  auto found = by_id_.find(id);
  if (found == by_id_.end()) return NotReplyable();
  Comment& comment = found->second;
  if (comment.answered) {
    return GraphError{400, 10900, 0, "OAuthException", "(#10900) Activity already replied to"};
  }
  if (now_ms - comment.created_ms > kPrivateReplyWindowMs) return NotReplyable();
  comment.answered = true;
  return comment;
}

std::variant<std::string, GraphError> CommentBook::AddPublicReply(const std::string& id, const std::string& text) {
  std::lock_guard lock(mutex_);
  auto found = by_id_.find(id);
  if (found == by_id_.end() || found->second.visitor_post) {
    return GraphError{400, 100, 33, "GraphMethodException",
                      "Unsupported post request. Object with ID '" + id + "' does not exist"};
  }
  found->second.public_replies.push_back(text);
  return id + "_r" + std::to_string(found->second.public_replies.size());
}

std::vector<Comment> CommentBook::OnPage(const std::string& page_id) const {
  std::lock_guard lock(mutex_);
  std::vector<Comment> out;
  for (const auto& id : order_) {
    const Comment& comment = by_id_.at(id);
    if (comment.page_id == page_id) out.push_back(comment);
  }
  return out;
}

nlohmann::json CommentChange(const Comment& comment, const std::string& verb, bool live) {
  using nlohmann::json;
  if (comment.instagram) {
    // Instagram: no verb, no creation time (Meta's Instagram webhook examples).
    return json{{"field", live ? "live_comments" : "comments"},
                {"value",
                 {{"from", {{"id", comment.author}, {"username", comment.author_name}}},
                  {"media", {{"id", comment.post_id}, {"media_product_type", live ? "LIVE" : "FEED"}}},
                  {"id", comment.id},
                  {"text", comment.text}}}};
  }
  json value{{"from", {{"id", comment.author}, {"name", comment.author_name}}},
             {"post_id", comment.post_id},
             {"created_time", comment.created_ms / 1000},
             {"item", comment.visitor_post ? "post" : "comment"},
             {"verb", verb}};
  if (!comment.visitor_post) {
    value["comment_id"] = comment.id;
    value["parent_id"] = comment.post_id;
  }
  if (verb != "remove") value["message"] = comment.text;
  return json{{"field", "feed"}, {"value", value}};
}

nlohmann::json CommentJson(const Comment& comment) {
  return nlohmann::json{{"id", comment.id},
                        {"post_id", comment.post_id},
                        {"page", comment.page_id},
                        {"platform", comment.instagram ? "instagram" : "messenger"},
                        {"author", comment.author},
                        {"author_name", comment.author_name},
                        {"text", comment.text},
                        {"created_ms", comment.created_ms},
                        {"answered", comment.answered},
                        {"public_replies", comment.public_replies}};
}

}  // namespace katy::emulator
