#pragma once

#include <chrono>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"

namespace katy::redis {

// A Redis node's address, as a URL names it or a cluster announces it.
struct NodeAddress {
  std::string host;
  int port = 0;
  bool operator==(const NodeAddress&) const = default;
  std::string ToString() const { return host + ":" + std::to_string(port); }
};

// What a write whose WAIT falls short of replicas counts as (KATY_REDIS_WAIT_POLICY).
enum class WaitPolicy {
  kStrict,   // failed: the caller tries again until the replicas confirm it
  kDegrade,  // done: it stands on the master alone (katy_redis_under_replicated says so)
};

struct Options {
  std::string host = "127.0.0.1";  // the node one connection talks to
  int port = 6379;
  // Every node the URL names (host:port above is the first). A client asks them, in turn,
  // whether Redis runs as a cluster and, if so, which master serves which slot.
  std::vector<NodeAddress> seeds;
  int db = 0;
  std::string username;  // an ACL user; empty: the default user (AUTH <password> alone)
  std::string password;
  std::chrono::milliseconds connect_timeout{500};
  // Must be longer than any BLOCK timeout used on this connection: a socket timeout that
  // fires first drops a reply Redis already sent, and with it the entries it delivered.
  std::chrono::milliseconds socket_timeout{2000};
  // When above 0, a client's writes count as done only once WAIT has confirmed they reached
  // this many replicas within wait_timeout (KATY_REDIS_WAIT_REPLICAS, _WAIT_TIMEOUT_MS).
  int wait_replicas = 0;
  std::chrono::milliseconds wait_timeout{1000};
  WaitPolicy wait_policy = WaitPolicy::kStrict;
  // Keys (by prefix) whose writes need no replica: bookkeeping a failover may lose at no cost
  // (KeySpace::UnwaitedPrefixes). A node's share of a call whose commands name only such keys
  // (or none) is not followed by WAIT, so a master without replicas that holds them holds back
  // nobody's durable work (a page's rate limiter serves every shard of the page).
  std::vector<std::string> unwaited_key_prefixes;
  // Whether `argv` must wait for replicas: wait_replicas > 0, it may write (a read changes
  // nothing a replica must hold: WAIT after it only costs a round trip's wait, and fails a read
  // that a master short of replicas could have served), and a key of it is not under
  // unwaited_key_prefixes.
  bool NeedsReplicas(const std::vector<std::string>& argv) const;

  // These options without WAIT: for bookkeeping whose loss in a failover costs nothing that
  // matters (leases, reads of a stream, rate-limiter state; docs/reliability.md, "WAIT").
  Options WithoutWait() const;

  // These options aimed at one node (the seed list is kept for rediscovery).
  Options ForNode(const NodeAddress& node) const;
  // The AUTH a new connection sends first ({"AUTH", user, password} for an ACL user), or an
  // empty command when there is no password.
  std::vector<std::string> AuthCommand() const;
};

// Parses redis://[[user]:password@]host[:port][,host[:port]...][/db]: one node, or several
// seed nodes of a cluster. The credentials end at the URL's last '@' and are taken as written
// (no percent-decoding), so a password may hold '@', '/', ':' or '%'. Returns
// ErrorCode::kConfig when malformed; no error text shows the password.
Result<Options> ParseUrl(std::string_view url);

}  // namespace katy::redis
