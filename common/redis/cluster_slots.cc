#include "common/redis/cluster_slots.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <charconv>
#include <initializer_list>

namespace katy::redis {
namespace {

constexpr std::array<uint16_t, 256> MakeCrc16Table() {
  std::array<uint16_t, 256> table{};
  for (unsigned byte = 0; byte < 256; ++byte) {
    auto crc = static_cast<uint16_t>(byte << 8);
    for (int bit = 0; bit < 8; ++bit) {
      crc = static_cast<uint16_t>((crc & 0x8000) != 0 ? (crc << 1) ^ 0x1021 : crc << 1);
    }
    table[byte] = crc;
  }
  return table;
}

constexpr std::array<uint16_t, 256> kCrc16Table = MakeCrc16Table();

std::optional<int> ToInt(std::string_view text) {
  int value = 0;
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (error != std::errc() || end != text.data() + text.size()) return std::nullopt;
  return value;
}

// "host:port", the host possibly an IPv6 address with colons of its own.
std::optional<NodeAddress> ParseNode(std::string_view text) {
  const size_t colon = text.rfind(':');
  if (colon == std::string_view::npos || colon == 0) return std::nullopt;
  auto port = ToInt(text.substr(colon + 1));
  if (!port || *port <= 0 || *port > 65535) return std::nullopt;
  return NodeAddress{std::string(text.substr(0, colon)), *port};
}

}  // namespace

uint16_t Crc16(std::string_view data) {
  uint16_t crc = 0;
  for (const char c : data) {
    crc = static_cast<uint16_t>((crc << 8) ^ kCrc16Table[((crc >> 8) ^ static_cast<uint8_t>(c)) & 0xff]);
  }
  return crc;
}

std::string_view HashTagOf(std::string_view key) {
  const size_t open = key.find('{');
  if (open == std::string_view::npos) return key;
  const size_t close = key.find('}', open + 1);
  if (close == std::string_view::npos || close == open + 1) return key;
  return key.substr(open + 1, close - open - 1);
}

int KeySlot(std::string_view key) { return Crc16(HashTagOf(key)) % kClusterSlots; }

std::optional<Redirection> ParseRedirection(std::string_view error_text) {
  Redirection out;
  if (error_text.starts_with("MOVED ")) {
    out.kind = Redirection::Kind::kMoved;
  } else if (error_text.starts_with("ASK ")) {
    out.kind = Redirection::Kind::kAsk;
  } else {
    return std::nullopt;
  }
  const size_t first = error_text.find(' ');
  const size_t second = error_text.find(' ', first + 1);
  if (second == std::string_view::npos) return std::nullopt;
  auto slot = ToInt(error_text.substr(first + 1, second - first - 1));
  auto node = ParseNode(error_text.substr(second + 1));
  if (!slot || *slot < 0 || *slot >= kClusterSlots || !node) return std::nullopt;
  out.slot = *slot;
  out.node = std::move(*node);
  return out;
}

namespace {

std::string Upper(std::string_view text) {
  std::string out(text);
  for (char& c : out) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return out;
}

bool IsOneOf(const std::string& name, std::initializer_list<std::string_view> names) {
  return std::find(names.begin(), names.end(), name) != names.end();
}

// The slot shared by argv[first, last), kNoKey when the range is empty, kCrossSlot when the
// keys disagree.
int SlotOfKeys(const std::vector<std::string>& argv, size_t first, size_t last) {
  int slot = kNoKey;
  for (size_t i = first; i < last && i < argv.size(); ++i) {
    const int key_slot = KeySlot(argv[i]);
    if (slot != kNoKey && key_slot != slot) return kCrossSlot;
    slot = key_slot;
  }
  return slot;
}

}  // namespace

KeyRange CommandKeys(const std::vector<std::string>& argv) {
  if (argv.size() < 2) return {};
  const std::string name = Upper(argv[0]);
  if (IsOneOf(name, {"PING", "TIME", "INFO", "SCRIPT", "CLUSTER", "WAIT", "SCAN", "CLIENT", "CONFIG", "DBSIZE",
                     "ASKING", "AUTH", "SELECT", "FLUSHALL", "FLUSHDB", "COMMAND", "READONLY", "ECHO", "HELLO"})) {
    return {};
  }
  if (IsOneOf(name, {"EVAL", "EVALSHA", "EVAL_RO", "EVALSHA_RO", "FCALL", "FCALL_RO"})) {
    const auto keys = argv.size() > 2 ? ToInt(argv[2]) : std::nullopt;
    if (!keys || *keys < 0) return {};
    return {3, std::min(argv.size(), 3 + static_cast<size_t>(*keys))};
  }
  if (name == "XREAD" || name == "XREADGROUP") {
    for (size_t i = 1; i < argv.size(); ++i) {
      if (Upper(argv[i]) == "STREAMS") return {i + 1, i + 1 + (argv.size() - i - 1) / 2};
    }
    return {};
  }
  if (name == "XGROUP" || name == "XINFO") return {2, std::min<size_t>(argv.size(), 3)};
  if (IsOneOf(name, {"DEL", "EXISTS", "MGET", "UNLINK", "TOUCH"})) return {1, argv.size()};
  return {1, 2};
}

int CommandSlot(const std::vector<std::string>& argv) {
  const KeyRange keys = CommandKeys(argv);
  return SlotOfKeys(argv, keys.first, keys.last);
}

Result<SlotMap> SlotMap::FromClusterSlots(const Reply& reply) {
  const Error bad{ErrorCode::kReply, "CLUSTER SLOTS answered something else than [[start, end, [host, port]...]...]"};
  if (!reply.IsArray()) return bad;
  SlotMap map;
  for (const Reply& range : reply.elements) {
    if (!range.IsArray() || range.elements.size() < 3) return bad;
    const long long start = range.elements[0].integer;
    const long long end = range.elements[1].integer;
    const Reply& master = range.elements[2];
    if (start < 0 || end >= kClusterSlots || start > end || !master.IsArray() || master.elements.size() < 2) {
      return bad;
    }
    const long long port = master.elements[1].integer;
    if (port <= 0 || port > 65535) return bad;
    const int index = map.IndexOf({master.elements[0].str, static_cast<int>(port)});
    std::fill(map.node_of_slot_.begin() + start, map.node_of_slot_.begin() + end + 1, index);
  }
  return map;
}

std::optional<NodeAddress> SlotMap::MasterOf(int slot) const {
  if (slot < 0 || slot >= kClusterSlots || node_of_slot_[slot] < 0) return std::nullopt;
  return nodes_[node_of_slot_[slot]];
}

void SlotMap::Moved(int slot, const NodeAddress& node) {
  if (slot < 0 || slot >= kClusterSlots) return;
  node_of_slot_[slot] = IndexOf(node);
}

std::vector<NodeAddress> SlotMap::Masters() const {
  std::vector<NodeAddress> masters;
  for (const int index : node_of_slot_) {
    if (index >= 0 && std::find(masters.begin(), masters.end(), nodes_[index]) == masters.end()) {
      masters.push_back(nodes_[index]);
    }
  }
  return masters;
}

bool SlotMap::SameAs(const SlotMap& other) const {
  for (int slot = 0; slot < kClusterSlots; ++slot) {
    if (MasterOf(slot) != other.MasterOf(slot)) return false;
  }
  return true;
}

int SlotMap::IndexOf(const NodeAddress& node) {
  auto found = std::find(nodes_.begin(), nodes_.end(), node);
  if (found != nodes_.end()) return static_cast<int>(found - nodes_.begin());
  nodes_.push_back(node);
  return static_cast<int>(nodes_.size()) - 1;
}

}  // namespace katy::redis
