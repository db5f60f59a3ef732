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
