#include "common/redis/sharded_consumer.h"

#include <algorithm>
#include <random>
#include <thread>
#include <utility>

#include "common/events.h"
#include "common/log.h"
#include "common/redis/shard_leases.h"

namespace katy::redis {
namespace {

// KEYS[1] dead-letter stream, KEYS[2] source stream, KEYS[3] the shard's lease.
// ARGV: owner, group, entry id, stage, reason, attempts, the stream's cap (entries), then the
// entry's field/value pairs. Returns -1 (and does nothing) when this instance no longer holds
// the lease, else {acknowledged, 1 when the cap dropped the oldest dead letter}.
constexpr const char* kDeadLetterLua = R"lua(
if redis.call('GET', KEYS[3]) ~= ARGV[1] then return -1 end
local fields = {'stream', KEYS[2], 'id', ARGV[3], 'stage', ARGV[4], 'reason', ARGV[5],
                'attempts', ARGV[6]}
for i = 8, #ARGV do fields[#fields + 1] = ARGV[i] end
local dropped = 0
if redis.call('XLEN', KEYS[1]) >= tonumber(ARGV[7]) then dropped = 1 end
redis.call('XADD', KEYS[1], 'MAXLEN', '=', ARGV[7], '*', unpack(fields))
return {redis.call('XACK', KEYS[2], ARGV[2], ARGV[3]), dropped}
)lua";

// KEYS[1] a shard's stream; ARGV[1] its consumer group.
// Removes the entries the group is done with: those older than its oldest pending entry, or,
// with none pending, every entry up to its last-delivered one (never an entry still to read or
// to acknowledge). One script, so no read or acknowledgement slips in between. Returns the
// number of entries removed.
constexpr const char* kTrimLua = R"lua(
local ok, groups = pcall(redis.call, 'XINFO', 'GROUPS', KEYS[1])
if not ok then return 0 end
local keep_from
for _, group in ipairs(groups) do
  local fields = {}
  for i = 1, #group, 2 do fields[group[i]] = group[i + 1] end
  if fields['name'] == ARGV[1] then keep_from = fields['last-delivered-id'] end
end
if not keep_from then return 0 end
local function parse(id)
  local ms, seq = string.match(id, '(%d+)-(%d+)')
  return tonumber(ms), tonumber(seq)
end
local last_ms, last_seq = parse(keep_from)
local pending = redis.call('XPENDING', KEYS[1], ARGV[1])
if pending[1] > 0 then
  local ms, seq = parse(pending[2])
  if ms < last_ms or (ms == last_ms and seq < last_seq) then keep_from = pending[2] end
else
  keep_from = string.format('%.0f-%.0f', last_ms, last_seq + 1)  -- the last delivered goes too
end
return redis.call('XTRIM', KEYS[1], 'MINID', keep_from)
)lua";

log::RateLimited g_read_errors(std::chrono::seconds(5));
// A shard whose lease is surely ours for less than this is left out of the next read.
constexpr std::chrono::milliseconds kShortestRead{10};
log::RateLimited g_trim_errors(std::chrono::seconds(60));

// Entries a worker takes at once under load: the responder's share two round trips per batch
// instead of two per event, the sender's their checks' round trip and, as their calls answer,
// their records' (bench/RESULTS.md), without holding a message behind another's call.
constexpr int kHandleBatch = 16;

// A conversation of a held shard looks again at least this much later (its probe may be out).
constexpr std::chrono::milliseconds kHeldRecheck{100};
// The longest wait between probes of a held shard: a failover or a replica attached is noticed
// within it. A probe costs one entry's attempt (at most a WAIT timeout) per shard, so a whole
// master's shards held cost a few workers, not the pool.
constexpr std::chrono::milliseconds kMaxHoldBackoff{2000};

double Jitter() {
  thread_local std::mt19937 random{std::random_device{}()};
  return std::uniform_real_distribution<double>(0.8, 1.2)(random);
}

void SleepUnless(const std::atomic<bool>& stop, std::chrono::milliseconds total) {
  const auto until = std::chrono::steady_clock::now() + total;
  for (auto now = std::chrono::steady_clock::now(); !stop && now < until; now = std::chrono::steady_clock::now()) {
    std::this_thread::sleep_for(
        std::min<std::chrono::steady_clock::duration>(std::chrono::milliseconds(20), until - now));
  }
}

}  // namespace

HandleResult HandleResult::RedisFailed(const Error& error) {
  std::string why = "redis_" + error.Label();
  return IsUnavailable(error) ? Unavailable(std::move(why)) : Retry(std::move(why));
}

ShardedConsumerOptions ShardedConsumerOptions::ForRole(const std::string& role, const KeySpace& keys,
                                                       const config::ConsumerConfig& consumer) {
  const bool inbound = role == "responder";
  ShardedConsumerOptions options;
  options.role = role;
  options.group = inbound ? KeySpace::kResponderGroup : KeySpace::kSenderGroup;
  options.instance = role + "-" + InstanceId();
  options.stream = [keys, inbound](int shard) { return inbound ? keys.InStream(shard) : keys.OutStream(shard); };
  options.dead_letters = [keys](int shard) { return keys.DeadLetters(shard); };
  options.lease_ttl = consumer.lease_ttl;
  options.workers = consumer.workers;
  options.max_in_flight = consumer.max_in_flight;
  options.max_attempts = consumer.max_attempts;
  options.dead_letter_max_length = consumer.dlq_max_length;
  options.dead_letter_retention = consumer.dlq_retention;
  // Both handlers share round trips across a batch (ResponderHandler::HandleBatch,
  // SenderHandler::HandleBatch).
  options.handle_batch = kHandleBatch;
  options.fair_share = inbound;
  return options;
}

