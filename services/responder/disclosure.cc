#include "services/responder/disclosure.h"

#include <algorithm>

namespace katy::responder {

const std::string& DisclosureSettings::TextFor(const std::string& page_id,
                                               const std::map<std::string, std::string>& by_page) const {
  const auto page = by_page.find(page_id);
  return page != by_page.end() ? page->second : text;
}

DisclosureOccasion DisclosureDue(const DisclosureHistory& history, int64_t at_ms, bool handed_back_now,
                                 std::chrono::hours gap) {
  if (history.disclosed_ms == 0) return DisclosureOccasion::kFirstReply;
  if (handed_back_now || history.returned_ms > history.disclosed_ms) return DisclosureOccasion::kHandedBack;
  const int64_t last_said = std::max(history.disclosed_ms, history.last_user_ms);
  const int64_t gap_ms = std::chrono::duration_cast<std::chrono::milliseconds>(gap).count();
  if (at_ms - last_said > gap_ms) return DisclosureOccasion::kAfterSilence;
  return DisclosureOccasion::kNone;
}

const char* OccasionName(DisclosureOccasion occasion) {
  switch (occasion) {
    case DisclosureOccasion::kFirstReply:
      return "first_reply";
    case DisclosureOccasion::kAfterSilence:
      return "after_silence";
    case DisclosureOccasion::kHandedBack:
      return "handed_back";
    case DisclosureOccasion::kNone:
      break;
  }
  return "";
}

}  // namespace katy::responder
