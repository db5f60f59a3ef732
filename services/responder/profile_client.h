#pragma once

#include <chrono>
#include <string>

#include "common/http/http_client.h"
#include "common/page_tokens.h"
#include "common/result.h"

namespace katy::responder {

// Reads a user's first name from the Graph user profile API
// (GET {graph}/{psid}?fields=first_name&access_token=...), for {{first_name}}. Instagram's
// profile has no first name: its `name`'s first word stands in (GET {graph}/{igsid}?fields=name,
// at the Instagram base when one is set). A profile is optional: callers fall back to a neutral
// word on any error. The call itself is the caller's to make (on an http::AsyncClient).
// Thread-safe.
class ProfileClient {
 public:
  ProfileClient(std::string graph_url, const PageTokens& tokens, std::chrono::milliseconds timeout,
                std::string instagram_graph_url = "")
      : graph_url_(std::move(graph_url)),
        instagram_graph_url_(std::move(instagram_graph_url)),
        tokens_(tokens),
        timeout_(timeout) {}

  // The call that asks for the user's first name (with the profile timeout), or an Error
  // ("no_token").
  Result<http::Request> Request(const std::string& page_id, const std::string& psid, bool instagram = false) const;
  // The first name in that call's answer, or an Error ("timeout", "http_<status>",
  // "bad_answer", ...).
  static Result<std::string> FirstNameIn(const Result<http::Response>& answer, bool instagram = false);

  bool enabled() const { return !graph_url_.empty() && !tokens_.empty(); }

 private:
  std::string graph_url_;
  std::string instagram_graph_url_;
  const PageTokens& tokens_;
  std::chrono::milliseconds timeout_;
};

}  // namespace katy::responder
