#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "common/shard.h"
#include "katy/v1/events.pb.h"

namespace katy::sender {

// Delivered marks are members of per-shard buckets of the messages' creation times (every
// attempt of a message repeats it), each mark MarkDigest(page, message id)
// (common/bucketed_marks.h): 8 bytes a message instead of a key of its own (~104 bytes).
inline constexpr int64_t kSentBucketMs = 5000;

// Whether `message_id` names a message of the outbound API (OutboundService: "api:<page>:..."). Pure.
inline bool IsOutboundApiId(const std::string& message_id) { return message_id.rfind("api:", 0) == 0; }

// Where a message's delivered mark is, what checks it and what writes it (docs/sending.md,
// "Already delivered?"). A message of the outbound API keeps a mark of its own holding Meta's
// message id, which GetMessage reports, and so does a message without a creation time. A
// message created before this sender started may have a mark of its own from before buckets
// (docs/scaling.md): `legacy_key` is checked too. Pure.
class DeliveredMark {
 public:
  DeliveredMark() = default;
  DeliveredMark(const KeySpace& keys, int shard, const katy::v1::OutboundMessage& message, int64_t legacy_before_ms);

  // SISMEMBER of the bucket, or EXISTS of the mark of its own: 1 when delivered.
  std::vector<std::string> Check() const;
  // The mark of its own from before buckets, when it may exist; empty when none may.
  const std::string& legacy_key() const { return legacy_key_; }
  // The commands that write the mark for a message Meta took as `meta_id`, kept `ttl` (from
  // the bucket's end or `now_ms`, the later). A bucketed mark's EXPIREAT goes only with
  // `set_expiry` (BucketExpiries says when).
  std::vector<std::vector<std::string>> Record(const std::string& meta_id, std::chrono::seconds ttl, int64_t now_ms,
                                               bool set_expiry = true) const;
  // The bucket the mark goes in; empty for a mark of its own.
  const std::string& bucket_key() const { return bucket_key_; }
  // What gives a mark found in its bucket its lifetime again, should the EXPIREAT of its
  // Record have been lost (the pipeline cut between the SADD and it; the XACK after them was
  // then lost too, so the found mark's entry is still pending and this runs): nothing for a
  // mark of its own, whose SET carries its TTL.
  std::vector<std::vector<std::string>> Keep(std::chrono::seconds ttl, int64_t now_ms) const;

 private:
  std::string own_key_;     // keys.Sent(shard, id)
  std::string legacy_key_;  // own_key_ when a bucketed message may have one from before buckets
  int64_t created_ms_ = 0;  // > 0: bucketed
  std::string bucket_key_;
  std::string digest_;
};

}  // namespace katy::sender
