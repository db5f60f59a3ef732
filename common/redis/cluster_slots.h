#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/redis/options.h"
#include "common/redis/reply.h"
#include "common/result.h"

// The pure parts of speaking to a Redis Cluster: which slot a key lives in, which node serves
// a slot, and what a redirection says. Cluster specification: the key distribution model and
// hash tags (https://redis.io/docs/latest/operate/oss_and_stack/reference/cluster-spec/).
namespace katy::redis {

inline constexpr int kClusterSlots = 16384;

// CRC16, the XMODEM variant the specification names (poly 0x1021, init 0, no reflection):
// "123456789" gives 0x31C3.
uint16_t Crc16(std::string_view data);

// The part of `key` that decides its slot: what lies between the first '{' and the first '}'
// after it, when that is not empty; otherwise the whole key.
std::string_view HashTagOf(std::string_view key);

// CRC16(HashTagOf(key)) mod 16384.
int KeySlot(std::string_view key);

// Where a command must go: CommandSlot's answer when it names no key (any master will do),
// or keys in different slots (Redis Cluster refuses it: CROSSSLOT).
inline constexpr int kNoKey = -1;
inline constexpr int kCrossSlot = -2;

// Where the keys of `argv` are: argv[first, last) (empty for a keyless command). Knows the
// commands Katy sends: EVAL/EVALSHA (numkeys), XREAD/XREADGROUP (after STREAMS), XGROUP and
// XINFO (after the subcommand), DEL/EXISTS/MGET/UNLINK/TOUCH (every argument), keyless
// commands (PING, TIME, INFO, SCRIPT, CLUSTER, WAIT, SCAN, ...), and otherwise argv[1].
struct KeyRange {
  size_t first = 0;
  size_t last = 0;
};
KeyRange CommandKeys(const std::vector<std::string>& argv);

// The slot of the keys `argv` names (CommandKeys), kNoKey or kCrossSlot.
int CommandSlot(const std::vector<std::string>& argv);

// What a -MOVED or -ASK error reply says: "MOVED 3999 127.0.0.1:6381". nullopt for any other
// error text.
struct Redirection {
  enum class Kind { kMoved, kAsk };
  Kind kind = Kind::kMoved;
  int slot = 0;
  NodeAddress node;
};
std::optional<Redirection> ParseRedirection(std::string_view error_text);

// Which master serves each slot, read from CLUSTER SLOTS and corrected by MOVED. Not
// thread-safe; pure (no I/O).
class SlotMap {
 public:
  // From a CLUSTER SLOTS reply: [[start, end, [host, port, id...], replicas...], ...].
  // ErrorCode::kReply when the reply does not have that shape.
  static Result<SlotMap> FromClusterSlots(const Reply& reply);

  // The master of `slot`, or nullopt when no node serves it (a cluster not fully covered).
  std::optional<NodeAddress> MasterOf(int slot) const;
  // A MOVED redirection: the slot is now served by `node`.
  void Moved(int slot, const NodeAddress& node);
  // Every master, each once, in the order of the slots they serve.
  std::vector<NodeAddress> Masters() const;
  // True when both maps give every slot the same master.
  bool SameAs(const SlotMap& other) const;

 private:
  std::vector<int> node_of_slot_ = std::vector<int>(kClusterSlots, -1);  // index into nodes_
  std::vector<NodeAddress> nodes_;
  int IndexOf(const NodeAddress& node);
};

}  // namespace katy::redis
