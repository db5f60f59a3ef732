#include "common/grpc/conversation_control.h"

#include <map>

#include "common/redis/script.h"
#include "common/reminder_keys.h"

#include <algorithm>
#include <cstdlib>

#include "common/events.h"
#include "common/redis/streams.h"
#include "katy/v1/events.pb.h"

namespace katy::grpcsvc {
namespace {

constexpr int kScannedEntries = 1000;

void FillEvent(const std::string& id, const katy::v1::InboundEvent& event, katy::v1::ConversationEvent* out) {
  out->set_stream_id(id);
  out->set_kind(event.kind() == katy::v1::EVENT_KIND_HANDOVER ? event.kind_key() : EventKindName(event.kind()));
  std::string text = event.text();
  if (text.empty()) text = event.postback_payload();
  if (text.empty()) text = event.metadata();
  if (event.kind() == katy::v1::EVENT_KIND_TIMER) text = event.kind_key();  // the reminder's name
  out->set_text(text);
  out->set_timestamp_ms(event.timestamp_ms());
  out->set_standby(event.standby());
  out->set_app_id(event.app_id());
}

}  // namespace

Result<katy::v1::Conversation> ReadConversationState(redis::Client& client, const KeySpace& keys,
                                                     const std::string& page, const std::string& user, int events,
                                                     int64_t now_ms) {
  katy::v1::Conversation out;
  out.set_page_id(page);
  out.set_user_id(user);
  const int shard = ShardOf(page, user, keys.shards());
  out.set_shard(shard);
  auto hash = client.Command({"HGETALL", keys.Conversation(shard, page, user)});
  if (!hash) return hash.error();
  for (size_t i = 0; i + 1 < hash->elements.size(); i += 2) {
    (*out.mutable_fields())[hash->elements[i].str] = hash->elements[i + 1].str;
  }
  const auto& fields = out.fields();
  auto number = [&](const char* name) { return fields.contains(name) ? std::atoll(fields.at(name).c_str()) : 0LL; };
  out.set_owner(fields.contains("owner") ? fields.at("owner") : "katy");
  out.set_owner_since_ms(number("owner_since_ms"));
  out.set_last_user_ms(number("last_user_ms"));
  out.set_ad_window_until_ms(number("ad_window_until_ms"));
  out.set_opted_out_ms(number("opted_out_ms"));
  out.set_window_closes_ms(StandardWindowEnd({out.last_user_ms(), out.ad_window_until_ms()}));
  out.set_window_open(out.last_user_ms() > 0 && now_ms <= out.window_closes_ms());
  std::map<std::string, std::string> hash_fields(fields.begin(), fields.end());
  for (const auto& pending : PendingReminders(hash_fields)) {
    auto* reminder = out.add_reminders();
    reminder->set_name(pending.name);
    reminder->set_due_ms(pending.due_ms);
    reminder->set_keep(pending.keep);
  }
  out.set_human_agent_window_open(out.last_user_ms() > 0 && now_ms - out.last_user_ms() <= kHumanAgentWindowMs);

  const std::string stream = keys.InStream(shard);
  auto range = client.Command({"XREVRANGE", stream, "+", "-", "COUNT", std::to_string(kScannedEntries)});
  if (!range) return range.error();
  std::vector<katy::v1::ConversationEvent> latest;
  for (const auto& entry : redis::ParseEntries(stream, *range)) {
    if (static_cast<int>(latest.size()) >= (events > 0 ? events : 10)) break;
    katy::v1::InboundEvent event;
    auto payload = entry.Field("pb");
    if (!payload || !event.ParseFromString(*payload) || event.page_id() != page || event.user_id() != user) continue;
    FillEvent(entry.id, event, &latest.emplace_back());
  }
  std::reverse(latest.begin(), latest.end());
  for (auto& event : latest) *out.add_events() = std::move(event);
  return out;
}

Result<std::string> AppendOwnerEvent(redis::Client& client, const KeySpace& keys,
                                     const katy::v1::SetConversationOwnerRequest& request, int64_t now_ms) {
  katy::v1::InboundEvent event;
  event.set_page_id(request.page_id());
  event.set_user_id(request.user_id());
  event.set_kind(katy::v1::EVENT_KIND_HANDOVER);
  event.set_kind_key(request.pause() ? kPauseEvent : kResumeEvent);
  event.set_metadata(request.reason().empty() ? std::string("katyctl conv ") + (request.pause() ? "pause" : "resume")
                                              : request.reason());
  event.set_timestamp_ms(now_ms);
  event.set_received_at_ms(now_ms);
  event.set_dedupe_key("ctl:" + event.kind_key() + ":" + std::to_string(now_ms));
  const int shard = ShardOf(request.page_id(), request.user_id(), keys.shards());
  auto added = client.Command({"XADD", keys.InStream(shard), "*", "pb", event.SerializeAsString()});
  if (!added) return added.error();
  return added->str;
}

Result<bool> CancelReminder(redis::Client& client, const KeySpace& keys,
                            const katy::v1::CancelReminderRequest& request) {
  // The sorted set's member and the conversation's field go together (common/reminder_keys.h);
  // a reminder already fired is in neither.
  static const redis::Script cancel(R"lua(
local removed = redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[2], ARGV[2])
return removed
)lua");
  const int shard = ShardOf(request.page_id(), request.user_id(), keys.shards());
  auto removed =
      cancel.Run(client, {keys.Timers(shard), keys.Conversation(shard, request.page_id(), request.user_id())},
                 {ReminderMember(request.page_id(), request.user_id(), request.name()), ReminderField(request.name())});
  if (!removed) return removed.error();
  return removed->integer == 1;
}

}  // namespace katy::grpcsvc