ShardedConsumer::ShardedConsumer(Options redis, KeySpace keys, ShardedConsumerOptions options,
                                 HandlerFactory make_handler, ConversationKey conversation_of,
                                 prometheus::Registry* registry)
    : ShardedConsumer(std::move(redis), std::move(keys), std::move(options),
                      BatchHandlerFactory([make_handler = std::move(make_handler)]() -> BatchHandler {
                        return [handler = make_handler()](Client& client, const std::vector<BatchEntry>& batch,
                                                          const Resume&) {
                          std::vector<HandleResult> results;
                          results.reserve(batch.size());
                          for (const auto& one : batch) results.push_back(handler(client, *one.entry, one.fence));
                          return results;
                        };
                      }),
                      std::move(conversation_of), registry) {}

ShardedConsumer::ShardedConsumer(Options redis, KeySpace keys, ShardedConsumerOptions options,
                                 BatchHandlerFactory make_handler, ConversationKey conversation_of,
                                 prometheus::Registry* registry)
    : redis_(std::move(redis)),
      keys_(std::move(keys)),
      options_(std::move(options)),
      make_handler_(std::move(make_handler)),
      conversation_of_(std::move(conversation_of)),
      dead_letter_script_(kDeadLetterLua),
      trim_script_(kTrimLua) {
  // A read's reply must never be cut off by the socket timeout: it would take the entries it
  // delivered with it. With WAIT, each call may also wait for the replicas.
  const auto wait = redis_.wait_replicas > 0 ? redis_.wait_timeout : std::chrono::milliseconds(0);
  redis_.socket_timeout = std::max(redis_.socket_timeout, options_.block + wait + std::chrono::milliseconds(2000));
  if (registry != nullptr) {
    owned_gauge_ = &prometheus::BuildGauge()
                        .Name("katy_shards_owned")
                        .Help("Shards this instance owns, by role")
                        .Register(*registry)
                        .Add({{"role", options_.role}});
    outcomes_ = &prometheus::BuildCounter()
                     .Name("katy_consumer_entries_total")
                     .Help("Stream entries finished, by role and outcome")
                     .Register(*registry);
    paused_gauge_ = &prometheus::BuildGauge()
                         .Name("katy_consumer_paused")
                         .Help("1 while this instance reads no new entries because it is paused, by role")
                         .Register(*registry)
                         .Add({{"role", options_.role}});
    dead_letters_dropped_ =
        &prometheus::BuildCounter()
             .Name("katy_dlq_dropped_total")
             .Help("Oldest dead letters dropped because their stream reached KATY_DLQ_MAXLEN, by role")
             .Register(*registry)
             .Add({{"role", options_.role}});
    held_gauge_ = &prometheus::BuildGauge()
                       .Name("katy_shards_held")
                       .Help("Owned shards held back because Redis could not serve them, by role")
                       .Register(*registry)
                       .Add({{"role", options_.role}});
    stalled_ = &prometheus::BuildGauge()
                    .Name("katy_shard_stalled_seconds")
                    .Help("How long an owned shard with entries to finish has finished none, by role and shard")
                    .Register(*registry);
    trimmed_ = &prometheus::BuildCounter()
                    .Name("katy_consumer_trimmed_entries_total")
                    .Help("Finished entries removed from the owned streams, by role")
                    .Register(*registry)
                    .Add({{"role", options_.role}});
  }
}

ShardedConsumer::~ShardedConsumer() = default;

std::set<int> ShardedConsumer::OwnedShards() const {
  std::lock_guard lock(mutex_);
  std::set<int> out;
  for (const auto& [shard, generation] : owned_) out.insert(shard);
  return out;
}

std::vector<HeldShard> ShardedConsumer::HeldShards() const {
  std::lock_guard lock(mutex_);
  const auto now = std::chrono::steady_clock::now();
  std::vector<HeldShard> out;
  for (const auto& [shard, hold] : held_) {
    out.push_back({shard, hold.reason, std::chrono::duration_cast<std::chrono::seconds>(now - hold.since)});
  }
  return out;
}

std::vector<int> ShardedConsumer::OwnedShardList() const {
  auto owned = OwnedShards();
  return {owned.begin(), owned.end()};
}

bool ShardedConsumer::StillOwned(int shard, uint64_t generation) const {
  auto it = owned_.find(shard);
  return it != owned_.end() && it->second == generation;
}

void ShardedConsumer::Run(const std::atomic<bool>& stop) {
  std::thread lease_thread([this, &stop] { LeaseLoop(stop); });
  std::vector<std::thread> workers;
  for (int i = 0; i < std::max(1, options_.workers); ++i) workers.emplace_back([this] { WorkerLoop(); });
  ReadLoop(stop);
  // Finish what is in hand (queued entries stay pending), then give the leases back.
  {
    std::lock_guard lock(mutex_);
    workers_stop_ = true;
  }
  work_ready_.notify_all();
  for (auto& worker : workers) worker.join();
  release_now_ = true;
  lease_thread.join();
}

