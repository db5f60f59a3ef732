#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "common/config.h"
#include "common/metrics/metrics.h"
#include "common/redis/queue_status.h"
#include "common/redis/redis_client.h"
#include "common/redis/replication_health.h"
#include "common/redis/script.h"
#include "common/redis/shard_leases.h"
#include "common/redis/streams.h"
#include "common/shard.h"

namespace katy::redis {

// What a handler did with one stream entry.
struct HandleResult {
  enum class Kind {
    kDone,         // handled, and acknowledged by the handler's own commit
    kRetry,        // not handled (a dependency failed): try again later; later entries of the same
                   // conversation wait, other conversations go on
    kPoison,       // can never be handled: dead-letter it now
    kAbandon,      // this instance no longer owns the shard: leave it pending for the new owner
    kWait,         // not this entry's failure (rate limit, paused page): try again after `wait`,
                   // without counting an attempt; later entries of the conversation wait too
    kUnavailable,  // Redis could not serve it (down, failing over, short of replicas): not this
                   // entry's failure either, and not one to give up on: the whole shard is held
                   // (see ShardedConsumer) until Redis serves it again, however long that takes
    kLater,        // not finished yet: the handler started work that ends later (an HTTP call in
                   // flight) and will call its batch's Resume with the Continuation that finishes
                   // it (see BatchHandler). The entry stays in hand, its conversation busy.
  };
  Kind kind = Kind::kDone;
  std::string reason;                 // becomes the dead letter's reason
  std::chrono::milliseconds wait{0};  // kRetry: the least time before the next attempt

  static HandleResult Done() { return {Kind::kDone, "", {}}; }
  static HandleResult Retry(std::string why, std::chrono::milliseconds wait = {}) {
    return {Kind::kRetry, std::move(why), wait};
  }
  static HandleResult Poison(std::string why) { return {Kind::kPoison, std::move(why), {}}; }
  static HandleResult Abandon(std::string why) { return {Kind::kAbandon, std::move(why), {}}; }
  static HandleResult Wait(std::string why, std::chrono::milliseconds wait) {
    return {Kind::kWait, std::move(why), wait};
  }
  static HandleResult Unavailable(std::string why) { return {Kind::kUnavailable, std::move(why), {}}; }
  static HandleResult Later() { return {Kind::kLater, "", {}}; }
  // A Redis call's failure as a handler's result, reason "redis_<label>": kUnavailable when
  // Redis cannot serve now (IsUnavailable), else kRetry (an error reply about the command).
  static HandleResult RedisFailed(const Error& error);
};

// Proof of ownership a handler passes into its commit script: the commit checks atomically
// that `lease_key` still holds `owner`, so an instance that lost a shard can never commit
// after the new owner took it over.
struct Fence {
  std::string lease_key;
  std::string owner;
  // Until then this instance surely holds the lease (ShardLeases's local bound: the TTL from
  // before its last renewal was sent, a tenth short), so no other instance can have taken the
  // shard: a check that only asks "is the shard still mine now?", not a commit, may skip its
  // read of the lease. Past it (or unset) the lease must be read.
  std::chrono::steady_clock::time_point surely_ours_until{};

  bool SurelyOursNow() const { return std::chrono::steady_clock::now() < surely_ours_until; }
};

// Handles one entry; runs on a worker thread with that thread's own Redis connection.
using EntryHandler = std::function<HandleResult(Client&, const StreamEntry&, const Fence&)>;
// One entry of a batch, with the fence of its shard. `entry` is valid during the handler's
// call only: work that finishes later keeps a copy of what it needs.
struct BatchEntry {
  const StreamEntry* entry;
  Fence fence;
  // How long this instance has held the entry since it read it: one taken over from another
  // consumer's pending list counts as held since long ago (kHeldSinceLongAgo).
  std::chrono::milliseconds in_hand{0};
};
inline constexpr std::chrono::milliseconds kHeldSinceLongAgo = std::chrono::hours(24 * 365);

class Resume;
// The rest of a batch's work, once what it waited for (an HTTP call) has ended: runs on a
// worker thread with that thread's Redis connection, and returns one result per entry the
// batch left kLater, in the batch's order. A result may be kLater again (a next call), with
// `resume` called again for it.
using Continuation = std::function<std::vector<HandleResult>(Client&, const Resume& resume)>;

// How work that ends later comes back to the consumer: call it from any thread (an HTTP
// client's loop, say), after the handler returned kLater for some of its batch's entries, with
// the Continuation that finishes them. Calling it before the handler has returned is fine: the
// continuation runs once the handler has. It may be called again before that continuation has
// run (a batch whose calls answer one by one): the continuations then run one after another,
// each seeing the entries the one before left kLater, so a continuation may finish only some
// and leave the rest kLater. Call it only while some entry of the batch is kLater. Cheap to copy.
class Resume {
 public:
  explicit Resume(std::function<void(Continuation)> deliver) : deliver_(std::move(deliver)) {}
  void operator()(Continuation finish) const { deliver_(std::move(finish)); }

