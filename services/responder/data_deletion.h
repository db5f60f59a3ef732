#pragma once

#include <chrono>
#include <string>
#include <utility>
#include <vector>

#include "common/http/http_client.h"
#include "common/redis/redis_client.h"
#include "common/redis/sharded_consumer.h"
#include "common/result.h"
#include "common/shard.h"
#include "katy/v1/events.pb.h"

namespace katy::responder {

// What the responder keeps and for how long, and how it carries out Meta's data deletion
// requests (docs/privacy.md).
struct PrivacySettings {
  // KATY_CONVERSATION_TTL_D: a conversation's hash (state, variables, first name, windows)
  // expires this long after its last change.
  std::chrono::seconds conversation_ttl{90LL * 24 * 3600};
  std::string graph_url;   // KATY_GRAPH_URL
  std::string app_id;      // KATY_APP_ID
  std::string app_secret;  // KATY_APP_SECRET: the app access token is "<app id>|<app secret>"
  std::chrono::seconds status_ttl{90LL * 24 * 3600};  // KATY_DELETION_STATUS_TTL_D
  std::chrono::milliseconds timeout{10000};
  bool enabled() const { return !graph_url.empty() && !app_id.empty() && !app_secret.empty(); }
};

// Meta's data deletion callback, second half: ingress made the request durable as an
// EVENT_KIND_DATA_DELETION event; the responder that reads it maps the person's app-scoped id
// to their page-scoped ids and forgets each (common/forget.h).

// GET {graph}/{app-scoped id}/ids_for_pages with the app's token and appsecret_proof (Meta's ID
// Matching API): the URL. Pure.
std::string IdsForPagesUrl(const PrivacySettings& settings, const std::string& app_scoped_id);
// The (page id, page-scoped id) pairs in its answer; an Error for an HTTP error or an answer
// without `data`. An empty list is Meta knowing no page of the business the person used. Pure.
Result<std::vector<std::pair<std::string, std::string>>> PagesIn(const Result<http::Response>& answer);

// Carries out one deletion request: the mapping, an erase per page-scoped id, then the
// request's status record ("done" or "nothing_found", kept settings.status_ttl) and the entry's
// acknowledgement. Graph or Redis failing is kRetry (the entry stays, dead-lettered after the
// attempts, to be replayed); without KATY_APP_ID, KATY_APP_SECRET and a Graph URL it is kPoison
// ("data_deletion_not_configured"). Thread-safe.
class DataDeletions {
 public:
  DataDeletions(KeySpace keys, PrivacySettings settings) : keys_(std::move(keys)), settings_(std::move(settings)) {}

  redis::HandleResult Handle(redis::Client& client, const redis::StreamEntry& entry,
                             const katy::v1::InboundEvent& event) const;

 private:
  KeySpace keys_;
  PrivacySettings settings_;
};

}  // namespace katy::responder
