#include "common/redis/streams.h"

#include <algorithm>
#include <thread>

#include "common/redis/cluster_slots.h"

namespace katy::redis {

std::optional<std::string> StreamEntry::Field(std::string_view name) const {
  for (const auto& [key, value] : fields) {
    if (key == name) return value;
  }
  return std::nullopt;
}

std::vector<StreamEntry> ParseEntries(const std::string& stream, const Reply& entries) {
  std::vector<StreamEntry> out;
  if (!entries.IsArray()) return out;
  out.reserve(entries.elements.size());
  for (const Reply& item : entries.elements) {
    // A pending entry deleted from the stream comes back with a nil field list: skip it.
    if (!item.IsArray() || item.elements.size() != 2 || !item.elements[1].IsArray()) continue;
    StreamEntry entry{stream, item.elements[0].str, {}};
    const auto& kv = item.elements[1].elements;
    for (size_t i = 0; i + 1 < kv.size(); i += 2) entry.fields.emplace_back(kv[i].str, kv[i + 1].str);
    out.push_back(std::move(entry));
  }
  return out;
}

Status EnsureGroup(Client& client, const std::string& stream, const std::string& group) {
  auto reply = client.Command({"XGROUP", "CREATE", stream, group, "0", "MKSTREAM"});
  if (reply.ok() || reply.error().message.rfind("BUSYGROUP", 0) == 0) return Ok{};
  return reply.error();
}

Result<std::string> XAdd(Client& client, const std::string& stream,
                         const std::vector<std::pair<std::string, std::string>>& fields) {
  std::vector<std::string> argv{"XADD", stream, "*"};
  for (const auto& [key, value] : fields) {
    argv.push_back(key);
    argv.push_back(value);
  }
  auto reply = client.Command(argv);
  if (!reply) return reply.error();
  return reply->str;
}

namespace {

std::vector<std::string> XReadGroupCommand(const std::string& group, const std::string& consumer,
                                           const std::vector<std::string>& streams, const std::vector<std::string>& ids,
                                           int count, std::chrono::milliseconds block) {
  std::vector<std::string> argv{"XREADGROUP", "GROUP", group, consumer, "COUNT", std::to_string(count)};
  if (block.count() > 0) {
    argv.emplace_back("BLOCK");
    argv.push_back(std::to_string(block.count()));
  }
  argv.emplace_back("STREAMS");
  argv.insert(argv.end(), streams.begin(), streams.end());
  argv.insert(argv.end(), ids.begin(), ids.end());
  return argv;
}

// Appends the entries of one XREADGROUP reply ([[stream, entries]...] or nil).
void AppendEntries(const Reply& reply, std::vector<StreamEntry>& entries) {
  if (!reply.IsArray()) return;
  for (const Reply& per_stream : reply.elements) {
    if (!per_stream.IsArray() || per_stream.elements.size() != 2) continue;
    for (auto& entry : ParseEntries(per_stream.elements[0].str, per_stream.elements[1])) {
      entries.push_back(std::move(entry));
    }
  }
}

bool OneSlot(const std::vector<std::string>& keys) {
  return std::all_of(keys.begin(), keys.end(),
                     [&](const std::string& key) { return KeySlot(key) == KeySlot(keys[0]); });
}

// One non-blocking read per stream, pipelined, until something comes or `block` passes.
Result<std::vector<StreamEntry>> PollEachStream(Client& client, const std::string& group, const std::string& consumer,
                                                const std::vector<std::string>& streams,
                                                const std::vector<std::string>& ids, int count,
                                                std::chrono::milliseconds block) {
  std::vector<std::vector<std::string>> reads;
  reads.reserve(streams.size());
  for (size_t i = 0; i < streams.size(); ++i) {
    reads.push_back(XReadGroupCommand(group, consumer, {streams[i]}, {ids[i]}, count, {}));
  }
  const auto deadline = std::chrono::steady_clock::now() + block;
  while (true) {
    auto replies = client.Pipeline(reads);
    if (!replies) return replies.error();
    // A stream that cannot be read now (its master is failing over) must not hold up the rest;
    // only when none can be read is the read a failure.
    std::vector<StreamEntry> entries;
    const Reply* failed = nullptr;
    for (const Reply& reply : *replies) {
      if (reply.IsError()) failed = &reply;
      AppendEntries(reply, entries);
    }
    if (failed != nullptr &&
        std::all_of(replies->begin(), replies->end(), [](const Reply& r) { return r.IsError(); })) {
      return Error{ErrorCode::kReply, failed->str};
    }
    const auto now = std::chrono::steady_clock::now();
    if (!entries.empty() || now >= deadline) return entries;
    std::this_thread::sleep_for(std::min<std::chrono::steady_clock::duration>(kClusterReadPoll, deadline - now));
  }
}

}  // namespace

Result<std::vector<StreamEntry>> XReadGroup(Client& client, const std::string& group, const std::string& consumer,
                                            const std::vector<std::string>& streams,
                                            const std::vector<std::string>& ids, int count,
                                            std::chrono::milliseconds block) {
  if (streams.size() > 1 && !OneSlot(streams)) {
    auto cluster = client.IsCluster();
    if (!cluster) return cluster.error();
    if (*cluster) return PollEachStream(client, group, consumer, streams, ids, count, block);
  }
  auto reply = client.Command(XReadGroupCommand(group, consumer, streams, ids, count, block));
  if (!reply) return reply.error();
  std::vector<StreamEntry> entries;
  AppendEntries(*reply, entries);
  return entries;
}

Result<long long> XAck(Client& client, const std::string& stream, const std::string& group,
                       const std::vector<std::string>& ids) {
  std::vector<std::string> argv{"XACK", stream, group};
  argv.insert(argv.end(), ids.begin(), ids.end());
  auto reply = client.Command(argv);
  if (!reply) return reply.error();
  return reply->integer;
}

Result<AutoClaimed> XAutoClaim(Client& client, const std::string& stream, const std::string& group,
                               const std::string& consumer, std::chrono::milliseconds min_idle,
                               const std::string& start, int count) {
  auto reply = client.Command(
      {"XAUTOCLAIM", stream, group, consumer, std::to_string(min_idle.count()), start, "COUNT", std::to_string(count)});
  if (!reply) return reply.error();
  AutoClaimed out;
  if (reply->IsArray() && reply->elements.size() >= 2) {
    out.next_start = reply->elements[0].str;
    out.entries = ParseEntries(stream, reply->elements[1]);
  }
  return out;
}

}  // namespace katy::redis
