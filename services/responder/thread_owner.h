#pragma once

#include <chrono>
#include <cstdint>
#include <string>

#include "katy/v1/events.pb.h"

namespace katy::responder {

// Who has a conversation's thread (docs/handover.md). Katy answers only while nobody else has
// it: a person in the Page Inbox, another app, or someone in the terminal (katyctl conv pause).
struct ThreadOwner {
  std::string app_id;         // empty: Katy (or nobody, idle); else the app (or "person") that has it
  int64_t since_ms = 0;       // when it took the thread
  int64_t human_last_ms = 0;  // the last message a person sent as the page (an echo from another app)
  bool katy() const { return app_id.empty(); }
};

struct OwnershipSettings {
  std::string katy_app_id;             // KATY_APP_ID: tells Katy's own echoes and handovers from others'
  std::chrono::seconds human_timeout;  // KATY_HUMAN_TIMEOUT_S: silence after which Katy resumes; 0 never
};

// One step of the thread's ownership: what it becomes, and why when it changed.
struct OwnershipStep {
  ThreadOwner owner;
  std::string reason;  // "pass", "take", "standby", "echo", "timeout"; empty when unchanged
};

// The owner after `event`, handled at `now_ms` (epoch ms; changes are dated by the event's own
// timestamp when it has one, else now). First, a thread held by
// others comes back to Katy once `human_timeout` has passed since it was taken or since the
// person last wrote, whichever is later. Then the event:
//   pass_thread_control  the thread goes to the new owner: to Katy when that is Katy's app (or
//                        names no app, or Katy's app id is not configured: Meta sends this
//                        webhook to the app receiving the thread);
//   take_thread_control  the same, with an unknown new owner taken for another app (Meta sends
//                        it to the app losing the thread);
//   a standby event      another app has the thread;
//   an echo from another app (its app_id is not Katy's; needs KATY_APP_ID): a person answered
//                        as the page, who then has the thread; each such echo restarts the timeout.
// request_thread_control and everything else change nothing. Pure.
OwnershipStep NextOwner(const ThreadOwner& current, const katy::v1::InboundEvent& event,
                        const OwnershipSettings& settings, int64_t now_ms);

}  // namespace katy::responder
