#include "services/sender/page_limiter.h"

#include <algorithm>
#include <cmath>

#include "common/redis/replication_health.h"

namespace katy::sender {
namespace {

// KEYS[1] the page's hash. ARGV: tat field (tat|media_tat), rate field (rate|media_rate),
// default rate, the default-rate fallback hash's rate (from katy:rate:*, may be empty).
// ARGV[5] how far ahead a slot may be reserved (ms), ARGV[6] how long an unused hash lives (ms),
// ARGV[7] how many slots more to take after the first, if they fall due within ARGV[8] ms (for
// the caller's pool, SlotPool).
// Returns {1, due_ms, more due_ms...} slots taken, the first due in due_ms (0: now), {0,
// wait_ms} none taken: ask again after wait_ms, {-1, 0} paused. Uses Redis's clock: every
// sender instance measures time the same way. A hash that holds only the limiter's own state
// (no operator's rate or pause) expires once unused, so pages that stopped sending leave nothing
// behind: its idle lifetime is renewed when its slots move into a new minute (or it has none
// yet), not on every slot, which was one command more a message (bench/RESULTS.md); a day give
// or take a minute is the same.
constexpr const char* kAcquireLua = R"lua(
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local cfg = redis.call('HMGET', KEYS[1], ARGV[2], 'paused', 'blocked_until', ARGV[1], 'rate', 'media_rate')
if cfg[2] == '1' then return {-1, 0} end
local blocked = tonumber(cfg[3]) or 0
if blocked > now then return {0, math.ceil(blocked - now)} end
local rate = tonumber(cfg[1]) or tonumber(ARGV[4]) or tonumber(ARGV[3])
local interval = 1000 / rate
local tolerance = interval * math.max(0.5, math.floor(rate * 0.01))
local tat = tonumber(cfg[4]) or now
if tat < now then tat = now end
local due = tat - tolerance - now
local ahead = tonumber(ARGV[5])
if due > ahead then return {0, math.ceil(due - ahead)} end
local slots = {1, math.max(0, math.ceil(due))}
tat = tat + interval
local more, within = tonumber(ARGV[7]) or 0, tonumber(ARGV[8]) or 0
while #slots - 2 < more and tat - tolerance - now <= within do
  slots[#slots + 1] = math.max(0, math.ceil(tat - tolerance - now))
  tat = tat + interval
end
redis.call('HSET', KEYS[1], ARGV[1], tostring(tat))
local renew = not cfg[4] or math.floor(tonumber(cfg[4]) / 60000) ~= math.floor(tat / 60000)
if renew and not cfg[5] and not cfg[6] then redis.call('PEXPIRE', KEYS[1], ARGV[6]) end
return slots
)lua";

// KEYS[1] the page's hash. ARGV[1] duration ms, ARGV[2] how long an unused hash lives (ms).
// Extends blocked_until, never shortens it.
constexpr const char* kThrottleLua = R"lua(
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local until_ms = now + tonumber(ARGV[1])
local cfg = redis.call('HMGET', KEYS[1], 'blocked_until', 'rate', 'media_rate', 'paused')
if until_ms > (tonumber(cfg[1]) or 0) then
  redis.call('HSET', KEYS[1], 'blocked_until', tostring(math.floor(until_ms)))
  if not cfg[2] and not cfg[3] and not cfg[4] then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
end
return 1
)lua";

std::string Number(double value) {
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, "%.6g", value);
  return buffer;
}

// How far ahead Acquire reserves a slot (the script's ARGV[5]).
const std::string kReserveAheadMs = std::to_string(PageLimiter::kReserveAhead.count());
// How long a page's hash outlives its last send when no operator set its rate or paused it: a
// day, far past any Retry-After Meta gives.
const std::string kIdleTtlMs = std::to_string(24LL * 3600 * 1000);
// The slots beyond the first an ask takes for the pool fall due within this (the script's ARGV[8]).
const std::string kPoolWindowMs = std::to_string(SlotPool::kWindow.count());

}  // namespace

GcraResult Gcra(double tat_ms, double now_ms, double rate_per_s, double reserve_ahead_ms) {
  const double interval = 1000.0 / rate_per_s;
  const double tolerance = interval * std::max(0.5, std::floor(rate_per_s * 0.01));
  const double tat = std::max(tat_ms, now_ms);
  const double due = tat - tolerance - now_ms;
  if (due > reserve_ahead_ms) return {false, tat_ms, due - reserve_ahead_ms};
  return {true, tat + interval, std::max(0.0, due)};
}

PageLimiter::PageLimiter(KeySpace keys, double default_rate, double default_media_rate)
    : keys_(std::move(keys)),
      default_rate_(Number(default_rate)),
      default_media_rate_(Number(default_media_rate)),
      acquire_(kAcquireLua),
      throttle_(kThrottleLua) {}

