#pragma once

#include <string>
#include <unordered_map>
#include <vector>

namespace katy::redis {

// The commands of one pipeline, those that can be one merged as they are added, so that the
// work of many messages costs Redis fewer commands (docs/architecture.md, "What a message
// costs Redis"):
//  - SADDs to one set: one SADD with every member;
//  - XACKs of one stream and group: one XACK with every id;
//  - DELs of keys with one hash tag (one slot, so one node on a cluster): one DEL;
//  - an EXPIREAT or PEXPIREAT identical to one already added: dropped (it would set the same).
// Anything else is kept as it is. A merged command takes the place of the first it merged, so
// commands added in phases (every mark, then every acknowledgement) keep the phases' order.
// The replies are the merged commands': one per command(), not per Add. Pure.
class CommandBatch {
 public:
  void Add(std::vector<std::string> command);
  void Add(std::vector<std::vector<std::string>> commands);
  const std::vector<std::vector<std::string>>& commands() const { return commands_; }

 private:
  std::vector<std::vector<std::string>> commands_;
  // What makes commands one (verb, key, group or hash tag) -> the command they merge into.
  std::unordered_map<std::string, size_t> merged_into_;
};

}  // namespace katy::redis