void ShardedConsumer::LeaseLoop(const std::atomic<bool>& stop) {
  // Neither a lease nor a trim needs WAIT: a lease lost in a failover is taken again (commits
  // are fenced on the master that holds the shard), and a trim lost is done again.
  ShardLeases leases(Client(redis_.WithoutWait()), keys_, {options_.role, options_.instance, options_.lease_ttl});
  Client trimmer(redis_.WithoutWait());
  // Renew every third of the TTL, but look at least every second, so that shards released by a
  // stopping instance, or a new member's share, are taken up within about a second.
  const auto period = std::min<std::chrono::milliseconds>(options_.lease_ttl / 3, std::chrono::milliseconds(1000));
  auto next_trim = std::chrono::steady_clock::now() + options_.trim_every;
  while (!release_now_) {
    // During shutdown, keep renewing (entries in hand still commit under the lease) but take
    // nothing new.
    auto owned = leases.Tick(
        [this, &stop](int shard) {
          if (stop) return false;
          std::lock_guard lock(mutex_);
          auto busy = in_hand_.find(shard);
          return busy == in_hand_.end() || busy->second == 0;  // never while an old entry is in hand
        },
        [this](int shard) { return MayRelease(shard); });
    SyncOwned(leases, owned);
    {
      std::lock_guard lock(mutex_);
      UpdateShardGauges();
    }
    if (std::chrono::steady_clock::now() >= next_trim) {
      TrimFinished(trimmer, owned);
      next_trim = std::chrono::steady_clock::now() + options_.trim_every;
    }
    SleepUnless(release_now_, period);
  }
  leases.ReleaseAll();
  std::lock_guard lock(mutex_);
  owned_.clear();
  if (owned_gauge_ != nullptr) owned_gauge_->Set(0);
}

// A surplus shard is given back in two steps. First it leaves owned_: nothing more is read
// from it or dispatched. It is released only once every read that may have included it has
// finished and no entry of it is in hand: a read still blocking would otherwise put new entries
// into this instance's pending list after the next owner claimed the pending ones, and they
// would wait there while that owner answered the conversation's later entries (the chaos test
// saw a user's second reply arrive after the third).
bool ShardedConsumer::MayRelease(int shard) {
  std::lock_guard lock(mutex_);
  release_asked_.insert(shard);
  auto releasing = releasing_.find(shard);
  if (releasing == releasing_.end()) {
    owned_.erase(shard);
    to_claim_.erase(shard);
    valid_until_.erase(shard);
    releasing_[shard] = reads_started_;
    return false;
  }
  auto busy = in_hand_.find(shard);
  const bool idle = busy == in_hand_.end() || busy->second == 0;
  if (reads_finished_ < releasing->second || !idle) return false;
  releasing_.erase(releasing);
  return true;
}

// Brings owned_ in line with the leases: lost shards leave it, new ones enter it with a new
// generation and their pending entries to claim; shards being released stay out until they
// are, or until they are no longer surplus (a member left): then they come back like a new
// acquisition, pending entries claimed first.
void ShardedConsumer::SyncOwned(const ShardLeases& leases, const std::set<int>& owned) {
  std::lock_guard lock(mutex_);
  for (auto it = releasing_.begin(); it != releasing_.end();) {
    const bool keep = owned.contains(it->first) && release_asked_.contains(it->first);
    it = keep ? std::next(it) : releasing_.erase(it);
  }
  release_asked_.clear();
  std::erase_if(held_, [&owned](const auto& held) { return !owned.contains(held.first); });
  for (auto it = owned_.begin(); it != owned_.end();) {
    if (!owned.contains(it->first)) {
      to_claim_.erase(it->first);
      valid_until_.erase(it->first);
      it = owned_.erase(it);
    } else {
      ++it;
    }
  }
  for (int shard : owned) {
    if (releasing_.contains(shard)) continue;
    // Lost and taken back within the round: another instance may have claimed entries meanwhile.
    const bool regained = leases.acquired().contains(shard);
    if (!owned_.contains(shard) || regained) {
      // A new generation: the shard's pending entries are claimed again, in id order, before
      // anything new is read. Not while an entry of the old one is in hand (it would be claimed
      // and handled twice at once); an acquisition already waited for that.
      auto busy = in_hand_.find(shard);
      if (!regained && busy != in_hand_.end() && busy->second > 0) continue;
      owned_[shard] = next_generation_++;
      to_claim_.insert(shard);
    }
    valid_until_[shard] = leases.valid_until().at(shard);
  }
  if (owned_gauge_ != nullptr) owned_gauge_->Set(static_cast<double>(owned_.size()));
}

void ShardedConsumer::TrimFinished(Client& client, const std::set<int>& shards) {
  if (shards.empty()) return;
  std::vector<Script::Call> calls;
  for (int shard : shards) calls.push_back({{options_.stream(shard)}, {options_.group}});
  auto replies = trim_script_.RunPipelined(client, calls);
  if (!replies) {
    g_trim_errors.Write(log::Level::kWarn, "cannot trim finished stream entries",
                        {{"role", options_.role}, {"error", replies.error().message}});
    return;
  }
  for (const Reply& reply : *replies) {
    if (reply.IsError()) {
      g_trim_errors.Write(log::Level::kWarn, "cannot trim finished stream entries",
                          {{"role", options_.role}, {"error", reply.str}});
    } else if (trimmed_ != nullptr && reply.integer > 0) {
      trimmed_->Increment(static_cast<double>(reply.integer));
    }
  }
  DropOldDeadLetters(client, shards);
}