Result<PageLimiter::Global> PageLimiter::ReadGlobal(redis::Client& client) const {
  const auto now = std::chrono::steady_clock::now();
  {
    std::lock_guard lock(global_mutex_);
    if (global_.valid && now - global_.read_at < kGlobalRefresh) return global_;
  }
  // A separate key from the page's, so it cannot join the acquire script on a Redis Cluster.
  auto reply = client.Command({"HMGET", keys_.Rate(kAllPages), "paused", "rate", "media_rate"});
  if (!reply) return reply.error();
  if (reply->elements.size() != 3) return Error{ErrorCode::kReply, "unexpected HMGET answer"};
  Global read{reply->elements[0].str == "1", reply->elements[1].str, reply->elements[2].str, now, true};
  std::lock_guard lock(global_mutex_);
  global_ = read;
  return read;
}

void PageLimiter::ForgetGlobal() const {
  std::lock_guard lock(global_mutex_);
  global_.valid = false;
}

Result<PageGate> PageLimiter::Acquire(redis::Client& client, const std::string& page, bool media,
                                      const std::string& part_key) const {
  auto ask = Prepare(client, page, media, part_key);
  if (!ask) return ask.error();
  if (ask->decided) return *ask->decided;
  auto reply = acquire_.Run(client, ask->call.keys, ask->call.args);
  if (!reply) return reply.error();
  return GateOf(*reply, part_key, ask->lane);
}

Result<PageLimiter::Ask> PageLimiter::Prepare(redis::Client& client, const std::string& page, bool media,
                                              const std::string& part_key) const {
  auto global = ReadGlobal(client);
  if (!global) return global.error();
  List(client, page);
  auto reserved = reservations_.Take(part_key);
  if (global->paused) return Ask{PageGate{PageGate::Kind::kPaused, {}, {}}, {}, {}};
  const auto now = SlotReservations::Clock::now();
  // Woken early for its reservation, a part keeps it (GateOfSlot holds it again).
  if (reserved) return Ask{GateOfSlot(*reserved, now, part_key), {}, {}};
  std::string lane = media ? page + "/media" : page;
  if (auto pooled = pool_.Take(lane, now)) return Ask{GateOfSlot(*pooled, now, part_key), {}, std::move(lane)};
  const std::string more = std::to_string(pool_.Wanted(lane, now) - 1);
  return Ask{std::nullopt,
             {{keys_.Rate(page)},
              {media ? "media_tat" : "tat", media ? "media_rate" : "rate", media ? default_media_rate_ : default_rate_,
               media ? global->media_rate : global->rate, kReserveAheadMs, kIdleTtlMs, more, kPoolWindowMs}},
             std::move(lane)};
}

PageGate PageLimiter::GateOfSlot(SlotReservations::Clock::time_point due, SlotReservations::Clock::time_point now,
                                 const std::string& part_key) const {
  if (due <= now) return PageGate{PageGate::Kind::kGo, {}, due};
  reservations_.Hold(part_key, due);
  return PageGate{PageGate::Kind::kWait, std::chrono::ceil<std::chrono::milliseconds>(due - now), {}};
}

std::vector<std::string> PageLimiter::Command(const Ask& ask) const {
  return acquire_.EvalShaCommand(ask.call.keys, ask.call.args);
}

Result<PageGate> PageLimiter::Finish(redis::Client& client, const redis::Reply& reply, const Ask& ask,
                                     const std::string& part_key) const {
  if (!redis::IsNoScript(reply)) return GateOf(reply, part_key, ask.lane);
  auto again = acquire_.Run(client, ask.call.keys, ask.call.args);
  if (!again) return again.error();
  return GateOf(*again, part_key, ask.lane);
}

Result<PageGate> PageLimiter::GateOf(const redis::Reply& reply, const std::string& part_key,
                                     const std::string& lane) const {
  if (reply.IsError()) return redis::ReplyError(reply.str);
  if (!reply.IsArray() || reply.elements.size() < 2) return Error{ErrorCode::kReply, "unexpected limiter answer"};
  const long long verdict = reply.elements[0].integer;
  if (verdict == -1) return PageGate{PageGate::Kind::kPaused, {}, {}};
  if (verdict == 1 && reply.elements.size() > 2) {
    const auto now = SlotPool::Clock::now();
    std::vector<SlotPool::Clock::time_point> more;
    for (size_t i = 2; i < reply.elements.size(); ++i) {
      more.push_back(now + std::chrono::milliseconds(reply.elements[i].integer));
    }
    pool_.Add(lane, more);
  }
  const std::chrono::milliseconds wait(reply.elements[1].integer);
  if (verdict == 1 && wait.count() == 0) return PageGate{};
  if (verdict == 1) reservations_.Hold(part_key, SlotReservations::Clock::now() + wait);
  return PageGate{PageGate::Kind::kWait, wait, {}};
}

void SlotReservations::Hold(const std::string& part_key, Clock::time_point due) {
  std::lock_guard lock(mutex_);
  if (due_.size() >= kSweepAbove) {
    // Parts that never came back for their slot (their shard moved to another sender).
    const auto stale = Clock::now() - kStale;
    std::erase_if(due_, [&](const auto& entry) { return entry.second < stale; });
  }
  due_[part_key] = due;
}

std::optional<SlotReservations::Clock::time_point> SlotReservations::Take(const std::string& part_key) {
  std::lock_guard lock(mutex_);
  auto found = due_.find(part_key);
  if (found == due_.end()) return std::nullopt;
  auto due = found->second;
  due_.erase(found);
  return due;
}