 private:
  std::function<void(Continuation)> deliver_;
};
// Runs a handler's batch to its end on the calling thread: `start` with a Resume, then, while
// entries are kLater, each continuation it is resumed with, on this thread and `client`.
// For callers with a thread to spare (tests, one-off tools); the consumer never waits.
std::vector<HandleResult> RunToEnd(Client& client,
                                   const std::function<std::vector<HandleResult>(const Resume&)>& start);

// Handles the first entries of several conversations together, so their Redis work can share
// round trips: one result per entry, in the batch's order. Each result means what it means
// for an EntryHandler; an entry whose work ends later (a skill, a Send API call) is kLater,
// and `resume` brings its result back without holding this worker meanwhile. Runs on a worker
// thread with that thread's own Redis connection.
using BatchHandler =
    std::function<std::vector<HandleResult>(Client&, const std::vector<BatchEntry>&, const Resume& resume)>;
// The conversation an entry belongs to: entries with the same key are handled one after
// another, in stream order. Called on the reader thread; must be thread-safe.
using ConversationKey = std::function<std::string(const StreamEntry&)>;

// How long a conversation waits before its item is tried again after attempt number
// `attempts` ended in kRetry: 100 ms doubled per attempt (the doubling stops at 2^10), capped
// at `max_backoff`, scaled by `jitter` (drawn from 0.8-1.2 by the caller, so the retries of
// many conversations spread out), and never shorter than `asked`, what the handler wanted.
std::chrono::milliseconds RetryDelay(int attempts, std::chrono::milliseconds max_backoff, double jitter,
                                     std::chrono::milliseconds asked);

struct ShardedConsumerOptions {
  std::string role;                                    // "responder" or "sender" (lease and metrics label)
  std::string group;                                   // consumer group, created on each owned stream if missing
  std::string instance;                                // this process's consumer and lease-owner name
  std::function<std::string(int shard)> stream;        // the stream of a shard
  std::function<std::string(int shard)> dead_letters;  // its dead-letter stream
  // A dead-letter stream's cap: at it, each new letter drops the oldest (counted in
  // katy_dlq_dropped_total, logged), so a flood of failures cannot fill Redis.
  int64_t dead_letter_max_length = 10000;
  // How long a dead letter is kept (it holds what a person wrote or was sent): older ones are
  // dropped with the finished entries' trim (docs/privacy.md). 0: kept until the cap drops them.
  std::chrono::seconds dead_letter_retention{0};
  std::chrono::milliseconds lease_ttl{10000};
  // Threads that run handlers and continuations. A handler that waits on the network returns
  // kLater, so these bound the Redis work at once, not the calls in flight.
  int workers = 8;
  int max_in_flight = 1024;  // entries read but not yet finished (calls in flight among them)
  int batch = 128;           // entries per read
  // Conversations a worker takes at once, when more are ready than idle workers to take them
  // one by one; their first entries go to a BatchHandler together (1: one at a time).
  int handle_batch = 1;
  // Whether a worker takes a fair share of the ready conversations (one each while others are
  // idle), for a handler whose batch waits for its slowest entry (the responder's skills);
  // false: it takes every ready one up to handle_batch, fewer wake-ups and round trips for a
  // handler that holds no entry behind another (the sender's: each finishes on its own call).
  bool fair_share = true;
  std::chrono::milliseconds block{500};  // longest blocking read; bounds reaction to changes
  // After a read that found entries but fewer than `batch`, the next read waits this long, so
  // that under load each read carries more entries: an XREADGROUP over every owned stream
  // costs Redis about the same for one entry as for many. Each stage adds up to this much to
  // a message's latency: 1 ms keeps p50 ≤ 3 ms at 1,000/s, 5 ms would save a third more of
  // Redis's reads for p50 ~8 ms (bench/RESULTS.md, "What each message costs Redis"). A first
  // entry after a quiet spell is read at once (the read blocks for it).
  std::chrono::milliseconds read_gather{1};
  int max_attempts = 5;  // kRetry entries are dead-lettered after this many attempts
  std::chrono::milliseconds max_backoff{5000};
  std::function<bool()> paused;  // when set and true, no new entries are read (held ones finish)
  // How often an owner removes the entries its group is done with from its shards' streams
  // (those before the oldest pending entry, or every delivered one when none is pending), so
  // they do not grow forever. Checked at each lease tick (at most every second).
  std::chrono::milliseconds trim_every{10000};

