#pragma once

#include <chrono>
#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>

namespace katy {

// Marks held as members of time buckets instead of keys of their own: the ingress's dedupe
// marks (per shard, the events' own timestamps) and the sender's delivered marks (per shard,
// the messages' creation times). A key of its own with a TTL costs Redis ~100-120 bytes a
// mark; a member of a set of 64-bit integers, which Redis packs as an intset (up to
// set-max-intset-entries, 512 by default), costs 8 (bench/RESULTS.md, "What each message costs
// Redis"). The bucket is named by the marked thing's own time, which every retry of it
// repeats, so a retry finds its bucket whenever it comes.

// The mark of `key` in `scope` (a page, say): the first 64 bits of SHA-256("<scope>:<key>"), as
// a signed integer. Two different keys of one bucket share it with probability about n / 2^64
// for n marks in the bucket (docs/architecture.md works it out). Pure.
int64_t MarkDigest(std::string_view scope, std::string_view key);

// Where the mark of something timed `timestamp_ms` goes and until when it is kept.
struct BucketPlace {
  int64_t bucket = 0;       // timestamp_ms / bucket_ms: the key names it
  int64_t expire_at_s = 0;  // epoch seconds for the bucket's EXPIREAT
};

// A mark is kept for `ttl` from the later of its bucket's end and `now_ms`: one written late
// (after an outage, a long pause) lives as long as one written on time. A timestamp far ahead
// of this clock keeps it no longer than one of now would (its bucket must not live for
// years). Pure.
BucketPlace PlaceInBucket(int64_t timestamp_ms, int64_t bucket_ms, std::chrono::seconds ttl, int64_t now_ms);

// Whether a bucket's EXPIREAT must go with a mark a writer (a process's sender, an ingress
// loop) writes to it: the first time the writer writes to the bucket, then at most every
// kRenewEvery, and again after any write of the writer failed (Redis may have failed over to a
// replica that never had the expiry: the next write sets it). A bucket is written for its few
// seconds, so nearly every mark goes without an EXPIREAT of its own, one command a mark less
// (bench/RESULTS.md), and no bucket the writer writes to is left without one. Thread-safe.
class BucketExpiries {
 public:
  using Clock = std::chrono::steady_clock;
  static constexpr std::chrono::milliseconds kRenewEvery{1000};

  // Whether a write to `bucket_key` at `now` must set its expiry.
  bool Due(const std::string& bucket_key, Clock::time_point now) const;
  // A write that set `bucket_key`'s expiry at `now` succeeded.
  void Set(const std::string& bucket_key, Clock::time_point now);
  // A write failed: every bucket's expiry is due again.
  void Forget();

 private:
  static constexpr size_t kSweepAbove = 4096;  // buckets not written for a while go past this
  mutable std::mutex mutex_;
  std::unordered_map<std::string, Clock::time_point> set_at_;  // under mutex_
};

}  // namespace katy
