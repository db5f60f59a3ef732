#include "services/responder/profile_client.h"

#include <nlohmann/json.hpp>

namespace katy::responder {

Result<std::string> ProfileClient::FirstName(http::Client& http, const std::string& page_id,
                                             const std::string& psid) const {
  auto token = tokens_.For(page_id);
  if (!token) return Error{ErrorCode::kConfig, "no page token for " + page_id, "no_token"};
  std::string base = graph_url_;
  while (!base.empty() && base.back() == '/') base.pop_back();
  http.set_timeout(timeout_);
  auto response = http.Get(base + "/" + http::UrlEncode(psid) +
                           "?fields=first_name,last_name&access_token=" + http::UrlEncode(*token));
  if (!response) return response.error();
  if (response->status != 200)
    return Error{ErrorCode::kReply, response->body.substr(0, 200), "http_" + std::to_string(response->status)};
  auto profile = nlohmann::json::parse(response->body, nullptr, false);
  if (!profile.is_object() || !profile.contains("first_name") || !profile["first_name"].is_string()) {
    return Error{ErrorCode::kReply, "no first_name in the profile", "bad_answer"};
  }
  return profile["first_name"].get<std::string>();
}

}  // namespace katy::responder