void ShardedConsumer::DropOldDeadLetters(Client& client, const std::set<int>& shards) {
  if (options_.dead_letter_retention.count() <= 0) return;
  // A dead letter's id is when it was written: every id below the cut is older than allowed.
  const auto now =
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch());
  const std::string cut = std::to_string((now - options_.dead_letter_retention).count());
  std::vector<std::vector<std::string>> trims;
  for (int shard : shards) trims.push_back({"XTRIM", options_.dead_letters(shard), "MINID", cut});
  auto dropped = client.Pipeline(trims);
  if (!dropped) {
    g_trim_errors.Write(log::Level::kWarn, "cannot drop old dead letters", {{"error", dropped.error().message}});
    return;
  }
  for (size_t i = 0; i < dropped->size(); ++i) {
    if ((*dropped)[i].integer > 0) {
      log::Info("dead letters past KATY_DLQ_RETENTION_D dropped",
                {{"stream", trims[i][1]}, {"dropped", (*dropped)[i].integer}});
    }
  }
}

void ShardedConsumer::ClaimPending(Client& client, int shard, uint64_t generation, const std::atomic<bool>& stop) {
  const std::string stream = options_.stream(shard);
  std::string start = "0-0";
  do {
    auto claimed = XAutoClaim(client, stream, options_.group, options_.instance, std::chrono::milliseconds(0), start,
                              options_.batch);
    if (!claimed) {
      g_read_errors.Write(log::Level::kError, "cannot claim pending entries",
                          {{"stream", stream}, {"error", claimed.error().message}});
      // The claim may have taken entries all the same: they are claimed again from the start.
      std::lock_guard lock(mutex_);
      ForgetShard(shard, generation, "cannot claim pending entries");
      return;
    }
    if (!claimed->entries.empty()) {
      log::Info("taking over pending entries", {{"stream", stream}, {"count", claimed->entries.size()}});
      Dispatch(std::move(claimed->entries), shard, generation, true);
    }
    start = claimed->next_start;
  } while (start != "0-0" && !stop);
}

void ShardedConsumer::ReadLoop(const std::atomic<bool>& stop) {
  // Reads need no WAIT: what a failover loses of them (the group's read position, a pending
  // list) only delivers entries again, and handlers are idempotent.
  Client client(redis_.WithoutWait());
  int failures = 0;
  while (!stop) {
    // Newly acquired shards: their pending entries first, in id order.
    std::map<int, uint64_t> claim;
    {
      std::lock_guard lock(mutex_);
      for (int shard : to_claim_) claim[shard] = owned_[shard];
      to_claim_.clear();
    }
    for (const auto& [shard, generation] : claim) {
      if (auto created = EnsureGroup(client, options_.stream(shard), options_.group); !created) {
        g_read_errors.Write(log::Level::kError, "cannot create the consumer group",
                            {{"stream", options_.stream(shard)}, {"error", created.error().message}});
        std::lock_guard lock(mutex_);
        if (StillOwned(shard, generation)) to_claim_.insert(shard);
        continue;
      }
      ClaimPending(client, shard, generation, stop);
    }

    const bool paused = options_.paused && options_.paused();
    if (paused_gauge_ != nullptr) paused_gauge_->Set(paused ? 1 : 0);
    if (paused) {
      SleepUnless(stop, std::chrono::milliseconds(200));
      continue;
    }
    std::vector<std::string> streams;
    std::map<std::string, std::pair<int, uint64_t>> by_stream;
    std::chrono::milliseconds block = options_.block;
    uint64_t read_number = 0;
    {
      std::unique_lock lock(mutex_);
      room_.wait_for(lock, std::chrono::milliseconds(100),
                     [this, &stop] { return stop || in_flight_ < options_.max_in_flight; });
      if (in_flight_ >= options_.max_in_flight) continue;
      const auto now = std::chrono::steady_clock::now();
      for (const auto& [shard, generation] : owned_) {
        // A held shard reads nothing new while entries of it wait: what is read would only
        // wait too, filling max_in_flight that the other shards need. With none queued, a read
        // is how the shard finds its next probe (else the hold could never lift).
        if (to_claim_.contains(shard) || (held_.contains(shard) && queued_[shard] > 0)) continue;
        // The read must end while the lease is surely ours: an entry it took after the lease
        // expired would sit in this instance's pending list, unseen by the next owner.
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(valid_until_[shard] - now);
        if (left < kShortestRead) continue;
        block = std::min(block, left);
        streams.push_back(options_.stream(shard));
        by_stream[streams.back()] = {shard, generation};
      }
      if (!streams.empty()) read_number = ++reads_started_;
    }
    if (streams.empty()) {
      SleepUnless(stop, std::chrono::milliseconds(100));
      continue;
    }
    std::vector<std::string> ids(streams.size(), ">");
    auto entries = XReadGroup(client, options_.group, options_.instance, streams, ids, options_.batch, block);
    // Done with this read once its entries are dispatched (or it failed), whichever way out.
    struct ReadFinished {
      ShardedConsumer& self;
      uint64_t number;
      ~ReadFinished() {
        std::lock_guard lock(self.mutex_);
        self.reads_finished_ = number;
      }
    } finished{*this, read_number};
    if (!entries) {
      g_read_errors.Write(log::Level::kError, "cannot read streams", {{"error", entries.error().message}});
      {
        // Redis may have given entries to this consumer and gone away before the answer came
        // back: they sit in its pending list, and reading on with ">" would hand out the
        // conversations' later entries first (the chaos test saw that after Redis was killed).
        std::lock_guard lock(mutex_);
        for (const auto& [stream, owner] : by_stream) ForgetShard(owner.first, owner.second, "a read failed");
      }
      if (entries.error().message.find("NOGROUP") != std::string::npos) {
        for (const auto& stream : streams) {
          // A failure is retried with the next read.
          if (auto created = EnsureGroup(client, stream, options_.group); !created) {
            g_read_errors.Write(log::Level::kError, "cannot create the consumer group",
                                {{"stream", stream}, {"error", created.error().message}});
          }
        }
      }
      SleepUnless(stop, std::chrono::milliseconds(std::min(5000, 100 << std::min(++failures, 6))));
      continue;
    }
    failures = 0;
    const size_t read = entries->size();
    std::map<std::string, std::vector<StreamEntry>> grouped;
    for (auto& entry : *entries) grouped[entry.stream].push_back(std::move(entry));
    for (auto& [stream, list] : grouped) {
      const auto& [shard, generation] = by_stream[stream];
      Dispatch(std::move(list), shard, generation, false);
    }
    if (read > 0 && read < static_cast<size_t>(options_.batch)) SleepUnless(stop, options_.read_gather);
  }
}

