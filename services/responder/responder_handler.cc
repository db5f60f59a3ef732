#include "services/responder/responder_handler.h"

#include <chrono>
#include <random>

#include "common/events.h"
#include "common/log.h"
#include "katy/v1/events.pb.h"

namespace katy::responder {
namespace {

// KEYS[1] outbound stream, KEYS[2] inbound stream, KEYS[3] conversation hash, KEYS[4] lease.
// ARGV[1] group, ARGV[2] inbound entry id, ARGV[3] conversation TTL (s), ARGV[4] lease owner,
// ARGV[5] n = number of HSET pairs, then 2n values, then m = number of HDEL fields, m names,
// then one serialized OutboundMessage per reply.
// Returns the number of replies added, -1 when the event was already committed, -2 when this
// instance no longer owns the shard.
constexpr const char* kCommitLua = R"lua(
if redis.call('GET', KEYS[4]) ~= ARGV[4] then return -2 end
if redis.call('XACK', KEYS[2], ARGV[1], ARGV[2]) == 0 then return -1 end
local i = 5
local n = tonumber(ARGV[i]); i = i + 1
if n > 0 then
  local pairs = {}
  for k = 0, 2 * n - 1 do pairs[#pairs + 1] = ARGV[i + k] end
  redis.call('HSET', KEYS[3], unpack(pairs))
end
i = i + 2 * n
local m = tonumber(ARGV[i]); i = i + 1
for k = 0, m - 1 do redis.call('HDEL', KEYS[3], ARGV[i + k]) end
i = i + m
if n > 0 or m > 0 then redis.call('EXPIRE', KEYS[3], ARGV[3]) end
local added = 0
for k = i, #ARGV do
  redis.call('XADD', KEYS[1], '*', 'pb', ARGV[k])
  added = added + 1
end
return added
)lua";

constexpr int64_t kConversationTtlS = 90LL * 24 * 3600;

size_t PickRandom(size_t n) {
  thread_local std::mt19937 generator{std::random_device{}()};
  return std::uniform_int_distribution<size_t>(0, n - 1)(generator);
}

Conversation ReadConversation(const redis::Reply& hash) {
  Conversation conversation;
  conversation.first_contact = true;
  for (size_t i = 0; i + 1 < hash.elements.size(); i += 2) {
    const std::string& field = hash.elements[i].str;
    const std::string& value = hash.elements[i + 1].str;
    if (field == "state") conversation.state = value;
    else if (field == "first_name") conversation.first_name = value;
    else if (field == "first_seen_ms") conversation.first_contact = false;
    else if (field.rfind("var:", 0) == 0) conversation.vars[field.substr(4)] = value;
  }
  return conversation;
}

}  // namespace

Result<size_t> RulesHolder::Reload() {
  auto loaded = LoadRulesFile(path_);
  if (!loaded) return loaded.error();
  size_t count = loaded->rules.size();
  auto rules = std::make_shared<const RuleSet>(std::move(*loaded));
  std::lock_guard lock(mutex_);
  rules_ = std::move(rules);
  return count;
}

std::shared_ptr<const RuleSet> RulesHolder::Current() const {
  std::lock_guard lock(mutex_);
  return rules_;
}

ResponderMetrics::ResponderMetrics(metrics::Registry& registry)
    : events(registry.AddCounter("katy_responder_events_total", "Inbound events processed, by kind and rule")),
      replies(registry.AddCounter("katy_responder_replies_total", "Reply messages enqueued for the sender")),
      latency(registry.AddHistogram("katy_responder_processing_seconds",
                                    "Time to process one inbound event", metrics::LatencyBuckets())) {}

ResponderHandler::ResponderHandler(KeySpace keys, const RulesHolder& rules, ResponderMetrics& metrics,
                                   Clock now_ms)
    : keys_(std::move(keys)), rules_(rules), metrics_(metrics), now_ms_(std::move(now_ms)),
      commit_script_(kCommitLua) {}

std::string ConversationOfEvent(const redis::StreamEntry& entry) {
  katy::v1::InboundEvent event;
  auto payload = entry.Field("pb");
  if (!payload || !event.ParseFromString(*payload)) return "";
  return event.page_id() + ":" + event.user_id();
}

redis::HandleResult ResponderHandler::operator()(redis::Client& client, const redis::StreamEntry& entry,
                                                 const redis::Fence& fence) const {
  const auto started = std::chrono::steady_clock::now();
  katy::v1::InboundEvent event;
  auto payload = entry.Field("pb");
  if (!payload || !event.ParseFromString(*payload)) return redis::HandleResult::Poison("undecodable_event");

  const int shard = ShardOf(event.page_id(), event.user_id(), keys_.shards());
  const std::string conversation_key = keys_.Conversation(shard, event.page_id(), event.user_id());
  Conversation conversation;
  if (!event.user_id().empty()) {
    auto hash = client.Command({"HGETALL", conversation_key});
    if (!hash) return redis::HandleResult::Retry("redis_" + hash.error().code);
    conversation = ReadConversation(*hash);
  }

  const int64_t now = now_ms_();
  Decision decision = Decide(*rules_.Current(), event, conversation, PickRandom);

  std::vector<std::string> hset;
  std::vector<std::string> hdel;
  const bool from_user = IsReplyable(event);
  if (from_user) {
    int64_t at = event.timestamp_ms() > 0 ? event.timestamp_ms() : event.received_at_ms();
    hset.insert(hset.end(), {"last_user_ms", std::to_string(at)});
    if (conversation.first_contact) hset.insert(hset.end(), {"first_seen_ms", std::to_string(at)});
  } else if (event.kind() == katy::v1::EVENT_KIND_DELIVERY) {
    hset.insert(hset.end(), {"delivered_watermark", std::to_string(event.watermark())});
  } else if (event.kind() == katy::v1::EVENT_KIND_READ) {
    hset.insert(hset.end(), {"read_watermark", std::to_string(event.watermark())});
  }
  for (const auto& [name, value] : decision.set_vars) hset.insert(hset.end(), {"var:" + name, value});
  if (decision.next_state) {
    if (decision.next_state->empty()) hdel.push_back("state");
    else hset.insert(hset.end(), {"state", *decision.next_state});
  }

  std::vector<std::string> args{KeySpace::kResponderGroup, entry.id, std::to_string(kConversationTtlS),
                                 fence.owner, std::to_string(hset.size() / 2)};
  args.insert(args.end(), hset.begin(), hset.end());
  args.push_back(std::to_string(hdel.size()));
  args.insert(args.end(), hdel.begin(), hdel.end());
  const int64_t user_last_ms = from_user ? event.timestamp_ms() : 0;
  for (size_t i = 0; i < decision.messages.size(); ++i) {
    katy::v1::OutboundMessage reply;
    reply.set_id(entry.id + "#" + std::to_string(i));
    reply.set_page_id(event.page_id());
    reply.set_recipient_id(event.user_id());
    reply.set_recipient_is_ref(event.user_is_ref());
    reply.set_messaging_type("RESPONSE");
    reply.set_message_json(decision.messages[i]);
    reply.set_in_reply_to_mid(event.mid());
    reply.set_created_at_ms(now);
    reply.set_event_received_at_ms(event.received_at_ms());
    reply.set_user_last_message_ms(user_last_ms);
    args.push_back(reply.SerializeAsString());
  }

  auto committed = commit_script_.Run(
      client, {keys_.OutStream(shard), entry.stream, conversation_key, fence.lease_key}, args);
  if (!committed) return redis::HandleResult::Retry("redis_" + committed.error().code);
  if (committed->integer == -2) return redis::HandleResult::Abandon("lost_lease");

  const std::string kind = EventKindName(event.kind());
  metrics_.events.WithLabels({{"kind", kind}, {"rule", decision.rule.empty() ? "none" : decision.rule}}).Inc();
  if (committed->integer > 0) metrics_.replies.WithLabels({}).Inc(static_cast<double>(committed->integer));
  metrics_.latency.WithLabels({}).Observe(
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
  log::Debug("event processed", {{"id", entry.id}, {"page", event.page_id()}, {"mid", event.mid()},
                                 {"shard", shard}, {"rule", decision.rule},
                                 {"replies", committed->integer}});
  return redis::HandleResult::Done();
}

}  // namespace katy::responder
