#include "common/forget.h"

#include <functional>
#include <map>
#include <vector>

#include "common/redis/replication_health.h"
#include "common/redis/script.h"
#include "common/redis/streams.h"
#include "common/reminder_keys.h"
#include "katy/v1/events.pb.h"

namespace katy {
namespace {

// Rounds of reading and erasing before a shard whose streams keep changing is given up on.
// Each later round reads only what was added since the last, a round trip's worth.
constexpr int kRounds = 20;
constexpr int kReadChunk = 500;

// KEYS: conversation, timers, owned, in, out, dlq, then the records to delete.
// ARGV: "<page>:<user>", the last ids read of in, out and dlq ("" when empty), then the
// number of in, out and dlq ids and the ids themselves.
// Returns {-1} when a stream has an entry after the one last read (read again), else the counts
// {conversations, reminders, ownership, in, out, dlq, records}.
constexpr const char* kForgetLua = R"lua(
for s = 1, 3 do
  local from = ARGV[1 + s] == '' and '-' or '(' .. ARGV[1 + s]
  if redis.call('XRANGE', KEYS[3 + s], from, '+', 'COUNT', 1)[1] then return {-1} end
end
local counts = {0, 0, 0, 0, 0, 0, 0}
local fields = redis.call('HKEYS', KEYS[1])
for _, field in ipairs(fields) do
  if string.sub(field, 1, 6) == 'timer:' then
    counts[2] = counts[2] + redis.call('ZREM', KEYS[2], ARGV[1] .. ':' .. string.sub(field, 7))
  end
end
counts[1] = redis.call('DEL', KEYS[1])
counts[3] = redis.call('SREM', KEYS[3], ARGV[1])
local i = 5
local groups = {'responders', 'senders', false}  -- KeySpace::kResponderGroup, kSenderGroup
for s = 1, 3 do
  local n = tonumber(ARGV[i])
  for k = 1, n do
    local id = ARGV[i + k]
    if groups[s] then redis.call('XACK', KEYS[3 + s], groups[s], id) end
    counts[3 + s] = counts[3 + s] + redis.call('XDEL', KEYS[3 + s], id)
  end
  i = i + n + 1
end
for k = 7, #KEYS do counts[7] = counts[7] + redis.call('DEL', KEYS[k]) end
return counts
)lua";

// Reads an entry's payload as what its stream holds: an inbound event, or a message (a dead
// letter holds either, by the stage that gave it up). False when it holds neither.
bool ReadPayload(const redis::StreamEntry& entry, bool inbound, katy::v1::InboundEvent& event,
                 katy::v1::OutboundMessage& message) {
  auto payload = entry.Field("pb");
  if (!payload) return false;
  if (auto stage = entry.Field("stage")) inbound = *stage != "sender";
  return inbound ? event.ParseFromString(*payload) : message.ParseFromString(*payload);
}

// Whether an entry's payload (ReadPayload) is the person's: an event from them, a message to them.
bool IsTheirs(const katy::v1::InboundEvent& event, const katy::v1::OutboundMessage& message, const std::string& page,
              const std::string& user) {
  return (event.page_id() == page && event.user_id() == user) ||
         (message.page_id() == page && message.recipient_id() == user);
}

// Which of a stream's entries to take: given the entry and its payload (one of the two set).
using EntryTest =
    std::function<bool(const redis::StreamEntry&, const katy::v1::InboundEvent&, const katy::v1::OutboundMessage&)>;

struct StreamScan {
  std::string key;
  bool inbound = false;
  std::string last_id;  // the newest entry read; "" before the first
  std::vector<redis::StreamEntry> taken;
};

// Reads the entries after `scan.last_id` and keeps those `take` wants.
Status ReadOn(redis::Client& client, StreamScan& scan, const EntryTest& take) {
  while (true) {
    const std::string from = scan.last_id.empty() ? "-" : "(" + scan.last_id;
    auto range = client.Command({"XRANGE", scan.key, from, "+", "COUNT", std::to_string(kReadChunk)});
    if (!range) return range.error();
    const auto entries = redis::ParseEntries(scan.key, *range);
    for (const auto& entry : entries) {
      scan.last_id = entry.id;
      katy::v1::InboundEvent event;
      katy::v1::OutboundMessage message;
      if (ReadPayload(entry, scan.inbound, event, message) && take(entry, event, message)) {
        scan.taken.push_back(entry);
      }
    }
    if (static_cast<int>(entries.size()) < kReadChunk) return Ok{};
  }
}

// A shard's inbound, outbound and dead-letter streams, to be read.
std::vector<StreamScan> ShardStreams(const KeySpace& keys, int shard) {
  std::vector<StreamScan> streams(3);
  streams[0].key = keys.InStream(shard);
  streams[0].inbound = true;
  streams[1].key = keys.OutStream(shard);
  streams[2].key = keys.DeadLetters(shard);  // a dead letter's stage says which it holds
  return streams;
}

// The keys that name the person: the outbound API's delivered and in-flight marks of their
// messages (sent:api:<page>:<user>:...) and idempotency keys whose message id is theirs, and
// the dedupe marks of their receipts that came without a timestamp.
Result<std::vector<std::string>> OutboundRecords(redis::Client& client, const KeySpace& keys, int shard,
                                                 const std::string& page, const std::string& user) {
  const std::string message_prefix = "api:" + page + ":" + user + ":";
  auto records = client.ScanKeys(keys.Sent(shard, message_prefix) + "*");
  if (!records) return records.error();
  // A dedupe mark of its own (an event without a timestamp) is named by the event's key, which
  // for a receipt names the person ("dlv:<user>:<watermark>", "read:<user>:<mid>").
  auto marks = client.ScanKeys(keys.SeenPrefix(shard) + page + ":*:" + user + ":*");
  if (!marks) return marks.error();
  records->insert(records->end(), marks->begin(), marks->end());
  auto idempotency = client.ScanKeys(keys.Outbound(shard, "*"));
  if (!idempotency) return idempotency.error();
  if (idempotency->empty()) return records;
  std::vector<std::vector<std::string>> reads;
  for (const auto& key : *idempotency) reads.push_back({"GET", key});
  auto ids = client.Pipeline(reads);
  if (!ids) return ids.error();
  for (size_t i = 0; i < ids->size(); ++i) {
    if ((*ids)[i].str.starts_with(message_prefix)) records->push_back((*idempotency)[i]);
  }
  return records;
}

ForgetCounts CountsOf(const redis::Reply& reply) {
  auto at = [&](size_t i) { return static_cast<int>(reply.elements[i].integer); };
  return {at(0), at(1), at(2), at(3), at(4), at(5), at(6)};
}

}  // namespace

