#include "services/sender/delivered_mark.h"

#include "common/bucketed_marks.h"

namespace katy::sender {

DeliveredMark::DeliveredMark(const KeySpace& keys, int shard, const katy::v1::OutboundMessage& message,
                             int64_t legacy_before_ms)
    : own_key_(keys.Sent(shard, message.id())) {
  if (IsOutboundApiId(message.id()) || message.created_at_ms() <= 0) return;
  created_ms_ = message.created_at_ms();
  bucket_key_ = keys.SentBucket(shard, created_ms_ / kSentBucketMs);
  digest_ = std::to_string(MarkDigest(message.page_id(), message.id()));
  if (created_ms_ < legacy_before_ms) legacy_key_ = own_key_;
}

std::vector<std::string> DeliveredMark::Check() const {
  if (created_ms_ <= 0) return {"EXISTS", own_key_};
  return {"SISMEMBER", bucket_key_, digest_};
}

std::vector<std::vector<std::string>> DeliveredMark::Record(const std::string& meta_id, std::chrono::seconds ttl,
                                                            int64_t now_ms, bool set_expiry) const {
  if (created_ms_ <= 0) return {{"SET", own_key_, meta_id, "EX", std::to_string(ttl.count())}};
  std::vector<std::vector<std::string>> commands;
  if (set_expiry) commands = Keep(ttl, now_ms);
  commands.insert(commands.begin(), {"SADD", bucket_key_, digest_});
  return commands;
}

std::vector<std::vector<std::string>> DeliveredMark::Keep(std::chrono::seconds ttl, int64_t now_ms) const {
  if (created_ms_ <= 0) return {};
  const BucketPlace place = PlaceInBucket(created_ms_, kSentBucketMs, ttl, now_ms);
  return {{"EXPIREAT", bucket_key_, std::to_string(place.expire_at_s)}};
}

}  // namespace katy::sender
