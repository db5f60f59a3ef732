#include "services/responder/reminder_pump.h"

#include <algorithm>
#include <thread>

#include "common/log.h"
#include "common/redis/replication_health.h"
#include "katy/v1/events.pb.h"
#include "services/responder/reminders.h"

namespace katy::responder {

namespace {

// KEYS: the shard's timers, its inbound stream, its responder lease, the conversation.
// ARGV: member, lease owner, now (ms), the conversation's field, the event. 1: fired; 0: not
// due (any more); -2: the lease is not ours.
constexpr const char* kFireLua = R"lua(
if redis.call('GET', KEYS[3]) ~= ARGV[2] then return -2 end
local due = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not due or tonumber(due) > tonumber(ARGV[3]) then return 0 end
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[4], ARGV[4])
redis.call('XADD', KEYS[2], '*', 'pb', ARGV[5])
return 1
)lua";

// The event a reminder becomes: the conversation's, dated when it fell due.
std::string TimerEvent(const ReminderOwner& owner, int64_t due_ms, int64_t now_ms) {
  katy::v1::InboundEvent event;
  event.set_kind(katy::v1::EVENT_KIND_TIMER);
  event.set_kind_key(owner.name);
  event.set_page_id(owner.page);
  event.set_user_id(owner.user);
  event.set_timestamp_ms(due_ms);
  event.set_received_at_ms(now_ms);
  event.set_dedupe_key("timer:" + owner.name + ":" + std::to_string(due_ms));
  return event.SerializeAsString();
}

}  // namespace

ReminderPump::Metrics::Metrics(prometheus::Registry& registry, prometheus::Family<prometheus::Counter>& reminders)
    : fired(reminders.Add({{"action", "fired"}})),
      due(prometheus::BuildGauge()
              .Name("katy_reminders_due")
              .Help("Reminders due and not yet fired on the shards this responder holds")
              .Register(registry)
              .Add({})),
      lag_seconds(prometheus::BuildGauge()
                      .Name("katy_reminders_lag_seconds")
                      .Help("How late the oldest due, unfired reminder on this responder's shards is")
                      .Register(registry)
                      .Add({})) {}

ReminderPump::ReminderPump(KeySpace keys, std::string owner, std::function<std::vector<int>()> owned_shards,
                           Metrics& metrics, Clock now_ms)
    : keys_(std::move(keys)),
      owner_(std::move(owner)),
      owned_shards_(std::move(owned_shards)),
      metrics_(metrics),
      now_ms_(std::move(now_ms)),
      fire_script_(kFireLua) {}

Result<ReminderPump::Round> ReminderPump::FireRound(redis::Client& client, const std::vector<int>& shards,
                                                    int64_t now) {
  Round round;
  round.oldest_ms = now;
  if (shards.empty()) return round;
  std::vector<std::vector<std::string>> reads;
  for (int shard : shards) {
    reads.push_back({"ZRANGEBYSCORE", keys_.Timers(shard), "-inf", std::to_string(now), "WITHSCORES", "LIMIT", "0",
                     std::to_string(kBatch)});
  }
  auto due = client.Pipeline(reads);
  if (!due) return due.error();
  std::vector<redis::Script::Call> calls;
  std::vector<int> shard_of_call;
  for (size_t s = 0; s < shards.size(); ++s) {
    const int shard = shards[s];
    const auto& found = (*due)[s];
    if (found.IsError()) return redis::ReplyError(found.str);
    const size_t count = found.elements.size() / 2;
    round.due += static_cast<long long>(count);
    if (count > 0) round.oldest_ms = std::min<int64_t>(round.oldest_ms, std::atoll(found.elements[1].str.c_str()));
    if (count >= kBatch) round.full.push_back(shard);
    for (size_t i = 0; i + 1 < found.elements.size(); i += 2) {
      const std::string& member = found.elements[i].str;
      const auto owner = ParseReminderMember(member);
      if (!owner) {
        // Not one Katy wrote: removed so it does not block the rest.
        log::Warn("a timers member names no reminder; removed", {{"shard", shard}, {"member", member}});
        if (auto removed = client.Command({"ZREM", keys_.Timers(shard), member}); !removed) return removed.error();
        continue;
      }
      const int64_t due_ms = std::atoll(found.elements[i + 1].str.c_str());
      calls.push_back(
          {{keys_.Timers(shard), keys_.InStream(shard), keys_.Lease(shard, "responder"),
            keys_.Conversation(shard, owner->page, owner->user)},
           {member, owner_, std::to_string(now), ReminderField(owner->name), TimerEvent(*owner, due_ms, now)}});
      shard_of_call.push_back(shard);
    }
  }
  if (calls.empty()) return round;
  auto fired = fire_script_.RunPipelined(client, calls);
  if (!fired) return fired.error();
  for (size_t c = 0; c < fired->size(); ++c) {
    const redis::Reply& reply = (*fired)[c];
    if (reply.IsError()) return redis::ReplyError(reply.str);
    if (reply.integer == 1) ++round.fired;
    // The shard moved: its next owner fires the rest.
    if (reply.integer == -2) std::erase(round.full, shard_of_call[c]);
  }
  metrics_.fired.Increment(static_cast<double>(round.fired));
  return round;
}

Result<size_t> ReminderPump::FireDue(redis::Client& client) {
  const int64_t now = now_ms_();
  size_t fired = 0;
  bool first = true;
  // Shards with a full batch due go round again until none is left behind.
  for (std::vector<int> shards = owned_shards_(); first || !shards.empty(); first = false) {
    auto round = FireRound(client, shards, now);
    if (!round) return round.error();
    if (first) {
      // The backlog as this turn found it: how many were due (up to a batch a shard) and how
      // late the oldest was. A pump keeping up shows at most a turn's interval.
      metrics_.due.Set(static_cast<double>(round->due));
      metrics_.lag_seconds.Set(static_cast<double>(now - round->oldest_ms) / 1000.0);
    }
    fired += round->fired;
    shards = std::move(round->full);
  }
  return fired;
}

void ReminderPump::Run(redis::Client& client, const std::atomic<bool>& stop, std::chrono::milliseconds interval) {
  while (!stop.load()) {
    if (auto fired = FireDue(client); !fired) {
      log::Warn("reminders: cannot fire due reminders; trying again", {{"error", fired.error().message}});
    }
    for (auto waited = std::chrono::milliseconds(0); waited < interval && !stop.load();
         waited += std::chrono::milliseconds(50)) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  }
}

}  // namespace katy::responder