  // The options of a Katy role over its shards: "responder" reads the inbound streams with
  // group responders, "sender" the outbound streams with group senders; both dead-letter to
  // the shard's DLQ; this process's instance name is "<role>-<host>-<pid>".
  static ShardedConsumerOptions ForRole(const std::string& role, const KeySpace& keys,
                                        const config::ConsumerConfig& consumer);
};

// The at-least-once, ordered, scaled-out consumer that responder and sender share, written once:
//  - owns shards through ShardLeases (fair share among live instances, renewed every ttl/3);
//  - on taking a shard, first claims all of the shard's pending entries (XAUTOCLAIM from 0-0,
//    idle 0: the lease makes this instance the only rightful owner) in id order, then reads
//    new ones (XREADGROUP >);
//  - hands entries to a bounded pool: one conversation's entries strictly one after another,
//    different conversations concurrently;
//  - retries with exponential backoff and jitter (a waiting entry holds back only its
//    conversation); kWait entries wait as asked without using up attempts;
//  - holds a shard whose entry met kUnavailable: nothing more of it is read while entries of
//    it are queued (with none, a read is what finds the next probe), its queued entries
//    wait, and one entry at a time probes Redis after a backoff (100 ms doubling to 2 s, or
//    max_backoff if shorter); the first success resumes the shard. No attempt is counted
//    meanwhile, so Redis's own outage, however long, never dead-letters a message; the
//    other shards (on a cluster, those of healthy masters) go on. Its reader, lease and trim connections do not
//    WAIT for replicas (what they write is safe to lose: docs/reliability.md, "WAIT"), so a
//    master without replicas holds back only what must be durable on it;
//    after max_attempts or on kPoison, moves the entry to the dead-letter stream with stage,
//    reason and attempts, and acknowledges it, atomically and fenced by the lease;
//  - an entry whose handler returned kLater stays in hand (its conversation busy, its shard's
//    lease not given back) until its batch's Resume brings the continuation, which a worker
//    runs; so thousands of entries can wait on calls while a few workers do the Redis work;
//  - on losing a shard, stops handing out its entries at once (queued ones stay pending);
//  - every trim_every, trims its shards' streams of the entries the group is done with.
// Thread-safe accessors; Run() on one thread.
class ShardedConsumer {
 public:
  using HandlerFactory = std::function<EntryHandler()>;       // one handler per worker thread
  using BatchHandlerFactory = std::function<BatchHandler()>;  // the same, for batches

  ShardedConsumer(Options redis, KeySpace keys, ShardedConsumerOptions options, HandlerFactory make_handler,
                  ConversationKey conversation_of, prometheus::Registry* registry = nullptr);
  ShardedConsumer(Options redis, KeySpace keys, ShardedConsumerOptions options, BatchHandlerFactory make_handler,
                  ConversationKey conversation_of, prometheus::Registry* registry = nullptr);
  ~ShardedConsumer();

  // Runs until `stop` is set; then finishes the entries in hand (not the queued ones), those
  // waiting on a Resume included, gives back every lease so another instance takes over at
  // once, and returns.
  void Run(const std::atomic<bool>& stop);

