#include "common/redis/queue_status.h"

#include <algorithm>
#include <cstdlib>

#include "common/redis/replication_health.h"

namespace katy::redis {
namespace {

int64_t ToInt(const Reply& reply) {
  if (reply.type == Reply::Type::kInteger) return reply.integer;
  if (reply.type == Reply::Type::kString) return std::atoll(reply.str.c_str());
  return 0;
}

// Reads one group's entry from XINFO GROUPS (a flat key/value list).
void ReadGroup(const Reply& info, katy::v1::StreamStatus* out) {
  for (size_t i = 0; i + 1 < info.elements.size(); i += 2) {
    const std::string& key = info.elements[i].str;
    const Reply& value = info.elements[i + 1];
    if (key == "pending")
      out->set_pending(ToInt(value));
    else if (key == "lag" && !value.IsNil())  // nil: Redis cannot tell; the length stands
      out->set_lag(ToInt(value));
    else if (key == "consumers")
      out->set_consumers(static_cast<int32_t>(ToInt(value)));
  }
}

struct StreamGroup {
  std::string stream;
  std::string group;
};

// Every stream and the consumer group that reads it: in (responder) and out (sender) per shard.
std::vector<StreamGroup> StreamsOf(const KeySpace& keys) {
  std::vector<StreamGroup> streams;
  for (int shard = 0; shard < keys.shards(); ++shard) {
    streams.push_back({keys.InStream(shard), KeySpace::kResponderGroup});
    streams.push_back({keys.OutStream(shard), KeySpace::kSenderGroup});
  }
  return streams;
}

constexpr const char* kRoles[] = {"responder", "sender"};

// One pipeline's commands: per stream XLEN and XINFO GROUPS, per shard the dead letters' XLEN
// and the count of conversations with others, per role and shard the lease. AddQueues reads the
// replies in this order.
std::vector<std::vector<std::string>> QueueCommands(const KeySpace& keys, const std::vector<StreamGroup>& streams) {
  std::vector<std::vector<std::string>> commands;
  for (const auto& [stream, group] : streams) {
    commands.push_back({"XLEN", stream});
    commands.push_back({"XINFO", "GROUPS", stream});
  }
  for (int shard = 0; shard < keys.shards(); ++shard) commands.push_back({"XLEN", keys.DeadLetters(shard)});
  for (int shard = 0; shard < keys.shards(); ++shard) commands.push_back({"SCARD", keys.Owned(shard)});
  for (const char* role : kRoles) {
    for (int shard = 0; shard < keys.shards(); ++shard) commands.push_back({"GET", keys.Lease(shard, role)});
  }
  return commands;
}

// On a cluster, the reply of a command whose master could not be reached (Client::Pipeline).
bool Unreachable(const Reply& reply) { return reply.IsError() && reply.str.rfind("IOERR", 0) == 0; }

void AddQueues(const KeySpace& keys, const std::vector<StreamGroup>& streams, const std::vector<Reply>& replies,
               katy::v1::Status* status) {
  size_t at = 0;
  for (const auto& [stream, group] : streams) {
    if (Unreachable(replies[at])) {  // its master is down: unknown, not empty
      at += 2;
      continue;
    }
    auto* out = status->add_streams();
    out->set_stream(stream);
    out->set_group(group);
    out->set_length(ToInt(replies[at++]));
    // No group yet (no responder or sender has owned the shard since the stream began): every
    // entry waits, so the lag is the length. Reading 0 there would tell a scaler from zero, or a
    // test waiting for the queues to drain, that nothing waits.
    out->set_lag(out->length());
    const Reply& groups = replies[at++];  // an error when the stream does not exist yet
    if (!groups.IsArray()) continue;
    for (const Reply& info : groups.elements) {
      for (size_t i = 0; i + 1 < info.elements.size(); i += 2) {
        if (info.elements[i].str == "name" && info.elements[i + 1].str == group) ReadGroup(info, out);
      }
    }
  }
  for (int shard = 0; shard < keys.shards(); ++shard) {
    if (Unreachable(replies[at])) {
      ++at;
      continue;
    }
    auto* out = status->add_dead_letters();
    out->set_stream(keys.DeadLetters(shard));
    out->set_length(ToInt(replies[at++]));
  }
  for (int shard = 0; shard < keys.shards(); ++shard) {
    const Reply& owned = replies[at++];
    if (!owned.IsError()) status->set_conversations_with_others(status->conversations_with_others() + owned.integer);
  }
  for (const char* role : kRoles) {
    for (int shard = 0; shard < keys.shards(); ++shard) {
      auto* lease = status->add_leases();
      lease->set_role(role);
      lease->set_shard(shard);
      const Reply& owner = replies[at++];
      if (!owner.IsNil()) lease->set_owner(owner.str);
    }
  }
}

// Redis's clock in milliseconds (0 when TIME fails), so throttles compare with the time the
// sender wrote them in.
double RedisNowMs(Client& client) {
  auto now = client.Command({"TIME"});
  if (!now || now->elements.size() != 2) return 0;
  return static_cast<double>(ToInt(now->elements[0])) * 1000 + static_cast<double>(ToInt(now->elements[1])) / 1000;
}

// The sending state of the pages named `names`, read with an EXISTS and an HMGET reply each
// in `pages` (a page whose hash expired while idle is left out; one with only its limiter's
// state is listed with its defaults).
void AddPages(const std::vector<std::string>& names, const std::vector<Reply>& pages, double now_ms,
              katy::v1::Status* status) {
  for (size_t i = 0; i < names.size() && 2 * i + 1 < pages.size(); ++i) {
    if (pages[2 * i].integer != 1) continue;
    const auto& fields = pages[2 * i + 1].elements;
    if (fields.size() != 4) continue;
    auto* page = status->add_pages();
    page->set_page_id(names[i]);
    page->set_rate(std::atof(fields[0].str.c_str()));
    page->set_paused(fields[1].str == "1");
    page->set_paused_reason(fields[2].str);
    const double blocked = std::atof(fields[3].str.c_str());
    page->set_throttled_for_ms(blocked > now_ms ? static_cast<int64_t>(blocked - now_ms) : 0);
  }
}

// Pages with sending state: the katy:rate:<page> hashes of the pages the sender listed in
// katy:pages. O(pages), whatever else the keyspace holds (never a SCAN: with a busy day's
// marks, that was millions of steps a scrape). A page whose hash expired while idle reads as
// nothing and is left out.
Status ReadPages(Client& client, const KeySpace& keys, katy::v1::Status* status) {
  const double now_ms = RedisNowMs(client);
  auto found = client.Command({"SMEMBERS", keys.Pages()});
  if (!found) return found.error();
  if (found->IsError()) return ReplyError(found->str);
  std::vector<std::vector<std::string>> reads;
  std::vector<std::string> names;
  for (const Reply& page : found->elements) {
    reads.push_back({"EXISTS", keys.Rate(page.str)});
    reads.push_back({"HMGET", keys.Rate(page.str), "rate", "paused", "paused_reason", "blocked_until"});
    names.push_back(page.str);
  }
  if (reads.empty()) return Ok{};
  auto pages = client.Pipeline(reads);
  if (!pages) return pages.error();
  AddPages(names, *pages, now_ms, status);
  return Ok{};
}

// The shared status is "<max age in ms>\n<serialized katy.v1.Status>": with the writer's max
// age and the key's PTTL, a reader knows how long ago it was read, on Redis's clock.
std::string SharedValue(const katy::v1::Status& status, std::chrono::milliseconds max_age) {
  return std::to_string(max_age.count()) + "\n" + status.SerializeAsString();
}

// Fills `status` from a GET and a PTTL of the shared status; false when there is none (or it
// cannot be read: the caller then reads afresh). Throttles are told the time since the read.
bool TakeShared(const Reply& value, const Reply& ttl, katy::v1::Status* status) {
  if (value.type != Reply::Type::kString || ttl.type != Reply::Type::kInteger || ttl.integer <= 0) return false;
  const size_t newline = value.str.find('\n');
  if (newline == std::string::npos) return false;
  katy::v1::Status shared;
  if (!shared.ParseFromArray(value.str.data() + newline + 1, static_cast<int>(value.str.size() - newline - 1))) {
    return false;
  }
  const int64_t age_ms = std::max<int64_t>(0, std::atoll(value.str.c_str()) - ttl.integer);
  for (auto& page : *shared.mutable_pages()) {
    page.set_throttled_for_ms(std::max<int64_t>(0, page.throttled_for_ms() - age_ms));
  }
  status->MergeFrom(shared);
  return true;
}

}  // namespace

Status ReadSharedQueueStatus(Client& client, const KeySpace& keys, std::chrono::milliseconds max_age,
                             katy::v1::Status* status) {
  if (max_age.count() <= 0) return ReadQueueStatus(client, keys, status);
  auto shared = client.Pipeline({{"GET", keys.SharedStatus()}, {"PTTL", keys.SharedStatus()}});
  if (!shared) return shared.error();
  if (TakeShared((*shared)[0], (*shared)[1], status)) return Ok{};
  katy::v1::Status fresh;
  if (auto read = ReadQueueStatus(client, keys, &fresh); !read) return read;
  // One SET with its expiry, so a status is never left without one. Failing to share it only
  // means the next scrape reads too.
  (void)client.Command(
      {"SET", keys.SharedStatus(), SharedValue(fresh, max_age), "PX", std::to_string(max_age.count())});
  status->MergeFrom(fresh);
  return Ok{};
}

Status ReadQueueStatus(Client& client, const KeySpace& keys, katy::v1::Status* status) {
  const std::vector<StreamGroup> streams = StreamsOf(keys);
  auto replies = client.Pipeline(QueueCommands(keys, streams));
  if (!replies) return replies.error();
  AddQueues(keys, streams, *replies, status);
  return ReadPages(client, keys, status);
}

}  // namespace katy::redis
