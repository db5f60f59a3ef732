#pragma once

#include <chrono>
#include <cstdint>
#include <string_view>

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

}  // namespace katy
