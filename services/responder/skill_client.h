#pragma once

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "common/http/async_client.h"
#include "common/result.h"
#include "katy/v1/events.pb.h"
#include "services/responder/rules.h"

namespace katy::responder {

// What a skill answered.
struct SkillAnswer {
  std::vector<std::string> messages;  // Send API `message` objects, as JSON
  std::map<std::string, std::string> set_vars;
  std::optional<std::string> next_state;  // "" clears the state
  std::optional<Handover> handover;       // "handover": "inbox" | app id | "back" | {"to","reason"}
  std::vector<ReminderRequest> remind;    // "remind": as a rule's (reminders.h)
  std::vector<std::string> cancel;        // "cancel": reminder names
};

// The JSON a skill receives: {"event": {page, user, kind, mid, text, postback_payload,
// quick_reply_payload, attachments[{type,url}], timestamp}, "conversation": {state, vars,
// first_name}}. Pure.
std::string SkillRequestBody(const katy::v1::InboundEvent& event, const Conversation& conversation);

// Parses a skill's answer: {"messages": ["text" | {Send API message}, ...], "set": {name:
// value}, "state": "name" | null, "handover": "inbox" | "<app id>" | "back" | {"to", "reason"},
// "remind": {"after", "name", "keep"} or a list, "cancel": a name or a list}. At most 10 messages;
// each object needs `text` or `attachment`. Error code "skill_bad_answer" says what is wrong. Pure.
Result<SkillAnswer> ParseSkillAnswer(const std::string& body);

// POSTs the event to the skill within its timeout, once more if that fails (not after a 4xx
// or a malformed answer), and passes the parsed answer to `done`, once, on `http`'s loop
// thread (so `done` must not block). Returns at once: many skills wait together on one
// client. Error codes: "skill_timeout", "skill_unreachable", "skill_http_<status>",
// "skill_bad_answer".
void CallSkill(http::AsyncClient& http, const Skill& skill, const katy::v1::InboundEvent& event,
               const Conversation& conversation, std::function<void(Result<SkillAnswer>)> done);

}  // namespace katy::responder
