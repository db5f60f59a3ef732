#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include <nlohmann/json.hpp>

#include "tools/emulator/send_api.h"

namespace katy::emulator {

// A comment on a page's post (or an Instagram account's media), or a visitor's post on a Page.
struct Comment {
  std::string id;       // the comment's id; for a visitor's post, the post's (post_id)
  std::string post_id;  // the post or media it is on
  std::string page_id;  // the page or Instagram account
  bool instagram = false;
  bool visitor_post = false;
  std::string author;  // PSID or Instagram-scoped id; the page's own id for its own comments
  std::string author_name;
  std::string text;
  int64_t created_ms = 0;
  bool answered = false;                    // a private reply went to it
  std::vector<std::string> public_replies;  // texts posted under it, in order
};

// The comments people wrote through the emulator, and the replies they got, under Meta's rules
// for private replies (docs/messenger-platform.md, "Comments"): one per comment, ever, within
// kPrivateReplyWindowMs (common/message_tags.h) of it. Thread-safe.
class CommentBook {
 public:
  // Keeps `comment`, giving it an id (and a post id) when it has none; returns the kept copy.
  Comment Add(Comment comment);
  std::optional<Comment> Find(const std::string& id) const;
  // A private reply to `id` at `now_ms`: the comment (now answered), or the error Meta answers:
  // (#10900) for a comment answered already, (#10902) for one too old or unknown.
  std::variant<Comment, GraphError> TakePrivateReply(const std::string& id, int64_t now_ms);
  // A public reply under comment `id`: its new id, or Meta's error for an unknown comment.
  std::variant<std::string, GraphError> AddPublicReply(const std::string& id, const std::string& text);
  // Every comment on the page's or account's posts, oldest first.
  std::vector<Comment> OnPage(const std::string& page_id) const;

 private:
  mutable std::mutex mutex_;
  std::map<std::string, Comment> by_id_;
  std::vector<std::string> order_;
  uint64_t next_ = 0;
};

// The `changes` item Meta sends for `comment` with `verb` (add, edited, remove): field `feed`
// for a Page, `comments` (or `live_comments`) for an Instagram account, in the shapes of Meta's
// webhook references. Pure.
nlohmann::json CommentChange(const Comment& comment, const std::string& verb, bool live = false);

// The comment as /_emulator/comments lists it. Pure.
nlohmann::json CommentJson(const Comment& comment);

}  // namespace katy::emulator
