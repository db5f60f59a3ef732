#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <string>

namespace katy::responder {

// Where the law requires it, an automated experience must say it is automated at the
// beginning of a conversation, after a significant lapse of time, and when a chat moves from a
// person back to the bot (docs/messenger-platform.md, "Bot disclosure"). Katy sends a configured
// text before the bot's reply on each of those occasions, once per occasion.

struct DisclosureSettings {
  std::string text;            // KATY_BOT_DISCLOSURE; empty: off
  std::chrono::hours gap{24};  // KATY_BOT_DISCLOSURE_GAP_H: the significant lapse

  // The text for `page_id`: the rules file's (`by_page`, its bot_disclosure) when it names the
  // page, else `text`. Empty: no disclosure on that page.
  const std::string& TextFor(const std::string& page_id, const std::map<std::string, std::string>& by_page) const;
};

enum class DisclosureOccasion { kNone, kFirstReply, kAfterSilence, kHandedBack };

// What the conversation says about disclosure before the event.
struct DisclosureHistory {
  int64_t disclosed_ms = 0;  // when the bot last disclosed itself; 0 never
  int64_t last_user_ms = 0;  // the person's message before this event; 0 none
  int64_t returned_ms = 0;   // when the thread last came back to the bot from others; 0 never
};

// Whether the bot's reply to an event dated `at_ms` must be preceded by the disclosure, and on
// which occasion: the bot never disclosed itself in this conversation; the thread came back
// to the bot (`handed_back_now`, or since the last disclosure); or nothing was said for more
// than `gap` (since the person's previous message or the last disclosure, whichever is later).
// Pure.
DisclosureOccasion DisclosureDue(const DisclosureHistory& history, int64_t at_ms, bool handed_back_now,
                                 std::chrono::hours gap);

// The metric label of an occasion: first_reply, after_silence, handed_back ("" for none).
const char* OccasionName(DisclosureOccasion occasion);

}  // namespace katy::responder
