#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <variant>

#include "common/redis/reply.h"
#include "common/result.h"
#include "common/signed_request.h"
#include "katy/v1/events.pb.h"
#include "services/ingress/http_reply.h"

namespace katy::ingress {

// Meta's data deletion callback on the webhook port (docs/privacy.md): POST /data-deletion with
// a signed_request, and the status page its answer points to.
struct DeletionOptions {
  std::string app_secret;
  std::string public_url;      // KATY_PUBLIC_URL: where Meta and the person reach the webhook port
  int64_t status_ttl_s = 0;    // KATY_DELETION_STATUS_TTL_D: how long a request's outcome is kept
  SignedRequestBounds bounds;  // how old a signed request may be
  bool enabled() const { return !public_url.empty() && !app_secret.empty(); }
};

// A request to make durable (an event stored like a webhook's, deduplicated by its code, so
// Meta's retry of the same request is one deletion), and the answer once it is stored.
struct DeletionAccepted {
  katy::v1::InboundEvent event;
  std::string answer_json;  // {"url": ".../data-deletion/status?code=...", "confirmation_code": "..."}
};

// What POST /data-deletion answers before storage: the refusal (404 when not configured; 400
// for a missing, forged, expired or otherwise bad signed_request, with the reason it counts
// under), or the request to store. Nothing is stored for a refusal. Pure.
struct DeletionRefusal {
  int status = 400;
  std::string reason;   // counted in katy_ingress_rejections_total as deletion_<reason>
  std::string message;  // the answer's body
};
std::variant<DeletionRefusal, DeletionAccepted> CheckDeletionRequest(const DeletionOptions& options,
                                                                     std::string_view body, int64_t now_ms);

// GET /data-deletion/status?code=...: the code Katy gave, or the answer when it never gave it
// (404, saying nothing more). Pure.
std::variant<HttpReply, std::string> StatusCode(const DeletionOptions& options, std::string_view query);
// The status page for a code Katy gave, from its record (GET of KeySpace::DeletionStatus):
// done, nothing found, still being carried out, or no longer kept. Says no id. Pure.
HttpReply StatusAnswer(const DeletionOptions& options, std::string_view code, const Result<redis::Reply>& record,
                       int64_t now_ms);

}  // namespace katy::ingress
