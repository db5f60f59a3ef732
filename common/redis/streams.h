#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "common/redis/redis_client.h"

namespace katy::redis {

struct StreamEntry {
  std::string stream;
  std::string id;
  std::vector<std::pair<std::string, std::string>> fields;

  // The value of `name`, or nullopt when the entry has no such field.
  std::optional<std::string> Field(std::string_view name) const;
};

// Creates the consumer group (and the stream) if absent, reading from the start of the stream.
// An existing group is left as it is (BUSYGROUP is success).
Status EnsureGroup(Client& client, const std::string& stream, const std::string& group);

// XADD stream * field value ...; returns the new entry's id.
Result<std::string> XAdd(Client& client, const std::string& stream,
                         const std::vector<std::pair<std::string, std::string>>& fields);

// XREADGROUP GROUP group consumer COUNT count BLOCK block STREAMS s... ids...
// `ids[i]` is ">" for new entries, or an id ("0") to re-read this consumer's pending ones.
// A timeout with nothing to read is an empty vector. block == 0ms means "do not block".
// The client's socket timeout must exceed `block`.
// On a Redis Cluster, streams in different slots cannot be read by one command: each is read
// without BLOCK, all of them pipelined (one round trip per master), again every
// kClusterReadPoll until something comes or `block` has passed.
inline constexpr std::chrono::milliseconds kClusterReadPoll{20};
Result<std::vector<StreamEntry>> XReadGroup(Client& client, const std::string& group, const std::string& consumer,
                                            const std::vector<std::string>& streams,
                                            const std::vector<std::string>& ids, int count,
                                            std::chrono::milliseconds block);

// XACK stream group id...; returns how many were acknowledged.
Result<long long> XAck(Client& client, const std::string& stream, const std::string& group,
                       const std::vector<std::string>& ids);

struct AutoClaimed {
  std::string next_start;  // "0-0" when the whole pending list was scanned
  std::vector<StreamEntry> entries;
};

// XAUTOCLAIM stream group consumer min_idle start COUNT count: takes over entries pending with
// other consumers for at least `min_idle`, in id order. Deleted entries are skipped.
Result<AutoClaimed> XAutoClaim(Client& client, const std::string& stream, const std::string& group,
                               const std::string& consumer, std::chrono::milliseconds min_idle,
                               const std::string& start, int count);

// Converts the [[id, [f, v, ...]], ...] part of a stream reply.
std::vector<StreamEntry> ParseEntries(const std::string& stream, const Reply& entries);

}  // namespace katy::redis