Result<ForgetCounts> ForgetPerson(redis::Client& client, const KeySpace& keys, const std::string& page,
                                  const std::string& user, const std::string& keep_entry) {
  static const redis::Script forget(kForgetLua);
  const int shard = ShardOf(page, user, keys.shards());
  std::vector<StreamScan> streams = ShardStreams(keys, shard);
  const EntryTest theirs = [&](const redis::StreamEntry& entry, const katy::v1::InboundEvent& event,
                               const katy::v1::OutboundMessage& message) {
    return entry.id != keep_entry && IsTheirs(event, message, page, user);
  };
  // The records are found by SCANs of the whole keyspace: slow, so read once, and again only
  // when a round finds a new outbound message of the person (an outbound API call made
  // meanwhile brings its own records). Within a round only the streams' new entries are read.
  Result<std::vector<std::string>> records = std::vector<std::string>{};
  size_t outbound_seen = 0;
  for (int round = 0; round < kRounds; ++round) {
    for (auto& scan : streams) {
      if (auto read = ReadOn(client, scan, theirs); !read) return read.error();
    }
    if (round == 0 || streams[1].taken.size() > outbound_seen) {
      records = OutboundRecords(client, keys, shard, page, user);
      if (!records) return records.error();
      outbound_seen = streams[1].taken.size();
    }
    std::vector<std::string> script_keys = {keys.Conversation(shard, page, user), keys.Timers(shard),
                                            keys.Owned(shard)};
    std::vector<std::string> args = {page + ":" + user};
    for (const auto& scan : streams) {
      script_keys.push_back(scan.key);
      args.push_back(scan.last_id);
    }
    for (const auto& scan : streams) {
      args.push_back(std::to_string(scan.taken.size()));
      for (const auto& entry : scan.taken) args.push_back(entry.id);
    }
    script_keys.insert(script_keys.end(), records->begin(), records->end());
    auto erased = forget.Run(client, script_keys, args);
    if (!erased) return erased.error();
    if (erased->IsError()) return redis::ReplyError(erased->str);
    if (erased->elements.size() == 7) return CountsOf(*erased);
  }
  return Error{ErrorCode::kIo, "the shard's streams kept changing: nothing was erased, try again"};
}

