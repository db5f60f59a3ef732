#include "common/shard.h"

#include <cstdio>

#include "common/hmac.h"

namespace katy {

uint64_t Fnv1a64(std::string_view data) {
  uint64_t hash = 0xcbf29ce484222325ULL;
  for (unsigned char c : data) {
    hash ^= c;
    hash *= 0x100000001b3ULL;
  }
  return hash;
}

int ShardOf(std::string_view page_id, std::string_view user_id, int shards) {
  std::string key;
  key.reserve(page_id.size() + 1 + user_id.size());
  key.append(page_id).append(":").append(user_id);
  return static_cast<int>(Fnv1a64(key) % static_cast<uint64_t>(shards));
}

std::string KeySpace::Tag(int shard) const {
  char buf[16];
  std::snprintf(buf, sizeof buf, "{s%02d}", shard);
  return buf;
}

std::string KeySpace::InStream(int shard) const { return Shard(shard) + "in"; }
std::string KeySpace::OutStream(int shard) const { return Shard(shard) + "out"; }
std::string KeySpace::DeadLetters(int shard) const { return Shard(shard) + "dlq"; }
std::string KeySpace::SeenPrefix(int shard) const { return Shard(shard) + "seen:"; }
std::string KeySpace::SeenBucket(int shard, int64_t bucket) const {
  return Shard(shard) + "seen@" + std::to_string(bucket);
}

std::string KeySpace::Conversation(int shard, std::string_view page, std::string_view user) const {
  return Shard(shard) + "conv:" + std::string(page) + ":" + std::string(user);
}

std::string KeySpace::Sent(int shard, std::string_view message_id) const {
  return Shard(shard) + "sent:" + std::string(message_id);
}

std::string KeySpace::SentBucket(int shard, int64_t bucket) const {
  return Shard(shard) + "sent@" + std::to_string(bucket);
}

std::string KeySpace::CommentAnswered(int shard, std::string_view comment_id) const {
  return Shard(shard) + "answered:" + std::string(comment_id);
}

std::string KeySpace::Owned(int shard) const { return Shard(shard) + "owned"; }

std::string KeySpace::Timers(int shard) const { return Shard(shard) + "timers"; }

std::string KeySpace::Outbound(int shard, std::string_view idempotency_key) const {
  return Shard(shard) + "outbound:" + std::string(idempotency_key);
}

std::string KeySpace::Lease(int shard, std::string_view role) const {
  return Shard(shard) + "lease:" + std::string(role);
}

std::string KeySpace::Members(std::string_view role) const { return prefix_ + ":members:" + std::string(role); }

std::string KeySpace::Rate(std::string_view page) const { return prefix_ + ":rate:" + std::string(page); }

std::string KeySpace::Attachment(std::string_view page, std::string_view url) const {
  return prefix_ + ":attachment:" + std::string(page) + ":" + Sha256Hex(url);
}

}  // namespace katy

namespace katy {

std::string KeySpace::Pages() const { return prefix_ + ":pages"; }

std::string KeySpace::DeletionStatus(std::string_view code) const { return prefix_ + ":deletion:" + std::string(code); }

std::vector<std::string> KeySpace::UnwaitedPrefixes() const {
  return {prefix_ + ":rate:",   prefix_ + ":attachment:", prefix_ + ":members:",
          prefix_ + ":paused:", prefix_ + ":pages",       prefix_ + ":status"};
}

std::string KeySpace::Paused(std::string_view role) const { return prefix_ + ":paused:" + std::string(role); }

std::string KeySpace::SharedStatus() const { return prefix_ + ":status"; }

}  // namespace katy
