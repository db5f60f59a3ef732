#include "services/responder/skill_client.h"

#include <nlohmann/json.hpp>

#include "common/events.h"
#include "common/json_text.h"
#include "common/log.h"

namespace katy::responder {

using nlohmann::json;

std::string SkillRequestBody(const katy::v1::InboundEvent& event, const Conversation& conversation) {
  json attachments = json::array();
  for (const auto& attachment : event.attachments()) {
    attachments.push_back({{"type", attachment.type()}, {"url", attachment.url()}});
  }
  json body{{"event",
             {{"page", event.page_id()},
              {"user", event.user_id()},
              {"kind", EventKindName(event.kind())},
              {"platform", event.platform().empty() ? "messenger" : event.platform()},
              {"mid", event.mid()},
              {"text", event.text()},
              {"postback_payload", event.postback_payload()},
              {"quick_reply_payload", event.quick_reply_payload()},
              {"attachments", attachments},
              {"referral",
               {{"ref", event.referral().ref()},
                {"source", event.referral().source()},
                {"type", event.referral().type()},
                {"ad_id", event.referral().ad_id()}}},
              {"timestamp", event.timestamp_ms()}}},
            {"conversation",
             {{"state", conversation.state}, {"vars", conversation.vars}, {"first_name", conversation.first_name}}}};
  return ToJsonText(body);
}

namespace {

// "remind": {"after": "30m", "name": "NUDGE", "keep": true} or a list of them; "cancel": a
// name or a list of names: as a rule's remind and cancel.
Status ParseSkillReminders(const nlohmann::json& answer, SkillAnswer& out) {
  auto bad = [](const std::string& why) { return Error{ErrorCode::kReply, why, "skill_bad_answer"}; };
  if (auto remind = answer.find("remind"); remind != answer.end()) {
    const nlohmann::json list = remind->is_array() ? *remind : nlohmann::json::array({*remind});
    for (const auto& item : list) {
      if (!item.is_object() || !item.contains("after") || !item["after"].is_string() || !item.contains("name") ||
          !item["name"].is_string()) {
        return bad(R"(remind is {"after": "30m", "name": "NUDGE"} or a list of them)");
      }
      ReminderRequest request;
      request.name = item["name"].get<std::string>();
      if (!IsReminderName(request.name)) return bad("remind: a name is 1 to 64 of A-Z, a-z, 0-9, _ and -");
      auto after = ParseReminderDelay(item["after"].get<std::string>());
      if (!after) return bad("remind: " + after.error().message);
      request.after = *after;
      request.keep = item.value("keep", false);
      out.remind.push_back(std::move(request));
    }
  }
  if (auto cancel = answer.find("cancel"); cancel != answer.end()) {
    const nlohmann::json list = cancel->is_array() ? *cancel : nlohmann::json::array({*cancel});
    for (const auto& name : list) {
      if (!name.is_string() || !IsReminderName(name.get<std::string>())) return bad("cancel names reminders");
      out.cancel.push_back(name.get<std::string>());
    }
  }
  return Ok{};
}

}  // namespace

Result<SkillAnswer> ParseSkillAnswer(const std::string& body) {
  auto bad = [](const std::string& why) { return Error{ErrorCode::kReply, why, "skill_bad_answer"}; };
  json answer = json::parse(body, nullptr, false);
  if (!answer.is_object()) return bad("the answer is not a JSON object");
  SkillAnswer out;
  if (auto messages = answer.find("messages"); messages != answer.end()) {
    if (!messages->is_array() || messages->size() > 10) return bad("messages must be a list of at most 10");
    for (const auto& message : *messages) {
      if (message.is_string()) {
        if (message.get<std::string>().empty()) return bad("an empty text message");
        out.messages.push_back(ToJsonText(json{{"text", message}}));
      } else if (message.is_object() && (message.contains("text") || message.contains("attachment"))) {
        out.messages.push_back(ToJsonText(message));
      } else {
        return bad("a message must be text or an object with text or attachment");
      }
    }
  }
  if (auto set = answer.find("set"); set != answer.end()) {
    if (!set->is_object()) return bad("set must be an object");
    for (const auto& [name, value] : set->items()) {
      out.set_vars[name] = value.is_string() ? value.get<std::string>() : ToJsonText(value);
    }
  }
  if (auto handover = answer.find("handover"); handover != answer.end()) {
    const bool object = handover->is_object();
    const json target = object ? handover->value("to", json()) : *handover;
    const json reason = object ? handover->value("reason", json("katy skill")) : json("katy skill");
    if (!target.is_string() || !reason.is_string()) return bad("handover must be a target or {to, reason}");
    out.handover = ParseHandoverTarget(target.get<std::string>(), reason.get<std::string>());
    if (!out.handover) return bad("handover is 'inbox', an app id or 'back'");
  }
  if (auto reminders = ParseSkillReminders(answer, out); !reminders) return reminders.error();
  if (auto state = answer.find("state"); state != answer.end()) {
    if (state->is_null())
      out.next_state = "";
    else if (state->is_string())
      out.next_state = state->get<std::string>();
    else
      return bad("state must be a string or null");
  }
  return out;
}

namespace {

// One attempt's answer: the call's result, or nullopt when another attempt may do better
// (`last` then says why this one failed).
std::optional<Result<SkillAnswer>> Judge(const Result<http::Response>& response, Error& last) {
  if (!response) {
    const bool timed_out = response.error().code == ErrorCode::kTimeout;
    last = Error{response.error().code, response.error().message, timed_out ? "skill_timeout" : "skill_unreachable"};
    return std::nullopt;
  }
  if (response->status < 200 || response->status >= 300) {
    // The skill's own words may repeat the person's: logged only where message text may be.
    std::string why = "the skill answered HTTP " + std::to_string(response->status);
    if (log::MessageTextAllowed()) why += ": " + response->body.substr(0, 200);
    last = Error{ErrorCode::kReply, std::move(why), "skill_http_" + std::to_string(response->status)};
    if (response->status < 500) return Result<SkillAnswer>(last);  // the skill refused this event
    return std::nullopt;
  }
  return ParseSkillAnswer(response->body);  // a malformed answer is not retried either
}

void Attempt(http::AsyncClient& http, http::Request request, int attempts_left,
             std::function<void(Result<SkillAnswer>)> done) {
  http::Request again = request;
  http.Submit(std::move(request), [&http, again = std::move(again), attempts_left,
                                   done = std::move(done)](const Result<http::Response>& response) mutable {
    Error last{ErrorCode::kConnect, "", "skill_unreachable"};
    if (auto judged = Judge(response, last)) return done(std::move(*judged));
    if (attempts_left <= 1) return done(last);
    Attempt(http, std::move(again), attempts_left - 1, std::move(done));
  });
}

}  // namespace

void CallSkill(http::AsyncClient& http, const Skill& skill, const katy::v1::InboundEvent& event,
               const Conversation& conversation, std::function<void(Result<SkillAnswer>)> done) {
  http::Request request;
  request.method = "POST";
  request.url = skill.url;
  request.body = SkillRequestBody(event, conversation);
  request.headers = {"Content-Type: application/json"};
  request.timeout = skill.timeout;
  Attempt(http, std::move(request), 2, std::move(done));
}

}  // namespace katy::responder
