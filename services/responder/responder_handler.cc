#include "services/responder/responder_handler.h"

#include <algorithm>
#include <atomic>

#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <map>
#include <mutex>
#include <random>
#include <utility>

#include "common/events.h"
#include "common/forget.h"
#include "common/grpc/conversation_control.h"
#include "common/http/http_client.h"
#include "common/json_text.h"
#include "common/log.h"
#include "katy/v1/events.pb.h"
#include "services/responder/skill_client.h"

namespace katy::responder {
namespace {

// One commit of a shard's events of a batch, fenced once by the shard's lease.
// KEYS[1] outbound stream, KEYS[2] inbound stream, KEYS[3] lease, KEYS[4] the shard's set of
// conversations others have the thread of: an index for the metrics (the conversation hash
// holds the owner), living as long as a conversation after its last addition, so a shard whose
// threads stopped moving leaves nothing behind; KEYS[5] the shard's timers; then each event's
// conversation hash, KEYS[5 + e] for the e-th event.
// ARGV[1] group, ARGV[2] conversation TTL (s), ARGV[3] lease owner, then per event the number
// of its arguments, then those: its inbound entry id, "1" when the conversation's lifetime is
// renewed (ConversationRenewalDue), n = number of HSET pairs, then 2n values, then m = number
// of HDEL fields, m names, then "add", "rem" or "" and the conversation (for KEYS[4]), then
// r = number of timers to remove from KEYS[5], r members, then z = number of timers to add, z
// score and member pairs, then one serialized OutboundMessage per reply. Each of HSET, HDEL,
// ZREM and ZADD is one call whatever its number of fields.
// Returns -2 (and does nothing) when this instance no longer owns the shard, else one number
// per event: the replies it added, or -1 when it was already committed (and nothing of it is
// done again).
constexpr const char* kCommitLua = R"lua(
if redis.call('GET', KEYS[3]) ~= ARGV[3] then return -2 end
local function commit(conversation, i, last)
  if redis.call('XACK', KEYS[2], ARGV[1], ARGV[i]) == 0 then return -1 end
  local renew = ARGV[i + 1] == '1'
  i = i + 2
  local n = tonumber(ARGV[i]); i = i + 1
  if n > 0 then redis.call('HSET', conversation, unpack(ARGV, i, i + 2 * n - 1)) end
  i = i + 2 * n
  local m = tonumber(ARGV[i]); i = i + 1
  if m > 0 then redis.call('HDEL', conversation, unpack(ARGV, i, i + m - 1)) end
  i = i + m
  if ARGV[i] == 'add' then
    redis.call('SADD', KEYS[4], ARGV[i + 1])
    redis.call('EXPIRE', KEYS[4], ARGV[2])
  end
  if ARGV[i] == 'rem' then redis.call('SREM', KEYS[4], ARGV[i + 1]) end
  i = i + 2
  local r = tonumber(ARGV[i]); i = i + 1
  if r > 0 then redis.call('ZREM', KEYS[5], unpack(ARGV, i, i + r - 1)) end
  i = i + r
  local z = tonumber(ARGV[i]); i = i + 1
  if z > 0 then redis.call('ZADD', KEYS[5], unpack(ARGV, i, i + 2 * z - 1)) end
  i = i + 2 * z
  if renew and (n > 0 or m > 0) then redis.call('EXPIRE', conversation, ARGV[2]) end
  local added = 0
  for k = i, last do
    redis.call('XADD', KEYS[1], '*', 'pb', ARGV[k])
    added = added + 1
  end
  return added
end
local results = {}
local at = 4
while at <= #ARGV do
  local size = tonumber(ARGV[at])
  results[#results + 1] = commit(KEYS[5 + #results + 1], at + 1, at + size)
  at = at + size + 1
end
return results
)lua";

constexpr int64_t kProfileFreshMs = 24LL * 3600 * 1000;  // re-read a name once a day
constexpr int64_t kProfileRetryMs = 10LL * 60 * 1000;    // after a failure, do not ask for 10 min

// Runs `all_done` once, after every call counted with Start has ended (End) and counting is
// over (Seal): the last of them, on whichever thread ends it. Cheap to copy.
class Countdown {
 public:
  explicit Countdown(std::function<void()> all_done)
      : left_(std::make_shared<std::atomic<size_t>>(1)),
        all_done_(std::make_shared<std::function<void()>>(std::move(all_done))) {}
  void Start() const { left_->fetch_add(1); }
  void End() const {
    if (left_->fetch_sub(1) == 1) (*all_done_)();
  }
  void Seal() const { End(); }  // the count's own 1: nothing ends it before every call started