void ShardedConsumer::Dispatch(std::vector<StreamEntry> entries, int shard, uint64_t generation, bool claimed) {
  std::optional<std::chrono::steady_clock::time_point> read_at;
  if (!claimed) read_at = std::chrono::steady_clock::now();
  std::vector<std::string> keys;
  keys.reserve(entries.size());
  for (const auto& entry : entries) keys.push_back(conversation_of_(entry));
  int newly_ready = 0;
  {
    std::lock_guard lock(mutex_);
    if (!StillOwned(shard, generation)) return;  // stays pending for whoever owns it now
    if (queued_[shard] == 0) progress_[shard] = std::chrono::steady_clock::now();  // no stall before work
    queued_[shard] += static_cast<int>(entries.size());
    for (size_t i = 0; i < entries.size(); ++i) {
      Conversation& conversation = conversations_[keys[i]];
      conversation.items.push_back(Item{std::move(entries[i]), shard, generation, 0, read_at});
      ++in_flight_;
      // A conversation is in ready_ (or delayed_) exactly when it has items and no worker holds it.
      if (!conversation.busy && conversation.items.size() == 1) {
        ready_.push_back(keys[i]);
        ++newly_ready;
      }
    }
  }
  // One worker per conversation made ready: waking them all (64 in a sender) for one entry cost
  // more CPU in futex and scheduler time than handling the entry (bench/RESULTS.md).
  if (newly_ready >= options_.workers) {
    work_ready_.notify_all();
  } else {
    for (int i = 0; i < newly_ready; ++i) work_ready_.notify_one();
  }
}

Status ShardedConsumer::DeadLetter(Client& client, const Item& item, const std::string& reason) {
  std::vector<std::string> args{options_.instance,
                                options_.group,
                                item.entry.id,
                                options_.role,
                                reason,
                                std::to_string(item.attempts),
                                std::to_string(options_.dead_letter_max_length)};
  for (const auto& [field, value] : item.entry.fields) {
    args.push_back(field);
    args.push_back(value);
  }
  auto reply = dead_letter_script_.Run(
      client, {options_.dead_letters(item.shard), item.entry.stream, keys_.Lease(item.shard, options_.role)}, args);
  if (!reply) return reply.error();
  if (!reply->IsArray()) return Error{ErrorCode::kLostLease, "the shard changed owner"};
  if (reply->elements.size() == 2 && reply->elements[1].integer == 1) {
    if (dead_letters_dropped_ != nullptr) dead_letters_dropped_->Increment();
    log::Error("the dead-letter stream is full: its oldest letter was dropped",
               {{"stream", options_.dead_letters(item.shard)}, {"max_length", options_.dead_letter_max_length}});
  }
  log::Warn("dead-lettered", {{"stream", item.entry.stream},
                              {"id", item.entry.id},
                              {"reason", reason},
                              {"attempts", item.attempts},
                              {"stage", options_.role}});
  return Ok{};
}

std::chrono::milliseconds RetryDelay(int attempts, std::chrono::milliseconds max_backoff, double jitter,
                                     std::chrono::milliseconds asked) {
  std::chrono::milliseconds backoff(100LL << std::clamp(attempts, 0, 10));
  backoff = std::min(backoff, max_backoff);
  backoff = std::chrono::milliseconds(static_cast<long long>(static_cast<double>(backoff.count()) * jitter));
  return std::max(backoff, asked);
}

