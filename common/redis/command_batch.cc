#include "common/redis/command_batch.h"

#include <string_view>

#include "common/redis/cluster_slots.h"

namespace katy::redis {

namespace {

enum class Merge { kNone, kArguments, kDrop };

// How `command` merges with others, and what identifies the ones it merges with.
Merge HowToMerge(const std::vector<std::string>& command, std::string& identity) {
  if (command.size() < 2) return Merge::kNone;
  const std::string& verb = command[0];
  if (verb == "SADD" && command.size() >= 3) {
    identity = "SADD\n" + command[1];
    return Merge::kArguments;
  }
  if (verb == "XACK" && command.size() >= 4) {
    identity = "XACK\n" + command[1] + "\n" + command[2];
    return Merge::kArguments;
  }
  if (verb == "DEL") {
    // Only keys whose slot their hash tag decides: a key without one has a slot of its own.
    for (size_t i = 1; i < command.size(); ++i) {
      if (HashTagOf(command[i]).size() == command[i].size()) return Merge::kNone;
    }
    const std::string_view tag = HashTagOf(command[1]);
    for (size_t i = 2; i < command.size(); ++i) {
      if (HashTagOf(command[i]) != tag) return Merge::kNone;
    }
    identity = "DEL\n" + std::string(tag);
    return Merge::kArguments;
  }
  if (verb == "EXPIREAT" || verb == "PEXPIREAT") {
    for (const auto& part : command) identity += part + "\n";
    return Merge::kDrop;
  }
  return Merge::kNone;
}

// Where a merged command's arguments begin (after the verb, the key and, for XACK, the group).
size_t ArgumentsFrom(const std::vector<std::string>& command) {
  if (command[0] == "XACK") return 3;
  if (command[0] == "SADD") return 2;
  return 1;  // DEL: every key
}

}  // namespace

void CommandBatch::Add(std::vector<std::string> command) {
  std::string identity;
  const Merge merge = HowToMerge(command, identity);
  if (merge != Merge::kNone) {
    auto [found, added] = merged_into_.try_emplace(identity, commands_.size());
    if (!added) {
      if (merge == Merge::kDrop) return;
      std::vector<std::string>& into = commands_[found->second];
      into.insert(into.end(), std::make_move_iterator(command.begin() + static_cast<long>(ArgumentsFrom(command))),
                  std::make_move_iterator(command.end()));
      return;
    }
  }
  commands_.push_back(std::move(command));
}

void CommandBatch::Add(std::vector<std::vector<std::string>> commands) {
  for (auto& command : commands) Add(std::move(command));
}

}  // namespace katy::redis