Result<ScrubCounts> ScrubMessage(redis::Client& client, const KeySpace& keys, const std::string& page,
                                 const std::string& user, const std::string& mid) {
  if (mid.empty()) return ScrubCounts{};  // no message is named
  const int shard = ShardOf(page, user, keys.shards());
  std::vector<StreamScan> streams = ShardStreams(keys, shard);
  const EntryTest of_the_message = [&](const redis::StreamEntry&, const katy::v1::InboundEvent& event,
                                       const katy::v1::OutboundMessage& message) {
    if (!IsTheirs(event, message, page, user)) return false;
    // The message and its edits carry its text; the deletion itself carries none.
    const bool the_message = event.mid() == mid && event.kind() != katy::v1::EVENT_KIND_MESSAGE_DELETE;
    return the_message || message.in_reply_to_mid() == mid;
  };
  for (auto& scan : streams) {
    if (auto read = ReadOn(client, scan, of_the_message); !read) return read.error();
  }
  std::vector<std::vector<std::string>> commands;
  for (const auto& entry : streams[0].taken) commands.push_back({"XDEL", streams[0].key, entry.id});
  for (const auto& entry : streams[1].taken) {
    commands.push_back({"XACK", streams[1].key, KeySpace::kSenderGroup, entry.id});
    commands.push_back({"XDEL", streams[1].key, entry.id});
  }
  ScrubCounts counts{static_cast<int>(streams[0].taken.size()), static_cast<int>(streams[1].taken.size()), 0};
  for (const auto& letter : streams[2].taken) {
    // A dead letter of the message keeps its place in the replay order's meaning (reason,
    // stage, attempts) without the text; one of a reply to it goes.
    katy::v1::InboundEvent event;
    katy::v1::OutboundMessage message;
    if (ReadPayload(letter, false, event, message) && letter.Field("stage").value_or("") != "sender") {
      event.clear_text();
      event.clear_attachments();
      event.clear_quick_reply_payload();
      std::vector<std::string> add{"XADD", streams[2].key, "*"};
      for (const auto& [name, value] : letter.fields) {
        add.push_back(name);
        add.push_back(name == "pb" ? event.SerializeAsString() : value);
      }
      add.insert(add.end(), {"scrubbed", "message_deleted"});
      commands.push_back(std::move(add));
    }
    commands.push_back({"XDEL", streams[2].key, letter.id});
    ++counts.dead_letters;
  }
  if (commands.empty()) return counts;
  auto done = client.Pipeline(commands);
  if (!done) return done.error();
  for (const auto& reply : *done) {
    if (reply.IsError()) return redis::ReplyError(reply.str);
  }
  return counts;
}

}  // namespace katy
