#include "services/ingress/event_store.h"

#include <algorithm>
#include <map>
#include <memory>
#include <optional>

namespace katy::ingress {
namespace {

// KEYS[1]   the shard's inbound stream
// KEYS[2..] one dedupe mark per event; ARGV[1] the marks' TTL (s); ARGV[2..] the events (pb).
// Returns one 1 (enqueued) or 0 (duplicate) per event.
//
// SET NX both tests and writes the mark (one command instead of EXISTS then SET: 0.5-0.8 us
// less of Redis's CPU per event, bench/RESULTS.md). Because the mark now comes first, an XADD
// that fails must take its mark back, or Meta's retry would be dropped as a duplicate of an
// event that was never stored: the script deletes it and returns the error, which stops the
// script there (the events before it stay stored and marked, as their retry expects). A script
// is atomic in memory and in the AOF (its effects are written as one MULTI/EXEC), so no crash
// can leave a mark without its event.
constexpr const char* kEnqueueLua = R"lua(
local results = {}
for i = 2, #KEYS do
  if redis.call('SET', KEYS[i], '1', 'NX', 'EX', ARGV[1]) then
    local added = redis.pcall('XADD', KEYS[1], '*', 'pb', ARGV[i])
    if type(added) == 'table' and added.err then
      redis.call('DEL', KEYS[i])
      return added
    end
    results[#results + 1] = 1
  else
    results[#results + 1] = 0
  end
end
return results
)lua";

}  // namespace

const redis::Script& EnqueueScript() {
  static const redis::Script script(kEnqueueLua);
  return script;
}

std::vector<EnqueueCall> PlanEnqueue(const std::vector<katy::v1::InboundEvent>& events, const KeySpace& keys,
                                     std::chrono::seconds dedupe_ttl) {
  std::map<int, std::vector<size_t>> by_shard;
  for (size_t i = 0; i < events.size(); ++i) {
    by_shard[ShardOf(events[i].page_id(), events[i].user_id(), keys.shards())].push_back(i);
  }
  std::vector<EnqueueCall> calls;
  calls.reserve(by_shard.size());
  const std::string ttl = std::to_string(dedupe_ttl.count());
  for (auto& [shard, indexes] : by_shard) {
    std::stable_sort(indexes.begin(), indexes.end(),
                     [&](size_t a, size_t b) { return events[a].timestamp_ms() < events[b].timestamp_ms(); });
    const std::string seen_prefix = keys.SeenPrefix(shard);
    for (size_t first = 0; first < indexes.size(); first += kMaxEventsPerCall) {
      const size_t last = std::min(indexes.size(), first + kMaxEventsPerCall);
      EnqueueCall out;
      out.call.keys.reserve(last - first + 1);
      out.call.args.reserve(last - first + 1);
      out.call.keys.push_back(keys.InStream(shard));
      out.call.args.push_back(ttl);
      for (size_t k = first; k < last; ++k) {
        const auto& event = events[indexes[k]];
        out.call.keys.push_back(seen_prefix + event.page_id() + ":" + event.dedupe_key());
        out.call.args.push_back(event.SerializeAsString());
      }
      out.events.assign(indexes.begin() + static_cast<long>(first), indexes.begin() + static_cast<long>(last));
      calls.push_back(std::move(out));
    }
  }
  return calls;
}

RedisEventStore::RedisEventStore(StoreOptions options)
    : options_(std::move(options)),
      // Each connection (one per master on a cluster) loads the script first, so EVALSHA finds
      // it from the first batch on.
      redis_(options_.redis, {{"SCRIPT", "LOAD", EnqueueScript().source()}}) {}

void RedisEventStore::Store(const std::vector<katy::v1::InboundEvent>& events, Done done) {
  if (events.empty()) return done(StoreResult{});
  // What the batch's calls have answered so far; the last reply completes it. Events start
  // as kFailed and become enqueued or duplicate as their call answers.
  struct Progress {
    StoreResult result;
    size_t calls_left;
    Done done;
  };
  auto calls = PlanEnqueue(events, options_.keys, options_.dedupe_ttl);
  auto progress = std::make_shared<Progress>(
      Progress{{std::vector<Stored>(events.size(), Stored::kFailed), std::nullopt}, calls.size(), std::move(done)});
  for (auto& call : calls) {
    redis_.Send(EnqueueScript().EvalShaCommand(std::move(call.call)),
                [this, progress, indexes = std::move(call.events)](Result<redis::Reply> reply) {
                  StoreResult& result = progress->result;
                  if (!reply) {
                    if (!result.error) result.error = reply.error();
                  } else if (reply->IsError()) {
                    // After a Redis restart or SCRIPT FLUSH the script is gone: load it for the next
                    // batches. This call fails (503) and Meta's retry stores its events.
                    if (redis::IsNoScript(*reply)) redis_.Broadcast({"SCRIPT", "LOAD", EnqueueScript().source()});
                    if (!result.error) result.error = Error{ErrorCode::kReply, reply->str};
                  } else {
                    for (size_t k = 0; k < indexes.size() && k < reply->elements.size(); ++k) {
                      result.events[indexes[k]] =
                          reply->elements[k].integer == 1 ? Stored::kEnqueued : Stored::kDuplicate;
                    }
                  }
                  if (--progress->calls_left == 0) progress->done(std::move(result));
                });
  }
}

}  // namespace katy::ingress
