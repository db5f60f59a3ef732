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
    std::stable_sort(indexes.begin(), indexes.end(), [&](size_t a, size_t b) {
      return events[a].timestamp_ms() < events[b].timestamp_ms();
    });
    EnqueueCall out;
    out.call.keys.push_back(keys.InStream(shard));
    out.call.args.push_back(ttl);
    const std::string seen_prefix = keys.SeenPrefix(shard);
    for (size_t i : indexes) {
      out.call.keys.push_back(seen_prefix + events[i].page_id() + ":" + events[i].dedupe_key());
      out.call.args.push_back(events[i].SerializeAsString());
    }
    out.events = std::move(indexes);
    calls.push_back(std::move(out));
  }
  return calls;
}

RedisEventStore::RedisEventStore(StoreOptions options)
    : options_(std::move(options)),
      // Each connection loads the script first, so EVALSHA finds it from the first batch on.
      connection_(options_.redis, {{"SCRIPT", "LOAD", EnqueueScript().source()}}) {}

void RedisEventStore::Store(const std::vector<katy::v1::InboundEvent>& events, Done done) {
  if (events.empty()) return done(std::vector<bool>{});
  // What the batch's calls have answered so far; the last reply (or the first failure)
  // completes it.
  struct Progress {
    std::vector<bool> flags;
    size_t calls_left;
    std::optional<Error> error;
    Done done;
  };
  auto calls = PlanEnqueue(events, options_.keys, options_.dedupe_ttl);
  auto progress = std::make_shared<Progress>(Progress{std::vector<bool>(events.size(), false), calls.size(), {}, std::move(done)});
  for (auto& call : calls) {
    const auto command = EnqueueScript().EvalShaCommand(std::move(call.call));
    connection_.Send(command, [this, progress, indexes = std::move(call.events)](Result<redis::Reply> reply) {
      if (!reply) {
        if (!progress->error) progress->error = reply.error();
      } else if (reply->IsError()) {
        // After a Redis restart or SCRIPT FLUSH the script is gone: load it for the next
        // batches. This one fails (503) and Meta's retry stores it.
        if (redis::IsNoScript(*reply)) connection_.Send({"SCRIPT", "LOAD", EnqueueScript().source()}, [](auto) {});
        if (!progress->error) progress->error = Error{"reply", reply->str};
      } else {
        for (size_t k = 0; k < indexes.size() && k < reply->elements.size(); ++k) {
          progress->flags[indexes[k]] = reply->elements[k].integer == 1;
        }
      }
      if (--progress->calls_left > 0) return;
      if (progress->error) {
        progress->done(*progress->error);
      } else {
        progress->done(std::move(progress->flags));
      }
    });
  }
}

}  // namespace katy::ingress
