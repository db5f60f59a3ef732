#include "services/responder/ad_window.h"

#include <algorithm>

#include "common/message_tags.h"

namespace katy::responder {

std::optional<AdWindow> AdWindowAfter(const katy::v1::InboundEvent& event, int64_t at_ms, const AdWindow& before) {
  if (event.standby() || event.user_id().empty()) return std::nullopt;
  const bool clicked = event.has_referral() && event.referral().source() == "ADS";
  const bool message = event.kind() == katy::v1::EVENT_KIND_MESSAGE;
  if (message && (clicked || before.clicked_ms > 0)) {
    return AdWindow{0, std::max(before.until_ms, at_ms + kAdWindowMs)};
  }
  if (clicked && !message) return AdWindow{at_ms, before.until_ms};
  return std::nullopt;
}

}  // namespace katy::responder
