#include "services/responder/data_deletion.h"

#include <nlohmann/json.hpp>

#include "common/forget.h"
#include "common/hmac.h"
#include "common/log.h"

namespace katy::responder {

std::string IdsForPagesUrl(const PrivacySettings& settings, const std::string& app_scoped_id) {
  const std::string token = settings.app_id + "|" + settings.app_secret;
  return settings.graph_url + "/" + app_scoped_id + "/ids_for_pages?access_token=" + settings.app_id + "%7C" +
         settings.app_secret + "&appsecret_proof=" + HmacSha256Hex(settings.app_secret, token);
}

Result<std::vector<std::pair<std::string, std::string>>> PagesIn(const Result<http::Response>& answer) {
  if (!answer) return answer.error();
  if (answer->status != 200)
    return Error{ErrorCode::kReply, "ids_for_pages answered " + std::to_string(answer->status)};
  const auto json = nlohmann::json::parse(answer->body, nullptr, false);
  if (!json.is_object() || !json.contains("data") || !json["data"].is_array()) {
    return Error{ErrorCode::kReply, "ids_for_pages answered without data"};
  }
  std::vector<std::pair<std::string, std::string>> pages;
  for (const auto& item : json["data"]) {
    if (!item.is_object() || !item.contains("page") || !item["page"].is_object()) continue;
    const std::string psid = item.value("id", "");
    const std::string page = item["page"].value("id", "");
    if (!psid.empty() && !page.empty()) pages.emplace_back(page, psid);
  }
  return pages;
}

redis::HandleResult DataDeletions::Handle(redis::Client& client, const redis::StreamEntry& entry,
                                          const katy::v1::InboundEvent& event) const {
  if (!settings_.enabled()) return redis::HandleResult::Poison("data_deletion_not_configured");
  http::Client graph(settings_.timeout);
  auto pages = PagesIn(graph.Get(IdsForPagesUrl(settings_, event.user_id())));
  if (!pages) {
    log::Warn("data deletion waits: the page-scoped ids could not be read", {{"error", pages.error().message}});
    return redis::HandleResult::Retry("ids_for_pages_failed");
  }
  int people = 0;
  for (const auto& [page, psid] : *pages) {
    auto forgotten = ForgetPerson(client, keys_, page, psid);
    if (!forgotten) return redis::HandleResult::RedisFailed(forgotten.error());
    if (forgotten->Total() > 0) ++people;
  }
  // Redone whole if this fails: the second erase then finds nothing and the record says
  // nothing_found, which is what Katy holds by then all the same.
  auto recorded =
      client.Pipeline({{"SET", keys_.DeletionStatus(event.kind_key()), people > 0 ? "done" : "nothing_found", "EX",
                        std::to_string(settings_.status_ttl.count())},
                       {"XACK", entry.stream, KeySpace::kResponderGroup, entry.id}});
  if (!recorded) return redis::HandleResult::RedisFailed(recorded.error());
  log::Info("data deletion request carried out",
            {{"pages", static_cast<int64_t>(pages->size())}, {"people_erased", people}});
  return redis::HandleResult::Done();
}

}  // namespace katy::responder