 private:
  std::shared_ptr<std::atomic<size_t>> left_;
  std::shared_ptr<std::function<void()>> all_done_;
};

size_t PickRandom(size_t n) {
  thread_local std::mt19937 generator{std::random_device{}()};
  return std::uniform_int_distribution<size_t>(0, n - 1)(generator);
}

bool ProfileDue(const Conversation& conversation, int64_t now) {
  if (conversation.profile_checked_ms == 0) return true;
  const int64_t age = now - conversation.profile_checked_ms;
  return conversation.first_name.empty() ? age > kProfileRetryMs : age > kProfileFreshMs;
}

Conversation ReadConversation(const redis::Reply& hash) {
  Conversation conversation;
  std::map<std::string, std::string> timers;
  conversation.first_contact = true;
  for (size_t i = 0; i + 1 < hash.elements.size(); i += 2) {
    const std::string& field = hash.elements[i].str;
    const std::string& value = hash.elements[i + 1].str;
    if (field == "state")
      conversation.state = value;
    else if (field == "first_name")
      conversation.first_name = value;
    else if (field == "first_seen_ms")
      conversation.first_contact = false;
    else if (field == "profile_checked_ms")
      conversation.profile_checked_ms = std::atoll(value.c_str());
    else if (field == "owner")
      conversation.owner = value;
    else if (field == "owner_since_ms")
      conversation.owner_since_ms = std::atoll(value.c_str());
    else if (field == "human_last_ms")
      conversation.human_last_ms = std::atoll(value.c_str());
    else if (field == "ad_clicked_ms")
      conversation.ad.clicked_ms = std::atoll(value.c_str());
    else if (field == "ad_window_until_ms")
      conversation.ad.until_ms = std::atoll(value.c_str());
    else if (field == "last_user_ms")
      conversation.disclosure.last_user_ms = std::atoll(value.c_str());
    else if (field == "disclosed_ms")
      conversation.disclosure.disclosed_ms = std::atoll(value.c_str());
    else if (field == "returned_ms")
      conversation.disclosure.returned_ms = std::atoll(value.c_str());
    else if (field == "opted_out_ms")
      conversation.opted_out_ms = std::atoll(value.c_str());
    else if (field == "kept_from_ms")
      conversation.kept_from_ms = std::atoll(value.c_str());
    else if (field.rfind("var:", 0) == 0)
      conversation.vars[field.substr(4)] = value;
    else if (field.rfind("timer:", 0) == 0)
      timers[field] = value;
  }
  conversation.reminders = PendingReminders(timers);
  return conversation;
}

}  // namespace

Result<size_t> RulesHolder::Reload() {
  auto loaded = LoadRulesFile(path_);
  if (!loaded) return loaded.error();
  size_t count = loaded->rules.size();
  for (const auto& warning : loaded->warnings)
    log::Warn("rules: allowed, but probably not what you want", {{"why", warning}});
  auto rules = std::make_shared<const RuleSet>(std::move(*loaded));
  std::lock_guard lock(mutex_);
  rules_ = std::move(rules);
  return count;
}

std::shared_ptr<const RuleSet> RulesHolder::Current() const {
  std::lock_guard lock(mutex_);
  return rules_;
}

ResponderMetrics::ResponderMetrics(prometheus::Registry& registry)
    : events(prometheus::BuildCounter()
                 .Name("katy_responder_events_total")
                 .Help("Inbound events processed, by kind and rule")
                 .Register(registry)),
      replies(prometheus::BuildCounter()
                  .Name("katy_responder_replies_total")
                  .Help("Reply messages enqueued for the sender")
                  .Register(registry)
                  .Add({})),
      latency(prometheus::BuildHistogram()
                  .Name("katy_responder_processing_seconds")
                  .Help("Time to process one inbound event")
                  .Register(registry)
                  .Add({}, metrics::LatencyBuckets())),
      skill_calls(prometheus::BuildCounter()
                      .Name("katy_responder_skill_calls_total")
                      .Help("Skill calls by rule and result")
                      .Register(registry)),
      skill_latency(prometheus::BuildHistogram()
                        .Name("katy_responder_skill_seconds")
                        .Help("Skill call time by rule, retry included")
                        .Register(registry)),
      profile_fetches(prometheus::BuildCounter()
                          .Name("katy_responder_profile_fetches_total")
                          .Help("Graph user profile reads by result")
                          .Register(registry)),
      handovers(prometheus::BuildCounter()
                    .Name("katy_responder_handovers_total")
                    .Help("Thread ownership changes, by direction (to_others, to_katy) and reason")
                    .Register(registry)),
      withheld(prometheus::BuildCounter()
                   .Name("katy_responder_replies_withheld_total")
                   .Help("Replies not sent because a person or another app had the thread")
                   .Register(registry)
                   .Add({})),
      reminders(prometheus::BuildCounter()
                    .Name("katy_reminders_total")
                    .Help("Reminders by action: scheduled, cancelled (the person wrote, or a rule), fired")
                    .Register(registry)),
      disclosures(
          prometheus::BuildCounter()
              .Name("katy_responder_disclosures_total")
              .Help("Bot disclosures sent before a reply, by occasion (first_reply, after_silence, handed_back)")
              .Register(registry)),
      privacy(
          prometheus::BuildCounter()
              .Name("katy_responder_privacy_actions_total")
              .Help("People's privacy requests carried out, by action (opt_out, opt_in, forget, data_deletion, scrub)")
              .Register(registry)) {}

ResponderHandler::ResponderHandler(KeySpace keys, const RulesHolder& rules, ResponderMetrics& metrics, Clock now_ms,
                                   const ProfileClient* profiles, OwnershipSettings ownership,
                                   const http::AsyncClientOptions& skill_calls, DisclosureSettings disclosure,
                                   PrivacySettings privacy)
    : keys_(keys),
      rules_(rules),
      metrics_(metrics),
      now_ms_(std::move(now_ms)),
      profiles_(profiles),
      ownership_(std::move(ownership)),
      disclosure_(std::move(disclosure)),
      conversation_ttl_s_(privacy.conversation_ttl.count()),
      deletions_(std::move(keys), std::move(privacy)),
      commit_script_(kCommitLua),
      skills_(skill_calls) {}

bool ConversationRenewalDue(int64_t kept_from_ms, int64_t now_ms, std::chrono::seconds lifetime) {
  constexpr int64_t kDayMs = 24LL * 3600 * 1000;
  const int64_t every_ms = std::min<int64_t>(kDayMs, lifetime.count() * 1000 / 10);
  return kept_from_ms <= 0 || now_ms - kept_from_ms >= every_ms;
}

std::string ConversationOfEvent(const redis::StreamEntry& entry) {
  katy::v1::InboundEvent event;
  auto payload = entry.Field("pb");
  if (!payload || !event.ParseFromString(*payload)) return "";
  return event.page_id() + ":" + event.user_id();
}

namespace {

// The conversation hash's changes: HSET field/value pairs and HDEL fields; and whether the
// conversation joins ("add") or leaves ("rem") the shard's set of threads others have.
struct ConversationUpdate {
  std::vector<std::string> hset;
  std::vector<std::string> hdel;
  std::string owned_op;
  std::vector<std::string> timers_removed;  // the shard's timers: members to ZREM
  std::vector<std::string> timers_added;    // and score, member pairs to ZADD
};

// What an ad click or the message after it does to the conversation's window (ad_window.h).
void RecordAdWindow(const katy::v1::InboundEvent& event, int64_t at, const Conversation& conversation,
                    ConversationUpdate& update) {
  const auto after = AdWindowAfter(event, at, conversation.ad);
  if (!after) return;
  if (after->clicked_ms > 0) {
    update.hset.insert(update.hset.end(), {"ad_clicked_ms", std::to_string(after->clicked_ms)});
  } else if (conversation.ad.clicked_ms > 0) {
    update.hdel.emplace_back("ad_clicked_ms");
  }
  if (after->until_ms != conversation.ad.until_ms) {
    update.hset.insert(update.hset.end(), {"ad_window_until_ms", std::to_string(after->until_ms)});
  }
}

// What the event itself says about the conversation (last user message, an ad's window,
// receipts) and what the decision sets (variables, state).
void RecordEvent(const katy::v1::InboundEvent& event, const Conversation& conversation, const Decision& decision,
                 ConversationUpdate& update) {
  auto& hset = update.hset;
  const int64_t at = event.timestamp_ms() > 0 ? event.timestamp_ms() : event.received_at_ms();
  RecordAdWindow(event, at, conversation, update);
  if (IsReplyable(event)) {
    hset.insert(hset.end(), {"last_user_ms", std::to_string(at)});
    if (conversation.first_contact) hset.insert(hset.end(), {"first_seen_ms", std::to_string(at)});
  } else if (event.kind() == katy::v1::EVENT_KIND_DELIVERY) {
    hset.insert(hset.end(), {"delivered_watermark", std::to_string(event.watermark())});
  } else if (event.kind() == katy::v1::EVENT_KIND_READ) {
    hset.insert(hset.end(), {"read_watermark", std::to_string(event.watermark())});
  }
  for (const auto& [name, value] : decision.set_vars) hset.insert(hset.end(), {"var:" + name, value});
  // From the opt-out on, the sender lets through only replies to the person's own messages
  // from that time on (OptOutStops, services/sender/sender_handler.h).
  if (decision.privacy == PrivacyAction::kOptOut) hset.insert(hset.end(), {"opted_out_ms", std::to_string(at)});
  if (decision.privacy == PrivacyAction::kOptIn && conversation.opted_out_ms > 0)
    update.hdel.emplace_back("opted_out_ms");
  if (decision.next_state) {
    if (decision.next_state->empty()) {
      update.hdel.emplace_back("state");
    } else {
      hset.insert(hset.end(), {"state", *decision.next_state});
    }
  }
}

// `katyctl conv pause|resume` (an event on the conversation's stream): the thread goes to the
// Page Inbox, or back to the bot, as a rule's handover would.
std::optional<Handover> TerminalHandover(const katy::v1::InboundEvent& event) {
  if (event.kind() != katy::v1::EVENT_KIND_HANDOVER) return std::nullopt;
  if (event.kind_key() == grpcsvc::kPauseEvent) return Handover{kPageInboxAppId, event.metadata()};
  if (event.kind_key() == grpcsvc::kResumeEvent) return Handover{"", event.metadata()};
  return std::nullopt;
}

// The replies to `event`, in order: take_thread_control when the decision takes the thread
// back, typing_on when it asks for it (Meta: sender_action goes alone), one message per part,
// then pass_thread_control when it hands the thread over. Ids are "<entry id>#take",
// "#typing", "#0"..., "#pass".
// A reply to the event, id "<inbound entry id><id_suffix>" (the sender's delivered mark makes
// the same id go once).
katy::v1::OutboundMessage ReplyTo(const redis::StreamEntry& entry, const katy::v1::InboundEvent& event,
                                  const std::string& id_suffix, int64_t now) {
  katy::v1::OutboundMessage reply;
  reply.set_id(entry.id + id_suffix);
  reply.set_page_id(event.page_id());
  reply.set_platform(event.platform());
  reply.set_recipient_id(event.user_id());
  reply.set_recipient_is_ref(event.user_is_ref());
  // A reminder's reply answers no message of the person: Meta's type for that is UPDATE.
  reply.set_messaging_type(event.kind() == katy::v1::EVENT_KIND_TIMER ? "UPDATE" : "RESPONSE");
  reply.set_in_reply_to_mid(event.mid());
  reply.set_created_at_ms(now);
  reply.set_event_received_at_ms(event.received_at_ms());
  reply.set_event_timestamp_ms(event.timestamp_ms());
  reply.set_user_last_message_ms(IsReplyable(event) ? event.timestamp_ms() : 0);
  return reply;
}

katy::v1::OutboundMessage TypingFor(const redis::StreamEntry& entry, const katy::v1::InboundEvent& event, int64_t now) {
  auto typing = ReplyTo(entry, event, "#typing", now);
  typing.set_sender_action("typing_on");
  return typing;
}

// A comment's answers (docs/comments.md): its one private reply, the decision's first message,
// to recipient.comment_id (or post_id for a visitor's post), id "#0"; then the public reply
// under the comment, id "#public". A skill's further messages have no one to go to: the person
// is in no conversation with the page until they answer the private reply.
std::vector<katy::v1::OutboundMessage> CommentReplies(const redis::StreamEntry& entry,
                                                      const katy::v1::InboundEvent& event, const Decision& decision,
                                                      int64_t now) {
  auto to_comment = [&](const std::string& id_suffix, std::string message_json) {
    auto reply = ReplyTo(entry, event, id_suffix, now);
    if (event.comment_id().empty()) {
      reply.set_recipient_post_id(event.post_id());
    } else {
      reply.set_recipient_comment_id(event.comment_id());
    }
    // Meta gives Instagram comments no creation time: the webhook's, a little later, stands in.
    reply.set_comment_created_ms(event.timestamp_ms() > 0 ? event.timestamp_ms() : event.entry_time_ms());
    reply.set_message_json(std::move(message_json));
    return reply;
  };
  std::vector<katy::v1::OutboundMessage> replies;
  if (!decision.messages.empty()) replies.push_back(to_comment("#0", decision.messages.front()));
  // A visitor's post takes a private reply only: a public one is a comment on a comment.
  if (!decision.public_reply.empty() && !event.comment_id().empty()) {
    replies.push_back(to_comment("#public", ToJsonText(nlohmann::json{{"text", decision.public_reply}})));
    replies.back().set_public_reply(true);
  }
  return replies;
}

// `typing_sent`: typing_on went out before the skill was called (SendTypingFirst).
// `disclosure`: the bot's disclosure to send before its messages ("" for none), id "#disclosure".
std::vector<katy::v1::OutboundMessage> Replies(const redis::StreamEntry& entry, const katy::v1::InboundEvent& event,
                                               const Decision& decision, int64_t now, bool typing_sent,
                                               const std::string& disclosure) {
  if (event.kind() == katy::v1::EVENT_KIND_COMMENT) return CommentReplies(entry, event, decision, now);
  auto outbound = [&](const std::string& id_suffix) { return ReplyTo(entry, event, id_suffix, now); };
  auto thread_control = [&](const char* id_suffix, const char* call) {
    auto control = outbound(id_suffix);
    control.set_thread_control(call);
    control.set_target_app_id(decision.handover->target_app_id);
    control.set_thread_metadata(decision.handover->reason);
    return control;
  };
  std::vector<katy::v1::OutboundMessage> replies;
  if (decision.handover && decision.handover->take()) replies.push_back(thread_control("#take", "take_thread_control"));
  if (!disclosure.empty() && !decision.messages.empty()) {
    replies.push_back(outbound("#disclosure"));
    replies.back().set_message_json(ToJsonText(nlohmann::json{{"text", disclosure}}));
  }
  if (decision.typing && !decision.messages.empty() && !typing_sent) replies.push_back(TypingFor(entry, event, now));
  for (size_t i = 0; i < decision.messages.size(); ++i) {
    replies.push_back(outbound("#" + std::to_string(i)));
    replies.back().set_message_json(decision.messages[i]);
  }
  if (decision.handover && !decision.handover->take())
    replies.push_back(thread_control("#pass", "pass_thread_control"));
  return replies;
}

// One event's arguments in a commit call (kCommitLua), their count first: entry id, renewal,
// the HSET pairs and HDEL fields (each counted), the owned-set change and the conversation, the
// timers to remove and to add (each counted), then the serialized replies.
void AddCommitArgs(const redis::StreamEntry& entry, bool renew, const std::string& conversation,
                   const ConversationUpdate& update, const std::vector<katy::v1::OutboundMessage>& replies,
                   std::vector<std::string>& args) {
  const size_t count_at = args.size();
  args.emplace_back();  // the count, once known
  args.insert(args.end(), {entry.id, renew ? "1" : "0", std::to_string(update.hset.size() / 2)});
  args.insert(args.end(), update.hset.begin(), update.hset.end());
  args.push_back(std::to_string(update.hdel.size()));
  args.insert(args.end(), update.hdel.begin(), update.hdel.end());
  args.push_back(update.owned_op);
  args.push_back(conversation);
  args.push_back(std::to_string(update.timers_removed.size()));
  args.insert(args.end(), update.timers_removed.begin(), update.timers_removed.end());
  args.push_back(std::to_string(update.timers_added.size() / 2));
  args.insert(args.end(), update.timers_added.begin(), update.timers_added.end());
  for (const auto& reply : replies) args.push_back(reply.SerializeAsString());
  args[count_at] = std::to_string(args.size() - count_at - 1);
}

}  // namespace

struct ResponderHandler::EventWork {
  const redis::StreamEntry* entry = nullptr;
  std::optional<redis::StreamEntry> owned_entry;  // `entry`, for an event that waits on its skill
  redis::Fence fence;
  std::chrono::steady_clock::time_point started;
  katy::v1::InboundEvent event;
  int shard = 0;
  std::string conversation_key;
  Conversation conversation;
  std::shared_ptr<const RuleSet> rules;  // in force when the event was decided
  const Rule* rule = nullptr;            // the rule found, into `rules`
  std::map<std::string, std::string> captures;
  bool profile_due = false;  // the rule needs the first name, to be fetched before it is applied
  bool typing_sent = false;  // typing_on went out before the skill call
  Decision decision;
  ConversationUpdate update;
  DisclosureOccasion disclosure = DisclosureOccasion::kNone;  // the disclosure going before the replies
  ReminderChanges reminders;                                  // what the event does to the reminders
  std::vector<katy::v1::OutboundMessage> replies;
  std::optional<redis::HandleResult> result;
};

void ResponderHandler::ApplyProfile(EventWork& work, const Result<std::string>& name) const {
  metrics_.profile_fetches.Add({{"result", name ? "ok" : name.error().Label()}}).Increment();
  if (name) {
    work.conversation.first_name = *name;
    work.update.hset.insert(work.update.hset.end(), {"first_name", *name});
  }
  work.update.hset.insert(work.update.hset.end(), {"profile_checked_ms", std::to_string(now_ms_())});
}

void ResponderHandler::FetchProfiles(std::vector<EventWork>& work, std::function<void()> all_fetched) const {
  const Countdown countdown(std::move(all_fetched));
  for (auto& one : work) {
    if (!one.profile_due) continue;
    const bool instagram = one.event.platform() == "instagram";
    auto request = profiles_->Request(one.event.page_id(), one.event.user_id(), instagram);
    if (!request) {
      ApplyProfile(one, request.error());
      continue;
    }
    countdown.Start();
    skills_.Submit(std::move(*request), [this, &one, instagram, countdown](const Result<http::Response>& answer) {
      ApplyProfile(one, ProfileClient::FirstNameIn(answer, instagram));
      countdown.End();
    });
  }
  countdown.Seal();
}

void ResponderHandler::RunSkills(std::vector<EventWork>& work, std::function<void()> all_answered) const {
  // The answers go into `work`, which the caller keeps alive and leaves alone until
  // all_answered.
  const Countdown countdown(std::move(all_answered));
  const auto started = std::chrono::steady_clock::now();
  for (auto& one : work) {
    if (one.result || one.decision.skill == nullptr) continue;
    countdown.Start();
    CallSkill(skills_, *one.decision.skill, one.event, one.conversation,
              [this, &one, started, countdown](Result<SkillAnswer> answer) {
                ApplySkill(one.event, one.conversation, one.decision, std::move(answer),
                           std::chrono::steady_clock::now() - started);
                countdown.End();
              });
  }
  countdown.Seal();
}

void ResponderHandler::ApplySkill(const katy::v1::InboundEvent& event, const Conversation& conversation,
                                  Decision& decision, Result<SkillAnswer> answer,
                                  std::chrono::steady_clock::duration took) const {
  metrics_.skill_latency.Add({{"rule", decision.rule}}, metrics::LatencyBuckets())
      .Observe(std::chrono::duration<double>(took).count());
  metrics_.skill_calls.Add({{"rule", decision.rule}, {"result", answer ? "ok" : answer.error().Label()}}).Increment();
  if (!answer) {
    log::Warn("skill failed; sending its fallback",
              {{"rule", decision.rule}, {"error", answer.error().message}, {"code", answer.error().Label()}});
    decision.messages = RenderMessages(decision.skill->fallback, event, conversation, PickRandom);
    return;
  }
  decision.messages = std::move(answer->messages);
  for (auto& [name, value] : answer->set_vars) decision.set_vars[name] = std::move(value);
  if (answer->next_state) decision.next_state = answer->next_state;
  if (answer->handover) decision.handover = answer->handover;
  decision.remind.insert(decision.remind.end(), answer->remind.begin(), answer->remind.end());
  decision.cancel.insert(decision.cancel.end(), answer->cancel.begin(), answer->cancel.end());
}

void ResponderHandler::NoteOwnerChange(const katy::v1::InboundEvent& event, const OwnershipStep& step) const {
  if (step.reason.empty()) return;
  metrics_.handovers.Add({{"direction", step.owner.katy() ? "to_katy" : "to_others"}, {"reason", step.reason}})
      .Increment();
  log::Info(
      "thread owner changed",
      {{"page", event.page_id()}, {"owner", step.owner.katy() ? "katy" : step.owner.app_id}, {"reason", step.reason}});
}

std::string ResponderHandler::FollowOwnership(const katy::v1::InboundEvent& event, const Conversation& conversation,
                                              int64_t now, Decision& decision, std::vector<std::string>& hset,
                                              std::vector<std::string>& hdel) const {
  const ThreadOwner before{conversation.owner, conversation.owner_since_ms, conversation.human_last_ms};
  OwnershipStep step = NextOwner(before, event, ownership_, now);
  NoteOwnerChange(event, step);
  // Katy's own handover: a take first (so its replies go out), a pass after its replies. Katy
  // can pass only a thread it has, and need not take one it has.
  if (decision.handover && decision.handover->take()) {
    if (step.owner.katy()) {
      decision.handover.reset();
    } else {
      step = {ThreadOwner{}, decision.rule == "katyctl" ? "katyctl" : "rule"};
      NoteOwnerChange(event, step);
    }
  }
  if (!step.owner.katy()) {
    if (!decision.messages.empty()) metrics_.withheld.Increment(static_cast<double>(decision.messages.size()));
    decision.messages.clear();
    decision.handover.reset();
  } else if (decision.handover && !decision.handover->take()) {
    step = {ThreadOwner{decision.handover->target_app_id, now, 0}, decision.rule == "katyctl" ? "katyctl" : "rule"};
    NoteOwnerChange(event, step);
  }
  if (step.owner.katy()) {
    if (before.katy()) return "";
    hdel.insert(hdel.end(), {"owner", "owner_since_ms", "human_last_ms"});
    // The chat moves from people back to the bot: its next reply discloses it (disclosure.h).
    hset.insert(hset.end(), {"returned_ms", std::to_string(now)});
    return "rem";
  }
  hset.insert(hset.end(), {"owner", step.owner.app_id, "owner_since_ms", std::to_string(step.owner.since_ms)});
  if (step.owner.human_last_ms > 0)
    hset.insert(hset.end(), {"human_last_ms", std::to_string(step.owner.human_last_ms)});
  return before.katy() ? "add" : "";
}

void ResponderHandler::CountProcessed(const katy::v1::InboundEvent& event, const Decision& decision, long long replies,
                                      std::chrono::steady_clock::time_point started) const {
  const std::string kind = EventKindName(event.kind());
  metrics_.events.Add({{"kind", kind}, {"rule", decision.rule.empty() ? "none" : decision.rule}}).Increment();
  if (replies > 0) metrics_.replies.Increment(static_cast<double>(replies));
  metrics_.latency.Observe(std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
}

redis::HandleResult ResponderHandler::operator()(redis::Client& client, const redis::StreamEntry& entry,
                                                 const redis::Fence& fence) const {
  return redis::RunToEnd(client,
                         [&](const redis::Resume& resume) {
                           return HandleBatch(client, {{&entry, fence}}, resume);
                         })
      .front();
}

std::vector<redis::HandleResult> ResponderHandler::HandleBatch(redis::Client& client,
                                                               const std::vector<redis::BatchEntry>& batch,
                                                               const redis::Resume& resume) const {
  std::vector<EventWork> work(batch.size());
  for (size_t i = 0; i < batch.size(); ++i) {
    work[i].entry = batch[i].entry;
    work[i].fence = batch[i].fence;
  }
  ReadAndChoose(client, work);
  // The events waiting on a profile or a skill leave the batch: the others are committed now,
  // those when their calls have answered, without a worker waiting for them meanwhile.
  auto waiting = std::make_shared<std::vector<EventWork>>();
  for (auto& one : work) {
    if (one.result || (!one.profile_due && one.decision.skill == nullptr)) continue;
    one.owned_entry = *one.entry;  // the consumer's copy is gone by the time they answer
    waiting->push_back(std::move(one));
    one = EventWork{};  // what is left in the batch: a place holder, finished later
    one.result = redis::HandleResult::Later();
  }
  Finish(client, work);
  if (!waiting->empty()) {
    for (auto& one : *waiting) one.entry = &*one.owned_entry;
    const bool profiles =
        std::any_of(waiting->begin(), waiting->end(), [](const auto& one) { return one.profile_due; });
    if (profiles) {
      FetchProfiles(*waiting, [this, waiting, resume] {
        resume([this, waiting](redis::Client& later, const redis::Resume& next) {
          return AfterProfiles(later, waiting, next);
        });
      });
    } else {
      AwaitSkills(client, waiting, resume);
    }
  }
  std::vector<redis::HandleResult> results;
  results.reserve(work.size());
  for (auto& one : work) results.push_back(std::move(*one.result));
  return results;
}

void ResponderHandler::SendTypingFirst(redis::Client& client, std::vector<EventWork>& work) const {
  std::vector<std::vector<std::string>> adds;
  std::vector<EventWork*> typing;
  const int64_t now = now_ms_();
  for (auto& one : work) {
    // Only while Katy has the thread and keeps it: typing_on to someone talking to a person
    // in the Page Inbox, or before a take_thread_control, would be out of turn.
    const Decision& decision = one.decision;
    if (one.result || one.profile_due || one.typing_sent || decision.skill == nullptr || !decision.typing ||
        decision.handover || !one.conversation.owner.empty() || !IsReplyable(one.event)) {
      continue;
    }
    adds.push_back(
        {"XADD", keys_.OutStream(one.shard), "*", "pb", TypingFor(*one.entry, one.event, now).SerializeAsString()});
    typing.push_back(&one);
  }
  if (adds.empty()) return;
  // Best effort: not sent now, it goes with the replies at the commit.
  auto added = client.Pipeline(adds);
  for (size_t i = 0; added && i < typing.size(); ++i) typing[i]->typing_sent = !(*added)[i].IsError();
}

std::vector<redis::HandleResult> ResponderHandler::AfterProfiles(redis::Client& client,
                                                                 const std::shared_ptr<std::vector<EventWork>>& waiting,
                                                                 const redis::Resume& resume) const {
  bool skills = false;
  for (auto& one : *waiting) {
    if (std::exchange(one.profile_due, false)) Decide(one);
    skills |= !one.result && one.decision.skill != nullptr;
  }
  if (!skills) return Finished(client, *waiting);
  // All of them wait for the skills (one continuation per batch); a profile is fetched once a
  // day per person, so rarely is one of them held by another's skill.
  AwaitSkills(client, waiting, resume);
  std::vector<redis::HandleResult> later(waiting->size(), redis::HandleResult::Later());
  return later;
}

void ResponderHandler::AwaitSkills(redis::Client& client, const std::shared_ptr<std::vector<EventWork>>& waiting,
                                   const redis::Resume& resume) const {
  SendTypingFirst(client, *waiting);
  RunSkills(*waiting, [this, waiting, resume] {
    resume([this, waiting](redis::Client& later, const redis::Resume&) { return Finished(later, *waiting); });
  });
}

std::vector<redis::HandleResult> ResponderHandler::Finished(redis::Client& client, std::vector<EventWork>& work) const {
  Finish(client, work);
  std::vector<redis::HandleResult> results;
  results.reserve(work.size());
  for (auto& one : work) results.push_back(std::move(*one.result));
  return results;
}

void ResponderHandler::ReadAndChoose(redis::Client& client, std::vector<EventWork>& work) const {
  for (auto& one : work) Parse(*one.entry, one);
  CarryOutDeletions(client, work);
  ReadConversations(client, work);
  for (auto& one : work) {
    if (!one.result) Choose(one);
  }
}

void ResponderHandler::Finish(redis::Client& client, std::vector<EventWork>& work) const {
  for (auto& one : work) {
    if (!one.result) Conclude(*one.entry, one);
  }
  for (auto& one : work) {
    if (!one.result && one.decision.privacy == PrivacyAction::kForget) Forget(client, one);
    if (!one.result && one.event.kind() == katy::v1::EVENT_KIND_MESSAGE_DELETE && !one.event.mid().empty()) {
      Scrub(client, one);
    }
  }
  Commit(client, work);
}

void ResponderHandler::Scrub(redis::Client& client, EventWork& work) const {
  // The deleted message came before this event on the conversation's stream, so it was handled
  // already: what is left of it goes now.
  const katy::v1::InboundEvent& event = work.event;
  auto scrubbed = ScrubMessage(client, keys_, event.page_id(), event.user_id(), event.mid());
  if (!scrubbed) {
    work.result = redis::HandleResult::RedisFailed(scrubbed.error());
    return;
  }
  metrics_.privacy.Add({{"action", "scrub"}}).Increment();
  log::Info("deleted message scrubbed", {{"page", event.page_id()},
                                         {"inbound", scrubbed->inbound_events},
                                         {"unsent_replies", scrubbed->outbound_messages},
                                         {"dead_letters", scrubbed->dead_letters}});
}

void ResponderHandler::CarryOutDeletions(redis::Client& client, std::vector<EventWork>& work) const {
  for (auto& one : work) {
    if (one.result || one.event.kind() != katy::v1::EVENT_KIND_DATA_DELETION) continue;
    one.result = deletions_.Handle(client, *one.entry, one.event);
    if (one.result->kind == redis::HandleResult::Kind::kDone) {
      metrics_.privacy.Add({{"action", "data_deletion"}}).Increment();
    }
  }
}

void ResponderHandler::Forget(redis::Client& client, EventWork& work) const {
  // Everything of the person goes but this event, which the commit acknowledges with the
  // replies (the answer comes after the erase); the commit then writes nothing about them.
  const katy::v1::InboundEvent& event = work.event;
  auto erased = ForgetPerson(client, keys_, event.page_id(), event.user_id(), work.entry->id);
  if (!erased) {
    work.result = redis::HandleResult::RedisFailed(erased.error());
    return;
  }
  work.update = ConversationUpdate{};
  work.reminders = ReminderChanges{};
  metrics_.privacy.Add({{"action", "forget"}}).Increment();
  log::Info("person forgotten by a rule",
            {{"page", event.page_id()}, {"rule", work.decision.rule}, {"erased", std::to_string(erased->Total())}});
}

void ResponderHandler::Parse(const redis::StreamEntry& entry, EventWork& work) const {
  work.started = std::chrono::steady_clock::now();
  auto payload = entry.Field("pb");
  if (!payload || !work.event.ParseFromString(*payload)) {
    work.result = redis::HandleResult::Poison("undecodable_event");
    return;
  }
  work.shard = ShardOf(work.event.page_id(), work.event.user_id(), keys_.shards());
  work.conversation_key = keys_.Conversation(work.shard, work.event.page_id(), work.event.user_id());
}

void ResponderHandler::ReadConversations(redis::Client& client, std::vector<EventWork>& work) const {
  std::vector<std::vector<std::string>> reads;
  std::vector<EventWork*> readers;
  for (auto& one : work) {
    if (one.result || one.event.user_id().empty()) continue;
    reads.push_back({"HGETALL", one.conversation_key});
    readers.push_back(&one);
  }
  if (reads.empty()) return;
  auto hashes = client.Pipeline(reads);
  for (size_t i = 0; i < readers.size(); ++i) {
    if (!hashes) {
      readers[i]->result = redis::HandleResult::RedisFailed(hashes.error());
    } else if ((*hashes)[i].IsError()) {
      readers[i]->result = redis::HandleResult::RedisFailed(redis::ReplyError((*hashes)[i].str));  // e.g. IOERR
    } else {
      readers[i]->conversation = ReadConversation((*hashes)[i]);
    }
  }
}

void ResponderHandler::Choose(EventWork& work) const {
  // The rule set in force now stays with the event (its decision points into it) until the
  // commit, a reload meanwhile notwithstanding.
  work.rules = rules_.Current();
  work.rule = FindRule(*work.rules, work.event, work.conversation, &work.captures);
  // A comment names its author; a Facebook commenter's id is not one the profile API knows.
  work.profile_due = work.rule != nullptr && work.rule->uses_first_name && profiles_ != nullptr &&
                     profiles_->enabled() && !work.event.user_is_ref() &&
                     work.event.kind() != katy::v1::EVENT_KIND_COMMENT && ProfileDue(work.conversation, now_ms_());
  if (!work.profile_due) Decide(work);
}

void ResponderHandler::Decide(EventWork& work) const {
  if (work.rule == nullptr) return;
  work.decision = ApplyRule(*work.rule, work.event, work.conversation, std::move(work.captures), PickRandom);
}

void ResponderHandler::Conclude(const redis::StreamEntry& entry, EventWork& work) const {
  const katy::v1::InboundEvent& event = work.event;
  Conversation& conversation = work.conversation;
  const int64_t now = now_ms_();
  Decision& decision = work.decision;
  RecordEvent(event, conversation, decision, work.update);
  if (auto handover = TerminalHandover(event)) {
    decision.rule = "katyctl";
    decision.handover = std::move(handover);
  }
  if (!event.user_id().empty()) {
    work.update.owned_op = FollowOwnership(event, conversation, now, decision, work.update.hset, work.update.hdel);
  }
  PlanTimers(work, now);
  const std::string& disclosure = Disclosure(work, now);
  work.replies = Replies(entry, event, decision, now, work.typing_sent, disclosure);
}

void ResponderHandler::PlanTimers(EventWork& work, int64_t now) const {
  const katy::v1::InboundEvent& event = work.event;
  if (event.user_id().empty() || event.kind() == katy::v1::EVENT_KIND_COMMENT) return;
  // The person writing again (in standby too) cancels the nudges that wait for their silence.
  const bool person_wrote =
      event.kind() == katy::v1::EVENT_KIND_MESSAGE || event.kind() == katy::v1::EVENT_KIND_POSTBACK;
  work.reminders =
      PlanReminders(work.conversation.reminders, person_wrote, work.decision.remind, work.decision.cancel, now);
  ConversationUpdate& update = work.update;
  for (const auto& name : work.reminders.cancelled) {
    update.hdel.push_back(ReminderField(name));
    update.timers_removed.push_back(ReminderMember(event.page_id(), event.user_id(), name));
  }
  for (const auto& reminder : work.reminders.scheduled) {
    update.hset.insert(update.hset.end(), {ReminderField(reminder.name), ReminderFieldValue(reminder)});
    update.timers_added.insert(
        update.timers_added.end(),
        {std::to_string(reminder.due_ms), ReminderMember(event.page_id(), event.user_id(), reminder.name)});
  }
}

const std::string& ResponderHandler::Disclosure(EventWork& work, int64_t now) const {
  static const std::string kNone;
  const katy::v1::InboundEvent& event = work.event;
  // A comment's private reply is its one message: nothing may go before it.
  if (work.decision.messages.empty() || event.kind() == katy::v1::EVENT_KIND_COMMENT || !work.rules) return kNone;
  const std::string& text = disclosure_.TextFor(event.page_id(), work.rules->disclosure_by_page);
  if (text.empty()) return kNone;
  work.disclosure = DisclosureDue(work.conversation.disclosure, now, work.update.owned_op == "rem", disclosure_.gap);
  if (work.disclosure == DisclosureOccasion::kNone) return kNone;
  work.update.hset.insert(work.update.hset.end(), {"disclosed_ms", std::to_string(now)});
  return text;
}

void ResponderHandler::Commit(redis::Client& client, std::vector<EventWork>& work) const {
  // Replies, conversations and acknowledgements of a shard's events in one script, fenced once
  // by the lease; the scripts of the whole batch in one round trip.
  struct ShardCommit {
    redis::Script::Call call;
    std::vector<size_t> events;  // into `work`, in the order the script answers
  };
  std::map<std::pair<std::string, std::string>, ShardCommit> by_fence;  // lease key (a shard's), owner
  for (size_t i = 0; i < work.size(); ++i) {
    EventWork& one = work[i];
    if (one.result) continue;
    const redis::Fence& fence = one.fence;
    ShardCommit& shard = by_fence[{fence.lease_key, fence.owner}];
    if (shard.events.empty()) {
      shard.call.keys = {keys_.OutStream(one.shard), one.entry->stream, fence.lease_key, keys_.Owned(one.shard),
                         keys_.Timers(one.shard)};
      shard.call.args = {KeySpace::kResponderGroup, std::to_string(conversation_ttl_s_), fence.owner};
    }
    const int64_t now = now_ms_();
    // A commit that changes nothing of the conversation leaves it alone (creates no hash).
    const bool changes = !one.update.hset.empty() || !one.update.hdel.empty();
    const bool renew = changes && ConversationRenewalDue(one.conversation.kept_from_ms, now,
                                                         std::chrono::seconds(conversation_ttl_s_));
    if (renew) one.update.hset.insert(one.update.hset.end(), {"kept_from_ms", std::to_string(now)});
    shard.call.keys.push_back(one.conversation_key);
    AddCommitArgs(*one.entry, renew, one.event.page_id() + ":" + one.event.user_id(), one.update, one.replies,
                  shard.call.args);
    shard.events.push_back(i);
  }
  if (by_fence.empty()) return;
  std::vector<redis::Script::Call> calls;
  for (auto& [fence, shard] : by_fence) calls.push_back(std::move(shard.call));
  auto committed = commit_script_.RunPipelined(client, calls);
  size_t c = 0;
  for (const auto& [fence, shard] : by_fence) {
    const redis::Reply* reply = committed ? &(*committed)[c++] : nullptr;
    for (size_t e = 0; e < shard.events.size(); ++e) {
      EventWork& one = work[shard.events[e]];
      if (!committed) {
        one.result = redis::HandleResult::RedisFailed(committed.error());
      } else if (reply->IsError()) {
        one.result = redis::HandleResult::RedisFailed(redis::ReplyError(reply->str));
      } else if (!reply->IsArray()) {  // -2: the shard is no longer this instance's
        one.result = redis::HandleResult::Abandon("lost_lease");
      } else if (reply->elements.size() != shard.events.size()) {  // not this script's answer
        one.result = redis::HandleResult::RedisFailed(
            redis::ReplyError("the commit answered for " + std::to_string(reply->elements.size()) + " events, not " +
                              std::to_string(shard.events.size())));
      } else {
        Committed(*one.entry, one, reply->elements[e].integer);
      }
    }
  }
}

void ResponderHandler::Committed(const redis::StreamEntry& entry, EventWork& work, long long replies) const {
  CountProcessed(work.event, work.decision, replies, work.started);
  if (replies >= 0 &&
      (work.decision.privacy == PrivacyAction::kOptOut || work.decision.privacy == PrivacyAction::kOptIn)) {
    metrics_.privacy.Add({{"action", work.decision.privacy == PrivacyAction::kOptOut ? "opt_out" : "opt_in"}})
        .Increment();
  }
  if (!work.reminders.scheduled.empty()) {
    metrics_.reminders.Add({{"action", "scheduled"}}).Increment(static_cast<double>(work.reminders.scheduled.size()));
  }
  if (!work.reminders.cancelled.empty()) {
    metrics_.reminders.Add({{"action", "cancelled"}}).Increment(static_cast<double>(work.reminders.cancelled.size()));
  }
  if (work.disclosure != DisclosureOccasion::kNone && replies > 0) {
    metrics_.disclosures.Add({{"occasion", OccasionName(work.disclosure)}}).Increment();
  }
  // What the person wrote only where the operator allows message text in logs.
  const std::string text = log::MessageTextAllowed() ? work.event.text() : "";
  log::Debug("event processed", {{"id", entry.id},
                                 {"page", work.event.page_id()},
                                 {"mid", work.event.mid()},
                                 {"shard", work.shard},
                                 {"rule", work.decision.rule},
                                 {"replies", replies},
                                 {"text", text}});
  work.result = redis::HandleResult::Done();
}

}  // namespace katy::responder
