#include "services/ingress/event_sink.h"

#include <algorithm>
#include <map>

namespace katy::ingress {
namespace {

// KEYS[1]   the shard's inbound stream
// KEYS[2..] one dedupe mark per event; ARGV[1] the marks' TTL (s); ARGV[2..] the events (pb).
// Returns one 1 (enqueued) or 0 (duplicate) per event. The mark is written after the XADD:
// if the XADD fails the script stops there and Meta's retry finds no mark, so nothing is lost.
constexpr const char* kEnqueueLua = R"lua(
local results = {}
for i = 2, #KEYS do
  if redis.call('EXISTS', KEYS[i]) == 0 then
    redis.call('XADD', KEYS[1], '*', 'pb', ARGV[i])
    redis.call('SET', KEYS[i], '1', 'EX', ARGV[1])
    results[#results + 1] = 1
  else
    results[#results + 1] = 0
  end
end
return results
)lua";

}  // namespace

RedisEventSink::RedisEventSink(redis::ClientPool& pool, KeySpace keys, std::chrono::seconds dedupe_ttl)
    : pool_(pool), keys_(std::move(keys)), dedupe_ttl_s_(std::to_string(dedupe_ttl.count())),
      script_(kEnqueueLua) {}

Result<std::vector<bool>> RedisEventSink::Enqueue(const std::vector<katy::v1::InboundEvent>& events) {
  std::vector<bool> enqueued(events.size(), false);
  if (events.empty()) return enqueued;

  // Group by shard; inside a shard, order by the event timestamp (Meta may deliver out of
  // order after failures), keeping body order for equal timestamps.
  std::map<int, std::vector<size_t>> by_shard;
  for (size_t i = 0; i < events.size(); ++i) {
    by_shard[ShardOf(events[i].page_id(), events[i].user_id(), keys_.shards())].push_back(i);
  }
  std::vector<redis::Script::Call> calls;
  std::vector<const std::vector<size_t>*> call_events;
  calls.reserve(by_shard.size());
  for (auto& [shard, indexes] : by_shard) {
    std::stable_sort(indexes.begin(), indexes.end(), [&](size_t a, size_t b) {
      return events[a].timestamp_ms() < events[b].timestamp_ms();
    });
    redis::Script::Call call;
    call.keys.push_back(keys_.InStream(shard));
    call.args.push_back(dedupe_ttl_s_);
    const std::string seen_prefix = keys_.SeenPrefix(shard);
    for (size_t i : indexes) {
      call.keys.push_back(seen_prefix + events[i].page_id() + ":" + events[i].dedupe_key());
      call.args.push_back(events[i].SerializeAsString());
    }
    calls.push_back(std::move(call));
    call_events.push_back(&indexes);
  }

  auto client = pool_.Acquire();
  auto replies = script_.RunPipelined(*client, calls);
  // A pooled connection may have gone stale (Redis restarted): one fresh attempt is safe
  // because the script is idempotent.
  if (!replies && replies.error().code == "io") replies = script_.RunPipelined(*client, calls);
  if (!replies) return replies.error();

  for (size_t c = 0; c < replies->size(); ++c) {
    const redis::Reply& reply = (*replies)[c];
    if (reply.IsError()) return Error{"reply", reply.str};
    const auto& indexes = *call_events[c];
    for (size_t k = 0; k < indexes.size() && k < reply.elements.size(); ++k) {
      enqueued[indexes[k]] = reply.elements[k].integer == 1;
    }
  }
  return enqueued;
}

}  // namespace katy::ingress