std::vector<HandleResult> ShardedConsumer::Attempt(Client& client, const BatchHandler& handler,
                                                   std::vector<Taken>& taken, uint64_t batch) {
  std::vector<HandleResult> results;
  // Paused: entries already read (say, by a blocking read that began before the pause) wait
  // here rather than be handled.
  if (options_.paused && options_.paused()) {
    results.assign(taken.size(), HandleResult::Wait("paused", std::chrono::milliseconds(200)));
  } else {
    std::vector<BatchEntry> entries;
    entries.reserve(taken.size());
    const auto now = std::chrono::steady_clock::now();
    for (const auto& one : taken) {
      const auto held = one.item.read_at
                            ? std::chrono::duration_cast<std::chrono::milliseconds>(now - *one.item.read_at)
                            : kHeldSinceLongAgo;
      entries.push_back({&one.item.entry,
                         {keys_.Lease(one.item.shard, options_.role), options_.instance, one.lease_surely_until},
                         held});
    }
    results = handler(client, entries, ResumeOf(batch));
    results.resize(taken.size(), HandleResult::Retry("no_result"));  // a handler's bug, not the entry's
  }
  for (size_t i = 0; i < taken.size(); ++i) {
    if (results[i].kind != HandleResult::Kind::kLater) results[i] = Settle(client, taken[i], std::move(results[i]));
  }
  return results;
}

std::vector<HandleResult> ShardedConsumer::Continue(Client& client, const Continuation& finish,
                                                    std::vector<Taken>& taken, uint64_t batch) {
  std::vector<HandleResult> results = finish(client, ResumeOf(batch));
  results.resize(taken.size(), HandleResult::Retry("no_result"));
  for (size_t i = 0; i < taken.size(); ++i) {
    if (results[i].kind != HandleResult::Kind::kLater) results[i] = Settle(client, taken[i], std::move(results[i]));
  }
  return results;
}

std::vector<HandleResult> RunToEnd(Client& client,
                                   const std::function<std::vector<HandleResult>(const Resume&)>& start) {
  struct Mailbox {
    std::mutex mutex;
    std::condition_variable arrived;
    std::deque<Continuation> next;
  };
  auto mailbox = std::make_shared<Mailbox>();
  const Resume resume([mailbox](Continuation finish) {
    std::lock_guard lock(mailbox->mutex);
    mailbox->next.push_back(std::move(finish));
    mailbox->arrived.notify_one();
  });
  std::vector<HandleResult> results = start(resume);
  std::vector<size_t> later;
  for (size_t i = 0; i < results.size(); ++i) {
    if (results[i].kind == HandleResult::Kind::kLater) later.push_back(i);
  }
  while (!later.empty()) {
    Continuation finish;
    {
      std::unique_lock lock(mailbox->mutex);
      mailbox->arrived.wait(lock, [&] { return !mailbox->next.empty(); });
      finish = std::move(mailbox->next.front());
      mailbox->next.pop_front();
    }
    std::vector<HandleResult> finished = finish(client, resume);
    finished.resize(later.size(), HandleResult::Retry("no_result"));
    std::vector<size_t> still_later;
    for (size_t i = 0; i < later.size(); ++i) {
      if (finished[i].kind == HandleResult::Kind::kLater) still_later.push_back(later[i]);
      results[later[i]] = std::move(finished[i]);
    }
    later = std::move(still_later);
  }
  return results;
}

Resume ShardedConsumer::ResumeOf(uint64_t batch) {
  return Resume([this, batch](Continuation finish) { Resumed(batch, std::move(finish)); });
}

void ShardedConsumer::Resumed(uint64_t batch, Continuation finish) {
  std::lock_guard lock(mutex_);
  auto parked = parked_.find(batch);
  if (parked == parked_.end()) {
    log::Error("a batch was resumed that waits for nothing (a handler's bug)", {{"role", options_.role}});
    return;
  }
  if (!parked->second.waiting) {
    parked->second.resumed.push_back(std::move(finish));  // the handler or a continuation still runs
    return;
  }
  parked->second.waiting = false;
  resumed_.emplace_back(batch, std::move(finish));
  work_ready_.notify_one();
}

void ShardedConsumer::Conclude(uint64_t batch, std::vector<Taken>& taken, const std::vector<HandleResult>& results) {
  Parked& parked = parked_[batch];
  parked.taken.clear();
  for (size_t i = 0; i < taken.size(); ++i) {
    Taken& one = taken[i];
    const HandleResult& result = results[i];
    if (result.kind == HandleResult::Kind::kLater) {
      parked.taken.push_back(std::move(one));  // still in hand, its conversation busy
      continue;
    }
    --in_hand_[one.item.shard];
    conversations_[one.key].busy = false;
    UpdateHold(one.item, one.key, result);
    if (result.kind == HandleResult::Kind::kRetry || result.kind == HandleResult::Kind::kWait ||
        result.kind == HandleResult::Kind::kUnavailable) {
      Reschedule(one.key, one.item, result);
    } else {
      if (result.kind == HandleResult::Kind::kAbandon) {
        ForgetShard(one.item.shard, one.item.generation, "lease found lost");
      }
      Finish(one.key, one.outcome);  // handled, dead-lettered, or left to the shard's new owner
    }
  }
  if (parked.taken.empty()) {
    if (!parked.resumed.empty())
      log::Error("a batch was resumed that waits for nothing (a handler's bug)", {{"role", options_.role}});
    parked_.erase(batch);
    if (workers_stop_ && parked_.empty()) work_ready_.notify_all();  // draining workers may leave
    return;
  }
  if (!parked.resumed.empty()) {
    resumed_.emplace_back(batch, std::move(parked.resumed.front()));
    parked.resumed.pop_front();
    work_ready_.notify_one();
  } else {
    parked.waiting = true;
  }
}

