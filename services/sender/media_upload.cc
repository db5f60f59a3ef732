#include "services/sender/media_upload.h"

#include <nlohmann/json.hpp>

#include "common/json_text.h"

namespace katy::sender {

using nlohmann::json;

std::optional<ReusableMedia> ReusableMediaOf(const std::string& message_json) {
  // Every text reply passes here: one look for the key spares them a JSON parse.
  if (message_json.find("\"is_reusable\"") == std::string::npos) return std::nullopt;
  const json message = json::parse(message_json, nullptr, false);
  if (!message.is_object() || !message.contains("attachment") || !message["attachment"].is_object()) {
    return std::nullopt;
  }
  const json& attachment = message["attachment"];
  const std::string type = attachment.value("type", "");
  if (type != "image" && type != "audio" && type != "video" && type != "file") return std::nullopt;
  const json payload = attachment.value("payload", json::object());
  if (!payload.is_object() || !payload.value("is_reusable", false) || !payload.contains("url") ||
      !payload["url"].is_string()) {
    return std::nullopt;
  }
  return ReusableMedia{type, payload["url"].get<std::string>()};
}

std::string WithAttachmentId(const std::string& message_json, const std::string& attachment_id) {
  json message = json::parse(message_json, nullptr, false);
  if (!message.is_object() || !message.contains("attachment")) return message_json;
  message["attachment"]["payload"] = {{"attachment_id", attachment_id}};
  return ToJsonText(message);
}

SendRequest BuildUploadRequest(const std::string& graph_url, const std::string& page_id, const ReusableMedia& media,
                               const std::string& page_token, const std::string& app_secret) {
  const json body{
      {"message", {{"attachment", {{"type", media.type}, {"payload", {{"url", media.url}, {"is_reusable", true}}}}}}}};
  return {PageEdgeUrl(graph_url, page_id, "message_attachments", page_token, app_secret), ToJsonText(body)};
}

std::string UploadedAttachmentId(const std::string& body) {
  const json answer = json::parse(body, nullptr, false);
  if (!answer.is_object() || !answer.contains("attachment_id")) return "";
  const json& id = answer["attachment_id"];
  if (id.is_string()) return id.get<std::string>();
  if (id.is_number_integer()) return id.dump();
  return "";
}

}  // namespace katy::sender
