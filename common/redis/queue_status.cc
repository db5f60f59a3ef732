#include "common/redis/queue_status.h"

#include <cstdlib>

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
    if (key == "pending") out->set_pending(ToInt(value));
    else if (key == "lag") out->set_lag(ToInt(value));
    else if (key == "consumers") out->set_consumers(static_cast<int32_t>(ToInt(value)));
  }
}

}  // namespace

Status ReadQueueStatus(Client& client, const KeySpace& keys, katy::v1::Status* status) {
  struct StreamGroup {
    std::string stream;
    std::string group;
  };
  std::vector<StreamGroup> streams;
  for (int shard = 0; shard < keys.shards(); ++shard) {
    streams.push_back({keys.InStream(shard), KeySpace::kResponderGroup});
    streams.push_back({keys.OutStream(shard), KeySpace::kSenderGroup});
  }
  std::vector<std::vector<std::string>> commands;
  for (const auto& [stream, group] : streams) {
    commands.push_back({"XLEN", stream});
    commands.push_back({"XINFO", "GROUPS", stream});
  }
  for (int shard = 0; shard < keys.shards(); ++shard) commands.push_back({"XLEN", keys.DeadLetters(shard)});
  for (const char* role : {"responder", "sender"}) {
    for (int shard = 0; shard < keys.shards(); ++shard) commands.push_back({"GET", keys.Lease(shard, role)});
  }
  auto replies = client.Pipeline(commands);
  if (!replies) return replies.error();

  size_t at = 0;
  for (const auto& [stream, group] : streams) {
    auto* out = status->add_streams();
    out->set_stream(stream);
    out->set_group(group);
    out->set_length(ToInt((*replies)[at++]));
    const Reply& groups = (*replies)[at++];  // an error when the stream does not exist yet
    if (!groups.IsArray()) continue;
    for (const Reply& info : groups.elements) {
      for (size_t i = 0; i + 1 < info.elements.size(); i += 2) {
        if (info.elements[i].str == "name" && info.elements[i + 1].str == group) ReadGroup(info, out);
      }
    }
  }
  for (int shard = 0; shard < keys.shards(); ++shard) {
    auto* out = status->add_dead_letters();
    out->set_stream(keys.DeadLetters(shard));
    out->set_length(ToInt((*replies)[at++]));
  }
  for (const char* role : {"responder", "sender"}) {
    for (int shard = 0; shard < keys.shards(); ++shard) {
      auto* lease = status->add_leases();
      lease->set_role(role);
      lease->set_shard(shard);
      const Reply& owner = (*replies)[at++];
      if (!owner.IsNil()) lease->set_owner(owner.str);
    }
  }

  // Pages with sending state: katy:rate:<page> hashes.
  auto now = client.Command({"TIME"});
  const double now_ms = now && now->elements.size() == 2
                            ? static_cast<double>(ToInt(now->elements[0])) * 1000 + static_cast<double>(ToInt(now->elements[1])) / 1000
                            : 0;
  const std::string pattern = keys.Rate("*");
  std::string cursor = "0";
  do {
    auto scanned = client.Command({"SCAN", cursor, "MATCH", pattern, "COUNT", "200"});
    if (!scanned) return scanned.error();
    cursor = scanned->elements[0].str;
    std::vector<std::vector<std::string>> reads;
    std::vector<std::string> names;
    for (const auto& key : scanned->elements[1].elements) {
      reads.push_back({"HMGET", key.str, "rate", "paused", "paused_reason", "blocked_until"});
      names.push_back(key.str.substr(keys.Rate("").size()));
    }
    if (reads.empty()) continue;
    auto pages = client.Pipeline(reads);
    if (!pages) return pages.error();
    for (size_t i = 0; i < names.size(); ++i) {
      const auto& fields = (*pages)[i].elements;
      if (fields.size() != 4) continue;
      auto* page = status->add_pages();
      page->set_page_id(names[i]);
      page->set_rate(std::atof(fields[0].str.c_str()));
      page->set_paused(fields[1].str == "1");
      page->set_paused_reason(fields[2].str);
      const double blocked = std::atof(fields[3].str.c_str());
      page->set_throttled_for_ms(blocked > now_ms ? static_cast<int64_t>(blocked - now_ms) : 0);
    }
  } while (cursor != "0");
  return Ok{};
}

}  // namespace katy::redis
