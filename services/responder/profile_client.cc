#include "services/responder/profile_client.h"

#include <nlohmann/json.hpp>

namespace katy::responder {

Result<std::string> ProfileClient::FirstName(http::Client& http, const std::string& page_id, const std::string& psid,
                                             bool instagram) const {
  auto token = tokens_.For(page_id);
  if (!token) return Error{ErrorCode::kConfig, "no page token for " + page_id, "no_token"};
  std::string base = instagram && !instagram_graph_url_.empty() ? instagram_graph_url_ : graph_url_;
  while (!base.empty() && base.back() == '/') base.pop_back();
  http.set_timeout(timeout_);
  const char* fields = instagram ? "name" : "first_name,last_name";
  auto response =
      http.Get(base + "/" + http::UrlEncode(psid) + "?fields=" + fields + "&access_token=" + http::UrlEncode(*token));
  if (!response) return response.error();
  if (response->status != 200)
    return Error{ErrorCode::kReply, response->body.substr(0, 200), "http_" + std::to_string(response->status)};
  auto profile = nlohmann::json::parse(response->body, nullptr, false);
  const char* field = instagram ? "name" : "first_name";
  if (!profile.is_object() || !profile.contains(field) || !profile[field].is_string()) {
    return Error{ErrorCode::kReply, std::string("no ") + field + " in the profile", "bad_answer"};
  }
  std::string name = profile[field].get<std::string>();
  if (instagram) name = name.substr(0, name.find(' '));
  return name;
}

}  // namespace katy::responder
