#include "services/responder/profile_client.h"

#include <nlohmann/json.hpp>

namespace katy::responder {

Result<http::Request> ProfileClient::Request(const std::string& page_id, const std::string& psid,
                                             bool instagram) const {
  auto token = tokens_.For(page_id);
  if (!token) return Error{ErrorCode::kConfig, "no page token for " + page_id, "no_token"};
  std::string base = instagram && !instagram_graph_url_.empty() ? instagram_graph_url_ : graph_url_;
  while (!base.empty() && base.back() == '/') base.pop_back();
  const char* fields = instagram ? "name" : "first_name,last_name";
  http::Request request;
  request.url = base + "/" + http::UrlEncode(psid) + "?fields=" + fields + "&access_token=" + http::UrlEncode(*token);
  request.timeout = timeout_;
  return request;
}

Result<std::string> ProfileClient::FirstNameIn(const Result<http::Response>& answer, bool instagram) {
  if (!answer) return answer.error();
  if (answer->status != 200)
    return Error{ErrorCode::kReply, answer->body.substr(0, 200), "http_" + std::to_string(answer->status)};
  auto profile = nlohmann::json::parse(answer->body, nullptr, false);
  const char* field = instagram ? "name" : "first_name";
  if (!profile.is_object() || !profile.contains(field) || !profile[field].is_string()) {
    return Error{ErrorCode::kReply, std::string("no ") + field + " in the profile", "bad_answer"};
  }
  std::string name = profile[field].get<std::string>();
  if (instagram) name = name.substr(0, name.find(' '));
  return name;
}

}  // namespace katy::responder
