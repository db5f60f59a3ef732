#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <string>
#include <vector>

#include "common/redis/redis_client.h"
#include "common/redis/script.h"
#include "common/redis/streams.h"

namespace katy::redis {

// What a handler did with one stream entry.
struct HandleResult {
  enum class Kind {
    kDone,    // handled and acknowledged by the handler (its commit included the XACK)
    kRetry,   // not handled (a dependency failed): keep it pending and try it again
    kPoison,  // can never be handled (undecodable): dead-letter it now
  };
  Kind kind = Kind::kDone;
  std::string reason;  // for kRetry/kPoison: becomes the dead letter's reason

  static HandleResult Done() { return {Kind::kDone, ""}; }
  static HandleResult Retry(std::string why) { return {Kind::kRetry, std::move(why)}; }
  static HandleResult Poison(std::string why) { return {Kind::kPoison, std::move(why)}; }
};

struct StreamWorkerOptions {
  std::string group;     // consumer group, created on the streams if missing
  std::string consumer;  // this instance's consumer name (unique per process)
  std::string stage;     // "responder" or "sender": recorded on dead letters
  std::vector<std::string> streams;
  std::vector<std::string> dead_letter_streams;  // same order as streams
  int batch = 64;
  std::chrono::milliseconds block{1000};  // also bounds how long a stop request waits
  // Entries pending with another consumer for this long are taken over (that consumer died).
  std::chrono::milliseconds reclaim_idle{30000};
  std::chrono::milliseconds reclaim_every{5000};
  int max_attempts = 5;  // a kRetry entry is dead-lettered after this many failed attempts
  std::chrono::milliseconds max_backoff{5000};
};

using EntryHandler = std::function<HandleResult(Client&, const StreamEntry&)>;

// The at-least-once loop over consumer-group streams, written once for every service:
// create the groups, re-read this consumer's own pending entries, then block for new ones;
// periodically take over entries of dead consumers; hand each entry to the handler in stream
// order; on kRetry back off and try the same entry again (so later entries of the shard never
// overtake it); after max_attempts, or on kPoison, move it to the shard's dead-letter stream
// (with stage, reason, attempts) and acknowledge it, atomically.
//
// Not thread-safe: one thread runs Run(). Redis failures are retried with backoff; nothing
// escapes as an exception.
class StreamWorker {
 public:
  StreamWorker(Client client, StreamWorkerOptions options, EntryHandler handler);

  // Runs until `stop` becomes true; returns within about options.block after that, having
  // finished the entry in hand.
  void Run(const std::atomic<bool>& stop);

  // Dead-letters one entry now (XADD to the DLQ + XACK, atomically).
  Status DeadLetter(const StreamEntry& entry, const std::string& reason, int attempts);

 private:
  bool HandleWithRetries(const StreamEntry& entry, const std::atomic<bool>& stop);
  void Reclaim(const std::atomic<bool>& stop);
  void Backoff(int attempt, const std::atomic<bool>& stop);
  void EnsureGroups(const std::atomic<bool>& stop);

  Client client_;
  StreamWorkerOptions options_;
  EntryHandler handler_;
  Script dead_letter_script_;
  std::chrono::steady_clock::time_point next_reclaim_{};
};

}  // namespace katy::redis