HandleResult ShardedConsumer::Settle(Client& client, Taken& taken, HandleResult result) {
  Item& item = taken.item;
  std::string& outcome = taken.outcome;
  ++item.attempts;
  if (result.kind == HandleResult::Kind::kRetry && item.attempts >= options_.max_attempts) {
    result = HandleResult::Poison(result.reason);
  }
  if (result.kind == HandleResult::Kind::kPoison) {
    auto moved = DeadLetter(client, item, result.reason);
    if (moved) {
      outcome = "dead_lettered";
    } else if (moved.error().code == ErrorCode::kLostLease) {
      result = HandleResult::Abandon("lost_lease");
    } else if (IsUnavailable(moved.error())) {
      result = HandleResult::RedisFailed(moved.error());  // Redis is out: the shard is held
    } else {
      --item.attempts;  // not this entry's fault: try dead-lettering again later
      result = HandleResult::Retry("dead_letter_failed");
    }
  }
  // Not failures of the entry: a wait it was asked for, or Redis out of service.
  if (result.kind == HandleResult::Kind::kWait || result.kind == HandleResult::Kind::kUnavailable) --item.attempts;
  if (outcome.empty() && result.kind == HandleResult::Kind::kDone) outcome = "done";
  if (outcome.empty() && result.kind == HandleResult::Kind::kAbandon) outcome = "abandoned";
  return result;
}

void ShardedConsumer::Reschedule(const std::string& key, const Item& item, const HandleResult& result) {
  Conversation& conversation = conversations_[key];
  conversation.items.front().attempts = item.attempts;
  const bool retry = result.kind == HandleResult::Kind::kRetry;
  const bool unavailable = result.kind == HandleResult::Kind::kUnavailable;
  conversation.paced = result.kind == HandleResult::Kind::kWait;
  const auto now = std::chrono::steady_clock::now();
  auto due = now + result.wait;
  if (retry) due = now + RetryDelay(item.attempts, options_.max_backoff, Jitter(), result.wait);
  if (unavailable) {
    const auto hold = held_.find(item.shard);  // UpdateHold ran first
    due = hold != held_.end() ? hold->second.retry_at : now + options_.max_backoff;
  }
  const auto scheduled = delayed_.emplace(due, key);
  CountOutcome(retry ? "retry" : unavailable ? "redis_unavailable" : "wait");
  // Sleeping workers wake at the earliest delayed time they saw: a new earliest needs one of
  // them to look again.
  if (scheduled == delayed_.begin()) work_ready_.notify_one();
}

void ShardedConsumer::Finish(const std::string& key, const std::string& outcome) {
  Conversation& done = conversations_[key];
  const int shard = done.items.front().shard;
  --queued_[shard];
  progress_[shard] = std::chrono::steady_clock::now();
  done.items.pop_front();
  --in_flight_;
  CountOutcome(outcome);
  if (done.items.empty()) {
    conversations_.erase(key);
  } else if (std::exchange(done.paced, false)) {
    // A conversation its page's limit paces: at the back, behind the ready conversations of
    // pages sending as fast as they can, it would reach its next slot late, and a saturated
    // sender would keep the page under its limit (bench/RESULTS.md, the shared page limit).
    // It cannot take more than its limit from the others: its next entry waits for a slot.
    ready_.push_front(key);
  } else {
    // The conversation's next entry: the worker finishing this one takes it (or another ready
    // one) as soon as it loops, so no other worker needs waking.
    ready_.push_back(key);
  }
  room_.notify_one();
}

void ShardedConsumer::UpdateHold(const Item& item, const std::string& key, const HandleResult& result) {
  const int shard = item.shard;
  const auto now = std::chrono::steady_clock::now();
  if (auto it = held_.find(shard); it != held_.end() && it->second.probe == key) it->second.probe.clear();
  // An entry of a generation since dropped (its call outlived the lease) says nothing of the
  // shard as owned now: a hold it set could have nothing queued to lift it.
  if (result.kind == HandleResult::Kind::kUnavailable && StillOwned(shard, item.generation)) {
    auto [it, added] = held_.try_emplace(shard);
    Hold& hold = it->second;
    if (added) {
      hold.since = now;
      log::Warn("holding back a shard: Redis cannot serve it; it resumes by itself when Redis does",
                {{"shard", shard}, {"role", options_.role}, {"reason", result.reason}});
    }
    hold.reason = result.reason;
    // Entries that failed together (a batch, workers that took them before the hold) count as
    // one failed probe.
    if (added || now >= hold.retry_at) {
      const auto cap = std::min<std::chrono::milliseconds>(options_.max_backoff, kMaxHoldBackoff);
      hold.retry_at = now + RetryDelay(hold.failures++, cap, Jitter(), {});
    }
  } else if (auto it = held_.find(shard); it != held_.end()) {
    if (result.kind == HandleResult::Kind::kDone) {
      log::Info("shard resumes: Redis serves it again",
                {{"shard", shard},
                 {"role", options_.role},
                 {"held_ms", std::chrono::duration_cast<std::chrono::milliseconds>(now - it->second.since).count()}});
      held_.erase(it);
    }
  }
  if (held_gauge_ != nullptr) held_gauge_->Set(static_cast<double>(held_.size()));
}

bool ShardedConsumer::WaitForHold(const std::string& key, Hold& hold, std::chrono::steady_clock::time_point now) {
  if (hold.probe.empty() && now >= hold.retry_at) {
    hold.probe = key;
    return false;
  }
  delayed_.emplace(std::max(hold.retry_at, now + kHeldRecheck), key);
  return true;
}

