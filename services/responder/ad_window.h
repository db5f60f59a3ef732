#pragma once

#include <cstdint>
#include <optional>

#include "katy/v1/events.pb.h"

namespace katy::responder {

// Meta's standard window lasts 24 hours after a person's message, but 7 days after their first
// message following a click on a Click-to-Messenger or Click-to-Direct ad
// (docs/messenger-platform.md, "The standard messaging window"). An ad click is a referral
// with source ADS: alone (an existing thread), on a postback (Get Started in a new thread) or
// on the message itself.

// What the conversation already says about ads.
struct AdWindow {
  int64_t clicked_ms = 0;  // an ad click not yet followed by a message; 0 none
  int64_t until_ms = 0;    // the end of the 7 days an ad-started conversation has; 0 none
};

// What `event`, dated `at_ms`, changes: a click is remembered until the person's next message;
// that message (or a message carrying the click) opens 7 days from its own time. nullopt when
// nothing changes. Events in standby and events of no person change nothing, as for the
// user's last message. Pure.
std::optional<AdWindow> AdWindowAfter(const katy::v1::InboundEvent& event, int64_t at_ms, const AdWindow& before);

}  // namespace katy::responder