  std::set<int> OwnedShards() const;
  std::vector<int> OwnedShardList() const;
  // Owned shards held back because Redis could not serve them, by shard.
  std::vector<HeldShard> HeldShards() const;

 private:
  struct Item {
    StreamEntry entry;
    int shard;
    uint64_t generation;  // the shard's ownership generation when the entry was read
    int attempts = 0;
    // When this instance read it; none for an entry claimed from a pending list (held since
    // no one knows when: BatchEntry::in_hand).
    std::optional<std::chrono::steady_clock::time_point> read_at;
  };
  // A shard held back by kUnavailable (see the class comment).
  struct Hold {
    std::string reason;
    std::chrono::steady_clock::time_point since;
    std::chrono::steady_clock::time_point retry_at;  // when one entry may try again
    int failures = 0;
    std::string probe;  // the conversation trying it now (empty: none)
  };
  struct Conversation {
    std::deque<Item> items;
    bool busy = false;  // a worker holds it
    // Its last entry waited (kWait: a rate-limit slot, a paused or throttled page): its next
    // entry goes to the front of the ready queue, not the back (see Finish).
    bool paced = false;
  };

  void LeaseLoop(const std::atomic<bool>& stop);
  bool MayRelease(int shard);
  void SyncOwned(const ShardLeases& leases, const std::set<int>& owned);
  void ReadLoop(const std::atomic<bool>& stop);
  void WorkerLoop();
  // A conversation a worker has taken: its first item, and how the attempt at it ended.
  struct Taken {
    std::string key;
    Item item;
    std::string outcome;                                         // set when the item is finished by the attempt
    std::chrono::steady_clock::time_point lease_surely_until{};  // Fence::surely_ours_until
  };
  // A batch some of whose entries wait for their Resume.
  struct Parked {
    std::vector<Taken> taken;          // its kLater entries, in the batch's order
    std::deque<Continuation> resumed;  // came while the handler or a continuation ran
    bool waiting = false;              // the entries are parked; a Resume runs them
  };
  // Under the lock: up to handle_batch ready conversations (a fair share of those ready among
  // the idle workers), each marked busy with its first item in hand.
  std::vector<Taken> TakeReady();
  // One attempt at the taken conversations' first items, without the lock: the handler (or a
  // wait while paused), then, item by item, Settle.
  std::vector<HandleResult> Attempt(Client& client, const BatchHandler& handler, std::vector<Taken>& taken,
                                    uint64_t batch);
  // A resumed batch's continuation, without the lock, then Settle for what it finished.
  std::vector<HandleResult> Continue(Client& client, const Continuation& finish, std::vector<Taken>& taken,
                                     uint64_t batch);
  // Under the lock: what the attempt or continuation of `batch` ended with, entry by entry;
  // kLater entries are parked until the batch's Resume.
  void Conclude(uint64_t batch, std::vector<Taken>& taken, const std::vector<HandleResult>& results);
  Resume ResumeOf(uint64_t batch);
  // Resume's work: under the lock, queues the continuation (or keeps it until the batch parks).
  void Resumed(uint64_t batch, Continuation finish);
  // After the handler: dead-lettering when the item is poison or out of attempts. Updates the
  // item's attempt count and `taken.outcome`; returns what the conversation must do next.
  HandleResult Settle(Client& client, Taken& taken, HandleResult result);
  // Under the lock: puts the conversation back in the delay queue after a kRetry or kWait.
  void Reschedule(const std::string& key, const Item& item, const HandleResult& result);
  // Under the lock: the conversation's first item is done; its next one (if any) is ready.
  void Finish(const std::string& key, const std::string& outcome);
  // Under the lock: `item` (of conversation `key`) ended with `result`: holds its shard
  // (longer) on kUnavailable if the item's generation still owns it, resumes it on kDone,
  // leaves the hold as it is otherwise.
  void UpdateHold(const Item& item, const std::string& key, const HandleResult& result);
  // Under the lock: whether the conversation of `key`, whose first item is of a held shard,
  // must wait (then it is back in delayed_); else it becomes the shard's probe.
  bool WaitForHold(const std::string& key, Hold& hold, std::chrono::steady_clock::time_point now);
  // Under the lock, once per lease round: katy_shards_held and katy_shard_stalled_seconds.
  void UpdateShardGauges();
  // katy_consumer_entries_total{outcome}.Increment(). Under mutex_.
  void CountOutcome(const std::string& outcome);
  // Under the lock: what this instance knows of the shard's pending entries may be wrong — a
  // handler found the lease not ours while the lease loop still counts it owned (it may have
  // expired and been taken back in one lease round, say after Redis restarted), or a read or
  // claim failed after Redis may have handed entries over. What this instance holds of the
  // shard is dropped, left pending, and the shard counts as not owned until a lease round
  // confirms it with no entry of it in hand: then a new generation claims the pending entries
  // in id order before reading new ones.
  void ForgetShard(int shard, uint64_t generation, std::string_view why);
  void ClaimPending(Client& client, int shard, uint64_t generation, const std::atomic<bool>& stop);
  // Queues entries read now (`claimed`: taken over from a pending list) on their conversations.
  void Dispatch(std::vector<StreamEntry> entries, int shard, uint64_t generation, bool claimed);
  bool StillOwned(int shard, uint64_t generation) const;
  Status DeadLetter(Client& client, const Item& item, const std::string& reason);
  // Drops the shards' dead letters older than options_.dead_letter_retention.
  void DropOldDeadLetters(Client& client, const std::set<int>& shards);
  void TrimFinished(Client& client, const std::set<int>& shards);