Status PageLimiter::Throttle(redis::Client& client, const std::string& page, std::chrono::milliseconds duration) const {
  DropPooledSlots(page);
  auto reply = throttle_.Run(client, {keys_.Rate(page)}, {std::to_string(duration.count()), kIdleTtlMs});
  if (!reply) return reply.error();
  List(client, page);
  return Ok{};
}

Result<bool> PageLimiter::Pause(redis::Client& client, const std::string& page, const std::string& reason) const {
  // HSETNX: of several senders (or workers) hitting the same broken page, one pauses it.
  // PERSIST: an operator's (or Meta's) pause lasts until resumed, however long the page is quiet.
  DropPooledSlots(page);
  auto replies = client.Pipeline({{"HSETNX", keys_.Rate(page), "paused", "1"},
                                  {"HSETNX", keys_.Rate(page), "paused_reason", reason},
                                  {"PERSIST", keys_.Rate(page)}});
  if (page == kAllPages) ForgetGlobal();
  if (!replies) return replies.error();
  List(client, page);
  return (*replies)[0].integer == 1;
}

Status PageLimiter::Resume(redis::Client& client, const std::string& page) const {
  auto reply = client.Command({"HDEL", keys_.Rate(page), "paused", "paused_reason"});
  if (page == kAllPages) ForgetGlobal();
  if (!reply) return reply.error();
  return Ok{};
}

Status PageLimiter::SetRate(redis::Client& client, const std::string& page, double per_second) const {
  if (!(per_second > 0 && per_second <= 100000))
    return Error{ErrorCode::kInvalid, "rate must be > 0 and at most 100000"};
  auto reply = client.Pipeline({{"HSET", keys_.Rate(page), "rate", Number(per_second)}, {"PERSIST", keys_.Rate(page)}});
  if (page == kAllPages) ForgetGlobal();
  if (!reply) return reply.error();
  List(client, page);
  return Ok{};
}

void PageLimiter::List(redis::Client& client, const std::string& page) const {
  const auto now = std::chrono::steady_clock::now();
  {
    std::lock_guard lock(listed_mutex_);
    auto [it, added] = listed_.try_emplace(page, now);
    if (!added && now - it->second < kRelistEvery) return;
    it->second = now;
  }
  auto listed = client.Command({"SADD", keys_.Pages(), page});
  if (!listed || listed->IsError()) {
    std::lock_guard lock(listed_mutex_);
    listed_.erase(page);  // tried again with the page's next message
  }
}

Status PageLimiter::AdoptUnlistedPages(redis::Client& client) const {
  auto exists = client.Command({"EXISTS", keys_.Pages()});
  if (!exists) return exists.error();
  if (exists->integer == 1) return Ok{};
  auto found = client.ScanKeys(keys_.Rate("*"));
  if (!found) return found.error();
  std::vector<std::string> add{"SADD", keys_.Pages()};
  for (const std::string& key : *found) add.push_back(key.substr(keys_.Rate("").size()));
  if (add.size() == 2) return Ok{};
  auto added = client.Command(add);
  if (!added) return added.error();
  return Ok{};
}

void PageLimiter::DropPooledSlots(const std::string& page) const {
  if (page == kAllPages) {
    pool_.Clear();
    return;
  }
  pool_.Drop(page);
  pool_.Drop(page + "/media");
}

void SlotPool::Roll(Lane& lane, Clock::time_point now) {
  if (now - lane.window_start < kWindow) return;
  // The window just ended counts only if it ended just now: a quiet lane wants one slot.
  lane.asks_before = now - lane.window_start < 2 * kWindow ? lane.asks : 0;
  lane.asks = 0;
  lane.window_start = now;
}

std::optional<SlotPool::Clock::time_point> SlotPool::Take(const std::string& lane, Clock::time_point now) {
  std::lock_guard lock(mutex_);
  Lane& found = lanes_[lane];
  Roll(found, now);
  ++found.asks;
  while (!found.slots.empty() && found.slots.front() < now - kWindow) found.slots.pop_front();  // too late now
  if (found.slots.empty()) return std::nullopt;
  const Clock::time_point due = found.slots.front();
  found.slots.pop_front();
  return due;
}

int SlotPool::Wanted(const std::string& lane, Clock::time_point now) {
  std::lock_guard lock(mutex_);
  Lane& found = lanes_[lane];
  Roll(found, now);
  return std::clamp(found.asks_before, 1, kMost);
}

void SlotPool::Add(const std::string& lane, const std::vector<Clock::time_point>& slots) {
  std::lock_guard lock(mutex_);
  auto& pooled = lanes_[lane].slots;
  pooled.insert(pooled.end(), slots.begin(), slots.end());
  std::sort(pooled.begin(), pooled.end());  // asks answered out of order interleave
}

void SlotPool::Drop(const std::string& lane) {
  std::lock_guard lock(mutex_);
  lanes_.erase(lane);
}

void SlotPool::Clear() {
  std::lock_guard lock(mutex_);
  lanes_.clear();
}

}  // namespace katy::sender
