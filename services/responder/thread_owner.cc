#include "services/responder/thread_owner.h"

#include <algorithm>

namespace katy::responder {
namespace {

// Stands for an owner Meta did not name (a standby event, a take without new_owner_app_id).
constexpr const char* kOtherApp = "other";

bool TimedOut(const ThreadOwner& owner, const OwnershipSettings& settings, int64_t now_ms) {
  if (owner.katy() || settings.human_timeout.count() <= 0) return false;
  const int64_t quiet_since = std::max(owner.since_ms, owner.human_last_ms);
  return now_ms - quiet_since >= std::chrono::duration_cast<std::chrono::milliseconds>(settings.human_timeout).count();
}

// The owner a handover names, "" for Katy.
std::string HandoverOwner(const katy::v1::InboundEvent& event, const OwnershipSettings& settings) {
  const std::string& named = event.app_id();
  if (!settings.katy_app_id.empty() && named == settings.katy_app_id) return "";
  if (event.kind_key() == "pass_thread_control") {
    return named.empty() || settings.katy_app_id.empty() ? "" : named;
  }
  return named.empty() ? kOtherApp : named;  // take_thread_control
}

OwnershipStep Become(const ThreadOwner& current, std::string app_id, const char* reason, int64_t now_ms) {
  OwnershipStep step{current, ""};
  if (app_id == current.app_id) return step;
  step.owner.app_id = std::move(app_id);
  step.owner.since_ms = step.owner.katy() ? 0 : now_ms;
  step.owner.human_last_ms = 0;
  step.reason = reason;
  return step;
}

}  // namespace

OwnershipStep NextOwner(const ThreadOwner& current, const katy::v1::InboundEvent& event,
                        const OwnershipSettings& settings, int64_t now_ms) {
  OwnershipStep step{current, ""};
  if (TimedOut(current, settings, now_ms)) step = Become(current, "", "timeout", now_ms);

  // When it happened by Meta's clock (the event's timestamp), else now: a backlog in Katy's
  // queues must not count as the person's silence.
  const int64_t at = event.timestamp_ms() > 0 ? std::min(event.timestamp_ms(), now_ms) : now_ms;
  const std::string& kind = event.kind_key();
  if (event.kind() == katy::v1::EVENT_KIND_HANDOVER &&
      (kind == "pass_thread_control" || kind == "take_thread_control")) {
    auto next = Become(step.owner, HandoverOwner(event, settings), kind == "pass_thread_control" ? "pass" : "take", at);
    if (!next.reason.empty()) return next;
  } else if (event.standby() && step.owner.katy()) {
    return Become(step.owner, kOtherApp, "standby", at);
  } else if (event.kind() == katy::v1::EVENT_KIND_ECHO && !settings.katy_app_id.empty() &&
             event.app_id() != settings.katy_app_id) {
    const std::string person = event.app_id().empty() ? "person" : event.app_id();
    auto next = Become(step.owner, person, "echo", at);
    next.owner.human_last_ms = at;
    return next.reason.empty() && step.reason.empty() ? OwnershipStep{next.owner, ""} : next;
  }
  return step;
}

}  // namespace katy::responder