void ShardedConsumer::UpdateShardGauges() {
  if (held_gauge_ != nullptr) held_gauge_->Set(static_cast<double>(held_.size()));
  if (stalled_ == nullptr) return;
  const auto now = std::chrono::steady_clock::now();
  for (const auto& [shard, generation] : owned_) progress_.try_emplace(shard, now);  // a series per owned shard
  for (auto& [shard, since] : progress_) {
    const bool working = owned_.contains(shard) && (queued_[shard] > 0 || held_.contains(shard));
    if (!working) since = now;
    stalled_->Add({{"role", options_.role}, {"shard", std::to_string(shard)}})
        .Set(std::chrono::duration<double>(now - since).count());
  }
}

void ShardedConsumer::CountOutcome(const std::string& outcome) {
  if (outcomes_ == nullptr) return;
  // Family::Add hashes the labels and locks the family on every call: resolved once per outcome.
  auto [it, added] = outcome_counters_.try_emplace(outcome, nullptr);
  if (added) it->second = &outcomes_->Add({{"role", options_.role}, {"outcome", outcome}});
  it->second->Increment();
}

void ShardedConsumer::ForgetShard(int shard, uint64_t generation, std::string_view why) {
  if (!StillOwned(shard, generation)) return;  // already forgotten, or a new generation began
  log::Warn("dropping what is queued of a shard, to claim its pending entries again",
            {{"shard", shard}, {"role", options_.role}, {"why", why}});
  owned_.erase(shard);
  to_claim_.erase(shard);
  valid_until_.erase(shard);
  if (owned_gauge_ != nullptr) owned_gauge_->Set(static_cast<double>(owned_.size()));
}

std::vector<ShardedConsumer::Taken> ShardedConsumer::TakeReady() {
  const auto now = std::chrono::steady_clock::now();
  // A fair share: while other workers are idle, each takes one conversation, so a slow entry
  // (a skill its batch waits for) holds up no conversation another worker could have run.
  const size_t share = options_.fair_share ? (ready_.size() + idle_workers_) / (idle_workers_ + 1) : ready_.size();
  const size_t wanted = std::clamp<size_t>(share, 1, static_cast<size_t>(std::max(1, options_.handle_batch)));
  std::vector<Taken> taken;
  while (taken.size() < wanted && !ready_.empty()) {
    const std::string key = ready_.front();
    ready_.pop_front();
    Conversation& conversation = conversations_[key];
    if (conversation.items.empty()) {
      conversations_.erase(key);
      continue;
    }
    const Item& item = conversation.items.front();
    if (!StillOwned(item.shard, item.generation)) {
      Finish(key, "dropped");  // the shard moved on; the entry is pending for its new owner
      continue;
    }
    if (auto hold = held_.find(item.shard); hold != held_.end() && WaitForHold(key, hold->second, now)) continue;
    conversation.busy = true;
    ++in_hand_[item.shard];
    const auto lease = valid_until_.find(item.shard);
    taken.push_back(
        {key, item, "", lease == valid_until_.end() ? std::chrono::steady_clock::time_point{} : lease->second});
  }
  return taken;
}

void ShardedConsumer::WorkerLoop() {
  Client client(redis_);
  BatchHandler handler = make_handler_();
  std::unique_lock lock(mutex_);
  while (true) {
    // Work that waited on a call goes first: it finishes entries, and makes room for more.
    if (!resumed_.empty()) {
      auto [batch, finish] = std::move(resumed_.front());
      resumed_.pop_front();
      std::vector<Taken> taken = std::move(parked_[batch].taken);
      lock.unlock();
      const std::vector<HandleResult> results = Continue(client, finish, taken, batch);
      lock.lock();
      Conclude(batch, taken, results);
      continue;
    }
    // Entries that waited for their time (a reserved rate slot, a retry's backoff) go before
    // entries merely read, in the order they fell due: behind a saturated instance's queue, a
    // reserved slot would be used late, and late sends bunch a page's messages past its limit.
    const auto now = std::chrono::steady_clock::now();
    auto due_end = delayed_.upper_bound(now);
    if (due_end != delayed_.begin()) {
      std::vector<std::string> due;
      for (auto it = delayed_.begin(); it != due_end; ++it) due.push_back(it->second);
      ready_.insert(ready_.begin(), due.begin(), due.end());
      delayed_.erase(delayed_.begin(), due_end);
    }
    if (workers_stop_) {
      // Draining: nothing new is taken, but entries waiting on a call are finished.
      if (parked_.empty()) return;
      work_ready_.wait_for(lock, std::chrono::milliseconds(200));
      continue;
    }
    if (ready_.empty()) {
      auto until = delayed_.empty() ? now + std::chrono::milliseconds(200) : delayed_.begin()->first;
      ++idle_workers_;
      work_ready_.wait_until(lock, until);
      --idle_workers_;
      continue;
    }
    std::vector<Taken> taken = TakeReady();
    // Taking work: if more is ready, or delayed entries need a worker watching the clock, and
    // this worker may have been the one woken for that, hand the wake-up on.
    if (!ready_.empty() || !delayed_.empty()) work_ready_.notify_one();
    if (taken.empty()) continue;
    const uint64_t batch = next_batch_++;
    parked_.try_emplace(batch);  // a Resume may come before the handler returns
    lock.unlock();
    const std::vector<HandleResult> results = Attempt(client, handler, taken, batch);
    lock.lock();
    Conclude(batch, taken, results);
  }
}

}  // namespace katy::redis
