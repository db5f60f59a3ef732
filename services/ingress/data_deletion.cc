#include "services/ingress/data_deletion.h"

#include <nlohmann/json.hpp>

#include "services/ingress/http1.h"

namespace katy::ingress {
namespace {

constexpr int64_t kDayS = 24 * 3600;

HttpReply Page(int status, std::string text) { return HttpReply{status, std::move(text), 0, {}}; }

}  // namespace

std::variant<DeletionRefusal, DeletionAccepted> CheckDeletionRequest(const DeletionOptions& options,
                                                                     std::string_view body, int64_t now_ms) {
  if (!options.enabled()) {
    return DeletionRefusal{404, "not_configured", "data deletion is not configured here (KATY_PUBLIC_URL)"};
  }
  // A form body is a query string: the same decoding.
  const std::optional<std::string> signed_request = QueryParam(body, "signed_request");
  if (!signed_request) return DeletionRefusal{400, "no_signed_request", "the form has no signed_request"};
  auto request = ParseSignedRequest(*signed_request, options.app_secret, now_ms / 1000, options.bounds);
  if (!request) return DeletionRefusal{400, request.error().reason, request.error().message};

  DeletionAccepted accepted;
  const std::string code = DeletionCode(*signed_request, options.app_secret, request->issued_at_s);
  katy::v1::InboundEvent& event = accepted.event;
  event.set_kind(katy::v1::EVENT_KIND_DATA_DELETION);
  event.set_user_id(request->user_id);
  event.set_kind_key(code);
  event.set_dedupe_key("deletion:" + code);
  event.set_timestamp_ms(request->issued_at_s * 1000);
  event.set_received_at_ms(now_ms);
  accepted.answer_json = nlohmann::json{
      {"url", options.public_url + "/data-deletion/status?code=" + code},
      {"confirmation_code",
       code}}.dump();
  return accepted;
}

std::variant<HttpReply, std::string> StatusCode(const DeletionOptions& options, std::string_view query) {
  const std::optional<std::string> code = QueryParam(query, "code");
  if (!options.enabled() || !code || !IssuedAtOfDeletionCode(*code, options.app_secret)) {
    return Page(404, "No data deletion request has this confirmation code.\n");
  }
  return *code;
}

HttpReply StatusAnswer(const DeletionOptions& options, std::string_view code, const Result<redis::Reply>& record,
                       int64_t now_ms) {
  if (!record || record->IsError()) {
    return HttpReply{503, "The status of this request cannot be read right now; try again shortly.\n", 5, {}};
  }
  const std::string heading = "Data deletion request " + std::string(code) + ": ";
  if (record->str == "done") {
    return Page(200, heading + "done. Everything this bot held about you has been erased.\n");
  }
  if (record->str == "nothing_found") {
    return Page(200, heading + "done. This bot held nothing about you.\n");
  }
  const int64_t issued_s = IssuedAtOfDeletionCode(code, options.app_secret).value_or(0);
  if (now_ms / 1000 - issued_s > options.status_ttl_s) {
    return Page(
        404, heading + "its outcome is no longer kept (" + std::to_string(options.status_ttl_s / kDayS) + " days).\n");
  }
  return Page(200, heading + "received, and being carried out. Check again in a few minutes.\n");
}

}  // namespace katy::ingress
