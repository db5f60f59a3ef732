#pragma once

#include <functional>
#include <memory>
#include <mutex>
#include <string>

#include "common/http/async_client.h"
#include "common/metrics/metrics.h"
#include "common/redis/script.h"
#include "common/redis/sharded_consumer.h"
#include "common/shard.h"
#include "services/responder/data_deletion.h"
#include "services/responder/profile_client.h"
#include "services/responder/rules.h"
#include "services/responder/skill_client.h"
#include "services/responder/thread_owner.h"

namespace katy::responder {

// The rules in force, swapped whole on reload so a reply never sees half of two files.
// Thread-safe.
class RulesHolder {
 public:
  explicit RulesHolder(std::string path) : path_(std::move(path)) {}
  // Loads the file; on error keeps the rules in force and returns the file:line error.
  Result<size_t> Reload();
  std::shared_ptr<const RuleSet> Current() const;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  mutable std::mutex mutex_;
  std::shared_ptr<const RuleSet> rules_ = std::make_shared<RuleSet>();
};

struct ResponderMetrics {
  explicit ResponderMetrics(prometheus::Registry& registry);
  prometheus::Family<prometheus::Counter>& events;           // by kind and rule
  prometheus::Counter& replies;                              // messages enqueued for the sender
  prometheus::Histogram& latency;                            // per-event processing, seconds
  prometheus::Family<prometheus::Counter>& skill_calls;      // by rule and result (ok or error code)
  prometheus::Family<prometheus::Histogram>& skill_latency;  // by rule, seconds (retry included)
  prometheus::Family<prometheus::Counter>& profile_fetches;  // by result
  prometheus::Family<prometheus::Counter>& handovers;        // thread ownership changes, by direction and reason
  prometheus::Counter& withheld;                             // replies not sent: someone else had the thread
  prometheus::Family<prometheus::Counter>& reminders;        // by action (scheduled, cancelled, fired)
  prometheus::Family<prometheus::Counter>& disclosures;      // by occasion
  prometheus::Family<prometheus::Counter>& privacy;  // by action (opt_out, opt_in, forget, data_deletion, scrub)
};

// Handles one inbound stream entry: reads the conversation, finds the rule, fetches the user's
// first name when the rule needs it (cached in the conversation for a day; a failure or a
// slow profile API costs at most the profile timeout, and the placeholder turns neutral; the
// fetch, like a skill call, waits on the event loop, not on a worker),
// calls the rule's skill if it has one (falling back to its fallback reply), and
// commits in one Lua script: check that this instance still holds the shard's lease (else
// nothing is written and the event is left to the new owner), XACK the event (an event
// already committed is not committed twice, so re-processing never doubles a reply), XADD the
// replies to the shard's outbound stream, update the conversation hash.
// Reply ids are "<inbound entry id>#<n>". While someone else has the thread (a person in the
// Page Inbox, another app: thread_owner.h), the event still updates the conversation but its
// replies are withheld. Thread-safe (one may serve every worker thread).
class ResponderHandler {
 public:
  using Clock = std::function<int64_t()>;  // epoch ms

  // `profiles` may be null (no Graph access: {{first_name}} stays neutral).
  // `skill_calls`: the skill client's connection bounds (a skill over HTTP/1.1 needs one
  // connection per call in flight). `disclosure`: the bot disclosure (off by default).
  ResponderHandler(KeySpace keys, const RulesHolder& rules, ResponderMetrics& metrics, Clock now_ms,
                   const ProfileClient* profiles = nullptr, OwnershipSettings ownership = {},
                   const http::AsyncClientOptions& skill_calls = {}, DisclosureSettings disclosure = {},
                   PrivacySettings privacy = {});

  // One event, its skill (if any) waited for on this thread: for callers with a thread to
  // spare (tests).
  redis::HandleResult operator()(redis::Client& client, const redis::StreamEntry& entry,
                                 const redis::Fence& fence) const;
  // The first events of several conversations (redis::BatchHandler): their conversations read
  // in one round trip, each decided in turn, the commits of those that call no skill in one
  // more. Events whose rule calls a skill are kLater: their skills are called at once on the
  // shared client, and once all have answered, `resume` commits them (in one more round trip).
  // Thread-safe.
  std::vector<redis::HandleResult> HandleBatch(redis::Client& client, const std::vector<redis::BatchEntry>& batch,
                                               const redis::Resume& resume) const;

