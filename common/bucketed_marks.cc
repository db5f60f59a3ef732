#include "common/bucketed_marks.h"

#include <algorithm>
#include <charconv>
#include <string>

#include "common/hmac.h"

namespace katy {

int64_t MarkDigest(std::string_view scope, std::string_view key) {
  std::string named;
  named.reserve(scope.size() + 1 + key.size());
  named.append(scope).append(":").append(key);
  const std::string hex = Sha256Hex(named);
  uint64_t digest = 0;
  std::from_chars(hex.data(), hex.data() + 16, digest, 16);
  return static_cast<int64_t>(digest);  // Redis packs a set of integers tightly (intset)
}

BucketPlace PlaceInBucket(int64_t timestamp_ms, int64_t bucket_ms, std::chrono::seconds ttl, int64_t now_ms) {
  const int64_t bucket = timestamp_ms / bucket_ms;
  const int64_t from_ms = std::min(std::max((bucket + 1) * bucket_ms, now_ms), now_ms + bucket_ms);
  return {bucket, from_ms / 1000 + ttl.count()};
}

bool BucketExpiries::Due(const std::string& bucket_key, Clock::time_point now) const {
  std::lock_guard lock(mutex_);
  auto found = set_at_.find(bucket_key);
  return found == set_at_.end() || now - found->second >= kRenewEvery;
}

void BucketExpiries::Set(const std::string& bucket_key, Clock::time_point now) {
  std::lock_guard lock(mutex_);
  if (set_at_.size() >= kSweepAbove) {
    std::erase_if(set_at_, [&](const auto& entry) { return now - entry.second >= kRenewEvery; });
  }
  set_at_[bucket_key] = now;
}

void BucketExpiries::Forget() {
  std::lock_guard lock(mutex_);
  set_at_.clear();
}

}  // namespace katy
