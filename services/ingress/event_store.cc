#include "services/ingress/event_store.h"

#include <algorithm>
#include <charconv>
#include <map>
#include <memory>
#include <optional>

#include "common/clock.h"

namespace katy::ingress {
namespace {

// KEYS[1] the first shard's inbound stream, then each event's mark key(s); ARGV[1] the TTL (s)
// of a mark of its own; then four ARGV per event: its shape, its digest, when its bucket
// expires (epoch s; empty when the bucket's expiry is not due: BucketExpiries), the event
// (pb). Shapes:
//   "s"  not an event: the events after it go to the inbound stream KEYS[k] (the next shard's,
//        when the call carries several shards' events: one Redis, not a cluster);
//   "b"  a member (the digest) of the bucket KEYS[k], an intset of the shard's events of 5 s;
//   "bk" the same, after checking that KEYS[k + 1], a mark of its own from the key layout
//        before buckets (docs/scaling.md), is absent;
//   "k"  a mark of its own, KEYS[k] (an event without a timestamp to bucket it by).
// Returns one 1 (enqueued) or 0 (duplicate) per event.
//
// The mark comes first (SADD or SET NX both test and write it), so an XADD that fails must
// take its mark back, or Meta's retry would be dropped as a duplicate of an event that was
// never stored: the script removes it and returns the error, which stops the script there (the
// events before it stay stored and marked, as their retry expects). A script is atomic in
// memory and in the AOF (its effects are written as one MULTI/EXEC), so no crash can leave a
// mark without its event. A bucket's expiry is set at most once per call, and only when due
// (the ingress loop's first write to the bucket, then every second, and after a failed call):
// its events of one call share it, and it only moves later.
constexpr const char* kEnqueueLua = R"lua(
local results = {}
local expiring = {}
local stream = KEYS[1]
local k = 2
-- One event: 1 when its mark was new and it went on the stream, 0 when a duplicate, or the
-- error of a failed XADD (its mark taken back).
local function enqueue(shape, digest, expire_at, pb)
  local mark = KEYS[k]
  local fresh
  if shape == 'k' then
    fresh = redis.call('SET', mark, '1', 'NX', 'EX', ARGV[1])
    k = k + 1
  else
    fresh = shape ~= 'bk' or redis.call('EXISTS', KEYS[k + 1]) == 0
    if fresh then fresh = redis.call('SADD', mark, digest) == 1 end
    k = k + #shape
  end
  if not fresh then return 0 end
  local added = redis.pcall('XADD', stream, '*', 'pb', pb)
  if type(added) == 'table' and added.err then
    if shape == 'k' then redis.call('DEL', mark) else redis.call('SREM', mark, digest) end
    return added
  end
  if shape ~= 'k' and expire_at ~= '' and not expiring[mark] then
    redis.call('EXPIREAT', mark, expire_at)
    expiring[mark] = true
  end
  return 1
end
for a = 2, #ARGV, 4 do
  if ARGV[a] == 's' then
    stream = KEYS[k]
    k = k + 1
  else
    local outcome = enqueue(ARGV[a], ARGV[a + 1], ARGV[a + 2], ARGV[a + 3])
    if type(outcome) == 'table' then return outcome end
    results[#results + 1] = outcome
  end
end
return results
)lua";

}  // namespace

const redis::Script& EnqueueScript() {
  static const redis::Script script(kEnqueueLua);
  return script;
}

namespace {

// The arguments and keys of one event in an enqueue call (kEnqueueLua's shapes).
void AddEvent(const katy::v1::InboundEvent& event, const KeySpace& keys, int shard, const MarkTimes& times,
              EnqueueCall& out) {
  const int64_t timestamp = event.timestamp_ms();
  // A mark of its own: the layout before buckets, and still for an event without a timestamp.
  const auto own_mark = [&] { return keys.SeenPrefix(shard) + event.page_id() + ":" + event.dedupe_key(); };
  if (timestamp <= 0) {
    out.call.keys.push_back(own_mark());
    out.call.args.insert(out.call.args.end(), {"k", "", ""});
  } else {
    const BucketPlace place = PlaceInBucket(timestamp, kSeenBucketMs, times.ttl, times.now_ms);
    const bool check_legacy = timestamp < times.legacy_before_ms;
    std::string bucket = keys.SeenBucket(shard, place.bucket);
    const bool set_expiry = !times.expiry_due || times.expiry_due(bucket);
    if (set_expiry && std::find(out.expiring.begin(), out.expiring.end(), bucket) == out.expiring.end()) {
      out.expiring.push_back(bucket);
    }
    out.call.keys.push_back(std::move(bucket));
    if (check_legacy) out.call.keys.push_back(own_mark());
    out.call.args.insert(out.call.args.end(),
                         {check_legacy ? "bk" : "b", std::to_string(MarkDigest(event.page_id(), event.dedupe_key())),
                          set_expiry ? std::to_string(place.expire_at_s) : ""});
  }
  out.call.args.push_back(event.SerializeAsString());
}

}  // namespace

std::vector<EnqueueCall> PlanEnqueue(const std::vector<katy::v1::InboundEvent>& events, const KeySpace& keys,
                                     const MarkTimes& times, bool one_node) {
  std::map<int, std::vector<size_t>> by_shard;
  for (size_t i = 0; i < events.size(); ++i) {
    by_shard[ShardOf(events[i].page_id(), events[i].user_id(), keys.shards())].push_back(i);
  }
  std::vector<EnqueueCall> calls;
  const auto start_call = [&](int shard) {
    EnqueueCall& out = calls.emplace_back();
    out.call.keys.push_back(keys.InStream(shard));
    out.call.args.push_back(std::to_string(times.ttl.count()));
  };
  for (auto& [shard, indexes] : by_shard) {
    std::stable_sort(indexes.begin(), indexes.end(),
                     [&](size_t a, size_t b) { return events[a].timestamp_ms() < events[b].timestamp_ms(); });
    for (size_t k = 0; k < indexes.size(); ++k) {
      const bool call_full = calls.empty() || calls.back().events.size() == kMaxEventsPerCall;
      if (call_full || (k == 0 && !one_node)) {
        start_call(shard);
      } else if (k == 0) {  // the shard's events join the call: its stream first
        calls.back().call.keys.push_back(keys.InStream(shard));
        calls.back().call.args.insert(calls.back().call.args.end(), {"s", "", "", ""});
      }
      AddEvent(events[indexes[k]], keys, shard, times, calls.back());
      calls.back().events.push_back(indexes[k]);
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
  const auto now = BucketExpiries::Clock::now();
  auto calls = PlanEnqueue(events, options_.keys,
                           {options_.dedupe_ttl, WallClockMs(), options_.legacy_marks_before_ms,
                            [this, now](const std::string& bucket) { return expiries_.Due(bucket, now); }},
                           redis_.single_node());
  auto progress = std::make_shared<Progress>(
      Progress{{std::vector<Stored>(events.size(), Stored::kFailed), std::nullopt}, calls.size(), std::move(done)});
  for (auto& call : calls) {
    redis_.Send(EnqueueScript().EvalShaCommand(std::move(call.call)),
                [this, progress, now, indexes = std::move(call.events),
                 expiring = std::move(call.expiring)](Result<redis::Reply> reply) {
                  StoreResult& result = progress->result;
                  // A failure may be a failover to a replica that never had the expiries.
                  if (!reply || reply->IsError()) expiries_.Forget();
                  if (!reply) {
                    if (!result.error) result.error = reply.error();
                  } else if (reply->IsError()) {
                    // After a Redis restart or SCRIPT FLUSH the script is gone: load it for the next
                    // batches. This call fails (503) and Meta's retry stores its events.
                    if (redis::IsNoScript(*reply)) redis_.Broadcast({"SCRIPT", "LOAD", EnqueueScript().source()});
                    if (!result.error) result.error = Error{ErrorCode::kReply, reply->str};
                  } else {
                    for (const std::string& bucket : expiring) expiries_.Set(bucket, now);
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
