#include "common/redis/replication_health.h"

#include <array>

#include "common/log.h"

namespace katy::redis {

ReplicationHealth& ReplicationHealth::Process() {
  static ReplicationHealth health;
  return health;
}

void ReplicationHealth::Record(const NodeAddress& node, bool confirmed, WaitPolicy policy) {
  const std::string name = node.ToString();
  bool changed = false;
  {
    std::lock_guard lock(mutex_);
    auto [it, added] = under_replicated_.try_emplace(name, !confirmed);
    changed = (added && !confirmed) || (!added && it->second == confirmed);
    it->second = !confirmed;
  }
  if (!changed) return;
  if (confirmed) {
    log::Info("Redis replicas confirm writes again", {{"node", name}});
  } else if (policy == WaitPolicy::kDegrade) {
    log::Error("Redis replicas do not confirm writes; going on without them (KATY_REDIS_WAIT_POLICY=degrade)",
               {{"node", name}});
  } else {
    log::Error(
        "Redis replicas do not confirm writes; work on this master waits for them (KATY_REDIS_WAIT_POLICY=strict)",
        {{"node", name}});
  }
}

void ReplicationHealth::Know(const NodeAddress& node) {
  std::lock_guard lock(mutex_);
  under_replicated_.try_emplace(node.ToString(), false);
}

std::map<std::string, bool> ReplicationHealth::UnderReplicated() const {
  std::lock_guard lock(mutex_);
  return under_replicated_;
}

Status JudgeWait(const Result<Reply>& wait, const Options& options, const NodeAddress& node) {
  if (!wait) return wait.error();
  if (wait && wait->type == Reply::Type::kInteger && wait->integer >= options.wait_replicas) {
    ReplicationHealth::Process().Record(node, true, options.wait_policy);
    return Ok{};
  }
  ReplicationHealth::Process().Record(node, false, options.wait_policy);
  if (options.wait_policy == WaitPolicy::kDegrade) return Ok{};
  const std::string confirmed = wait->type == Reply::Type::kInteger ? std::to_string(wait->integer) : wait->str;
  return Error{ErrorCode::kTimeout,
               "WAIT: " + confirmed + " of " + std::to_string(options.wait_replicas) +
                   " replicas confirmed the write within " + std::to_string(options.wait_timeout.count()) + " ms on " +
                   node.ToString() + " (the master applied it; it is not yet safe from a failover)",
               "under_replicated"};
}

bool IsUnavailable(const Error& error) {
  switch (error.code) {
    case ErrorCode::kIo:
    case ErrorCode::kConnect:
    case ErrorCode::kTimeout:
      return true;
    case ErrorCode::kReply:
      return IsUnavailableReply(error.message);
    default:
      return false;
  }
}

namespace {

struct UnavailableKind {
  std::string_view prefix;
  std::string_view reason;
};
constexpr std::array<UnavailableKind, 8> kUnavailableKinds{{
    {"IOERR", "io"},
    {"NOREPLICAS", "under_replicated"},
    {"CLUSTERDOWN", "cluster_down"},
    {"TRYAGAIN", "try_again"},
    {"LOADING", "loading"},
    {"MASTERDOWN", "master_down"},
    {"READONLY", "readonly"},
    {"BUSY ", "busy"},  // a long script; not BUSYGROUP
}};

const UnavailableKind* KindOf(std::string_view error_text) {
  for (const auto& kind : kUnavailableKinds) {
    if (error_text.substr(0, kind.prefix.size()) == kind.prefix) return &kind;
  }
  return nullptr;
}

}  // namespace

bool IsUnavailableReply(std::string_view error_text) { return KindOf(error_text) != nullptr; }

Error ReplyError(std::string_view error_text) {
  const UnavailableKind* kind = KindOf(error_text);
  return Error{ErrorCode::kReply, std::string(error_text), kind == nullptr ? "" : std::string(kind->reason)};
}

}  // namespace katy::redis