  Options redis_;
  KeySpace keys_;
  ShardedConsumerOptions options_;
  BatchHandlerFactory make_handler_;
  ConversationKey conversation_of_;
  Script dead_letter_script_;
  Script trim_script_;

  mutable std::mutex mutex_;
  std::condition_variable work_ready_;  // workers wait for a conversation to handle
  std::condition_variable room_;        // the reader waits for in-flight room
  std::map<int, uint64_t> owned_;       // shard -> generation (bumped on every acquisition)
  std::set<int> to_claim_;              // acquired shards whose pending entries are not claimed yet
  // Owned shards: until when the lease is certainly ours (a blocking read must end by then).
  std::map<int, std::chrono::steady_clock::time_point> valid_until_;
  // Surplus shards no longer read or dispatched, still leased until safe to give back: the
  // number of the last read that may include them.
  std::map<int, uint64_t> releasing_;
  std::set<int> release_asked_;  // shards the last lease round asked to release
  uint64_t reads_started_ = 0;   // stream reads begun by the reader, and finished
  uint64_t reads_finished_ = 0;
  std::map<int, int> in_hand_;  // shard -> entries a worker is handling right now
  std::map<int, Hold> held_;    // owned shards held back because Redis could not serve them
  std::map<int, int> queued_;   // shard -> its entries read and not finished
  // shard -> when it last finished an entry, or last had none to finish: how long it stalls.
  std::map<int, std::chrono::steady_clock::time_point> progress_;
  std::map<std::string, Conversation> conversations_;
  std::deque<std::string> ready_;                                              // conversations with work, not busy
  std::multimap<std::chrono::steady_clock::time_point, std::string> delayed_;  // retry times
  int in_flight_ = 0;
  int idle_workers_ = 0;                                   // workers waiting for a conversation
  std::map<uint64_t, Parked> parked_;                      // batches with entries kLater
  std::deque<std::pair<uint64_t, Continuation>> resumed_;  // continuations for a worker
  uint64_t next_batch_ = 1;
  uint64_t next_generation_ = 1;
  bool workers_stop_ = false;
  std::atomic<bool> release_now_{false};

  prometheus::Gauge* owned_gauge_ = nullptr;
  prometheus::Family<prometheus::Counter>* outcomes_ = nullptr;
  std::unordered_map<std::string, prometheus::Counter*> outcome_counters_;  // under mutex_
  prometheus::Counter* trimmed_ = nullptr;
  prometheus::Counter* dead_letters_dropped_ = nullptr;
  prometheus::Gauge* paused_gauge_ = nullptr;
  prometheus::Gauge* held_gauge_ = nullptr;
  prometheus::Family<prometheus::Gauge>* stalled_ = nullptr;
};

}  // namespace katy::redis
