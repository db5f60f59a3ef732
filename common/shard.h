#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace katy {

// FNV-1a, 64 bits: stable across machines and releases, so shard assignment never moves.
uint64_t Fnv1a64(std::string_view data);

// shard = fnv1a64(page_id + ":" + user_id) % shards. Every event and reply of one conversation
// lands on the same shard, which is what keeps a conversation in order.
int ShardOf(std::string_view page_id, std::string_view user_id, int shards);

// The names of every Redis key Katy uses (architecture.md "Shards, streams and keys"). Each
// shard's keys carry the hash tag {sNN}, so one Lua script may touch all of them, on one Redis
// or on a Redis Cluster. Immutable and thread-safe.
class KeySpace {
 public:
  KeySpace(std::string prefix, int shards) : prefix_(std::move(prefix)), shards_(shards) {}

  int shards() const { return shards_; }
  const std::string& prefix() const { return prefix_; }

  std::string Tag(int shard) const;          // "{s07}"
  std::string InStream(int shard) const;     // katy:{s07}:in
  std::string OutStream(int shard) const;    // katy:{s07}:out
  std::string DeadLetters(int shard) const;  // katy:{s07}:dlq
  // Prefix of dedupe marks; the script appends the event's dedupe key.
  std::string SeenPrefix(int shard) const;  // katy:{s07}:seen:
  // katy:{s07}:seen@<bucket>: the marks of the shard's events whose timestamps fall in the
  // bucket (ingress's kSeenBucketMs), a set of digests.
  std::string SeenBucket(int shard, int64_t bucket) const;
  std::string Conversation(int shard, std::string_view page, std::string_view user) const;
  // katy:{s07}:sent:<message id>: a delivered mark of its own, holding Meta's message id (the
  // outbound API's messages, whose state it reports; any message before sent buckets), and the
  // prefix of a part's mark (…@<part>) and of the in-flight mark (…:inflight).
  std::string Sent(int shard, std::string_view message_id) const;
  // katy:{s07}:sent@<bucket>: the delivered marks of the shard's messages created in the bucket
  // (the sender's kSentBucketMs), a set of digests.
  std::string SentBucket(int shard, int64_t bucket) const;
  // katy:{s07}:answered:<comment or post id>: the id of the one private reply the comment may
  // have (docs/comments.md), set before it is sent and kept past Meta's 7 days.
  std::string CommentAnswered(int shard, std::string_view comment_id) const;
  // katy:{s07}:owned: the shard's conversations ("<page>:<user>") whose thread a person or
  // another app has (docs/handover.md).
  std::string Owned(int shard) const;
  // katy:{s07}:timers: the shard's pending reminders, member "<page>:<user>:<name>" scored by
  // the time it falls due (services/responder/reminders.h).
  std::string Timers(int shard) const;
  // katy:{s07}:outbound:<key>: the outbound API's id for a key already used; the key is
  // sender::ScopedIdempotencyKey (page, recipient and the caller's key, hashed).
  std::string Outbound(int shard, std::string_view idempotency_key) const;
  // katy:deletion:<confirmation code>: how a data deletion request ended ("done",
  // "nothing_found"), for its status page; absent while it is being carried out.
  std::string DeletionStatus(std::string_view code) const;
  std::string Lease(int shard, std::string_view role) const;
  std::string Members(std::string_view role) const;  // katy:members:<role>
  std::string Rate(std::string_view page) const;     // katy:rate:<page>
  // katy:pages: the ids of the pages with a katy:rate:<page> hash (a set the sender keeps), so
  // status and metrics list them without a SCAN of the keyspace.
  std::string Pages() const;
  std::string Paused(std::string_view role) const;  // katy:paused:<role>
  // katy:status: the last queue status a scrape read (redis::ReadSharedQueueStatus), a
  // serialized katy.v1.Status that expires when the next scrape should read afresh.
  std::string SharedStatus() const;
  // katy:attachment:<page>:<sha256 of url>: the page's attachment_id for a reusable media url.
  std::string Attachment(std::string_view page, std::string_view url) const;

  // The prefixes of the keys whose writes need no replica (redis::Options::unwaited_key_prefixes):
  // rate limiter and page pauses (katy:rate:), cached attachment ids, membership, the responder's
  // pause flag, the shared queue status. Their loss in a failover costs a throttle, an upload, a
  // pause set again, a status read afresh.
  std::vector<std::string> UnwaitedPrefixes() const;

  static constexpr const char* kResponderGroup = "responders";
  static constexpr const char* kSenderGroup = "senders";

 private:
  std::string Shard(int shard) const { return prefix_ + ":" + Tag(shard) + ":"; }
  std::string prefix_;
  int shards_;
};

}  // namespace katy
