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

Result<size_t> ReminderPump::FireShard(redis::Client& client, int shard, int64_t now, bool* more) {
  const std::string timers = keys_.Timers(shard);
  auto due = client.Command(
      {"ZRANGEBYSCORE", timers, "-inf", std::to_string(now), "WITHSCORES", "LIMIT", "0", std::to_string(kBatch)});
  if (!due) return due.error();
  std::vector<redis::Script::Call> calls;
  for (size_t i = 0; i + 1 < due->elements.size(); i += 2) {
    const std::string& member = due->elements[i].str;
    const auto owner = ParseReminderMember(member);
    if (!owner) {
      // Not one Katy wrote: removed so it does not block the rest.
      log::Warn("a timers member names no reminder; removed", {{"shard", shard}, {"member", member}});
      if (auto removed = client.Command({"ZREM", timers, member}); !removed) return removed.error();
      continue;
    }
    const int64_t due_ms = std::atoll(due->elements[i + 1].str.c_str());
    calls.push_back(
        {{timers, keys_.InStream(shard), keys_.Lease(shard, "responder"),
          keys_.Conversation(shard, owner->page, owner->user)},
         {member, owner_, std::to_string(now), ReminderField(owner->name), TimerEvent(*owner, due_ms, now)}});
  }
  *more = due->elements.size() / 2 >= kBatch;
  if (calls.empty()) return size_t{0};
  auto fired = fire_script_.RunPipelined(client, calls);
  if (!fired) return fired.error();
  size_t count = 0;
  for (const auto& reply : *fired) {
    if (reply.IsError()) return redis::ReplyError(reply.str);
    if (reply.integer == 1) ++count;
    if (reply.integer == -2) *more = false;  // the shard moved: its next owner fires the rest
  }
  metrics_.fired.Increment(static_cast<double>(count));
  return count;
}

Status ReminderPump::UpdateBacklog(redis::Client& client, const std::vector<int>& shards, int64_t now) {
  std::vector<std::vector<std::string>> reads;
  for (int shard : shards) {
    reads.push_back({"ZCOUNT", keys_.Timers(shard), "-inf", std::to_string(now)});
    reads.push_back({"ZRANGE", keys_.Timers(shard), "0", "0", "WITHSCORES"});
  }
  if (reads.empty()) {
    metrics_.due.Set(0);
    metrics_.lag_seconds.Set(0);
    return Ok{};
  }
  auto replies = client.Pipeline(reads);
  if (!replies) return replies.error();
  long long due = 0;
  int64_t oldest = now;
  for (size_t i = 0; i + 1 < replies->size(); i += 2) {
    due += (*replies)[i].integer;
    const auto& first = (*replies)[i + 1].elements;
    if (first.size() == 2) oldest = std::min<int64_t>(oldest, std::atoll(first[1].str.c_str()));
  }
  metrics_.due.Set(static_cast<double>(due));
  metrics_.lag_seconds.Set(static_cast<double>(now - oldest) / 1000.0);
  return Ok{};
}

Result<size_t> ReminderPump::FireDue(redis::Client& client) {
  const std::vector<int> shards = owned_shards_();
  const int64_t now = now_ms_();
  size_t fired = 0;
  for (int shard : shards) {
    bool more = true;
    while (more) {
      auto count = FireShard(client, shard, now, &more);
      if (!count) return count.error();
      fired += *count;
    }
  }
  if (auto backlog = UpdateBacklog(client, shards, now_ms_()); !backlog) return backlog.error();
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