 private:
  // One event of a batch on its way: what was read, decided and is to be committed; `result`
  // once its outcome is known (then the later steps pass it by).
  struct EventWork;
  void Parse(const redis::StreamEntry& entry, EventWork& work) const;
  void ReadConversations(redis::Client& client, std::vector<EventWork>& work) const;
  // Decides an event in steps around its calls: Choose finds the rule (and whether the first
  // name it needs must be fetched first: then Decide comes after the fetch); Conclude applies
  // the skill's answer, records the event, follows the thread's owner and renders the replies.
  void Choose(EventWork& work) const;
  void Conclude(const redis::StreamEntry& entry, EventWork& work) const;
  // Parse, read the conversations (one round trip) and Choose, for each event of `work`.
  void ReadAndChoose(redis::Client& client, std::vector<EventWork>& work) const;
  // Conclude and commit the events of `work` without a result yet.
  void Finish(redis::Client& client, std::vector<EventWork>& work) const;
  // Calls the skills of every event of `work` that needs one, all at once, without waiting:
  // each answer is applied to its event on the client's loop thread, and `all_answered` runs
  // (there) after the last. `work` must outlive that.
  void RunSkills(std::vector<EventWork>& work, std::function<void()> all_answered) const;
  void Commit(redis::Client& client, std::vector<EventWork>& work) const;
  void Committed(const redis::StreamEntry& entry, EventWork& work, long long replies) const;
  // Applies the event's rule (found by Choose) to it: its decision.
  void Decide(EventWork& work) const;
  // Fetches the first name of every event of `work` whose rule needs it (profile_due), all at
  // once on the shared client; each answer is recorded (ApplyProfile) on the client's loop
  // thread and `all_fetched` runs there after the last (at once when none is due).
  void FetchProfiles(std::vector<EventWork>& work, std::function<void()> all_fetched) const;
  // Records a profile fetch: the first name in the conversation, and the attempt's time in the
  // update (HSET field/value pairs), so a failure is not asked again for a while.
  void ApplyProfile(EventWork& work, const Result<std::string>& name) const;
  // The events that waited on their profiles, on a worker: decided now, then their skills
  // called (all of them kLater again) or, with none, committed.
  std::vector<redis::HandleResult> AfterProfiles(redis::Client& client,
                                                 const std::shared_ptr<std::vector<EventWork>>& waiting,
                                                 const redis::Resume& resume) const;
  // typing_on for the events about to wait on a skill whose rule asks for it (`typing: true`),
  // queued for the sender now rather than with the replies after the skill.
  void SendTypingFirst(redis::Client& client, std::vector<EventWork>& work) const;
  // typing_on first, then the skills of `waiting` called; `resume` commits them once all have
  // answered.
  void AwaitSkills(redis::Client& client, const std::shared_ptr<std::vector<EventWork>>& waiting,
                   const redis::Resume& resume) const;
  // Finish, and the events' results in order.
  std::vector<redis::HandleResult> Finished(redis::Client& client, std::vector<EventWork>& work) const;
  // Replaces the decision's messages with the skill's answer, or with its fallback when the
  // skill failed.
  void ApplySkill(const katy::v1::InboundEvent& event, const Conversation& conversation, Decision& decision,
                  Result<SkillAnswer> answer, std::chrono::steady_clock::duration took) const;
  void CountProcessed(const katy::v1::InboundEvent& event, const Decision& decision, long long replies,
                      std::chrono::steady_clock::time_point started) const;
  // Applies the event, then the decision's own handover, to the thread's owner: records a
  // change in `hset`/`hdel` and the metrics, and withholds the decision's messages (and
  // handover) while someone else has the thread. Returns "add" when others now have the
  // thread, "rem" when Katy has it back, else "" (for the shard's owned set).
  void NoteOwnerChange(const katy::v1::InboundEvent& event, const OwnershipStep& step) const;
  std::string FollowOwnership(const katy::v1::InboundEvent& event, const Conversation& conversation, int64_t now,
                              Decision& decision, std::vector<std::string>& hset, std::vector<std::string>& hdel) const;
  // A message the person deleted: its text and attachments leave what Katy holds (ScrubMessage).
  void Scrub(redis::Client& client, EventWork& work) const;
  // Meta's data deletion requests among the batch, carried out now (data_deletion.h).
  void CarryOutDeletions(redis::Client& client, std::vector<EventWork>& work) const;
  // A rule's `forget: true`: erases the person (common/forget.h) before the commit, which then
  // writes nothing about them; a failure leaves the event to be tried again.
  void Forget(redis::Client& client, EventWork& work) const;
  // What the event does to the conversation's reminders, into the work's update (reminders.h).
  void PlanTimers(EventWork& work, int64_t now) const;
  // The disclosure text to send before the work's replies, "" for none; when one goes, its
  // occasion is noted in the work and its time in the conversation's update.
  const std::string& Disclosure(EventWork& work, int64_t now) const;

  KeySpace keys_;
  const RulesHolder& rules_;
  ResponderMetrics& metrics_;
  Clock now_ms_;
  const ProfileClient* profiles_;
  OwnershipSettings ownership_;
  DisclosureSettings disclosure_;
  int64_t conversation_ttl_s_;  // PrivacySettings::conversation_ttl
  DataDeletions deletions_;
  redis::Script commit_script_;
  mutable http::AsyncClient skills_;  // every worker's skill calls, on one loop
};

// The conversation an inbound entry belongs to ("<page>:<user>"), for per-conversation order.
std::string ConversationOfEvent(const redis::StreamEntry& entry);

// Whether a commit that changes a conversation renews its lifetime: when the lifetime last
// began (`kept_from_ms`, the hash's field; 0 never) a tenth of `lifetime`, at most a day, ago.
// A conversation is then kept at most `lifetime` after its last change and at least that less
// the renewal interval (docs/privacy.md); renewing on every commit was one EXPIRE a message
// (bench/RESULTS.md). Pure.
bool ConversationRenewalDue(int64_t kept_from_ms, int64_t now_ms, std::chrono::seconds lifetime);

}  // namespace katy::responder
