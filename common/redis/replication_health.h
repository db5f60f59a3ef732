#pragma once

#include <map>
#include <mutex>
#include <string>

#include "common/redis/options.h"
#include "common/redis/reply.h"
#include "common/result.h"

namespace katy::redis {

// What this process's clients last learnt from WAIT, per master: whether as many replicas as
// asked confirmed its writes in time. Every client (blocking or asynchronous) reports each WAIT
// here; the admin port exports it as katy_redis_under_replicated{node}. Logs each change of a
// node's state once (not each write), saying what the policy did with the unconfirmed write.
// Thread-safe; one per process.
class ReplicationHealth {
 public:
  static ReplicationHealth& Process();

  void Record(const NodeAddress& node, bool confirmed, WaitPolicy policy);
  // A master this process talks to: listed (as not under-replicated) until a WAIT says
  // otherwise, so the gauge has a series to alert on from the start, WAIT or not.
  void Know(const NodeAddress& node);
  // node ("host:port") -> true while its last WAIT fell short.
  std::map<std::string, bool> UnderReplicated() const;

 private:
  mutable std::mutex mutex_;
  std::map<std::string, bool> under_replicated_;
};

// What a write's WAIT means under the options' policy, reported to ReplicationHealth for
// `node`: Ok when enough replicas confirmed, or when they did not and the policy is kDegrade
// (the write stands, unconfirmed). Under kStrict, an Error with code kTimeout and reason
// "under_replicated" whose message says the write was applied on the master but is not yet on
// enough replicas. `wait` is WAIT's reply, or the failure that kept it from coming.
// A WAIT that did not come back (the connection failed) is that failure, not under-replication.
Status JudgeWait(const Result<Reply>& wait, const Options& options, const NodeAddress& node);

// Whether a failure says Redis cannot serve now (a connection, a timeout, WAIT short of
// replicas, a master failing over or loading) rather than that the command itself is wrong:
// trying again later is the remedy, however many times it takes.
bool IsUnavailable(const Error& error);
// The same for an error reply in a pipeline (IOERR from an unreachable master, CLUSTERDOWN,
// TRYAGAIN, LOADING, MASTERDOWN, READONLY, NOREPLICAS, BUSY).
bool IsUnavailableReply(std::string_view error_text);
// An error reply as an Error (code kReply), with a reason for the unavailable kinds:
// "io" (IOERR), "under_replicated" (NOREPLICAS), "cluster_down", "try_again", "loading",
// "master_down", "readonly", "busy"; none for the rest.
Error ReplyError(std::string_view error_text);

}  // namespace katy::redis
