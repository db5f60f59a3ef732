#pragma once

#include <string>
#include <vector>

#include "common/redis/options.h"
#include "common/redis/reply.h"
#include "common/result.h"

struct redisContext;

namespace katy::redis {

// One blocking connection to one Redis node (options.host:port). Movable, not copyable, not
// thread-safe. Connects lazily and reconnects on the next call after any I/O failure, so a
// Redis restart heals by itself. Client routes over these; nothing else needs one.
class NodeConnection {
 public:
  explicit NodeConnection(Options options);
  ~NodeConnection();
  NodeConnection(const NodeConnection&) = delete;
  NodeConnection& operator=(const NodeConnection&) = delete;
  NodeConnection(NodeConnection&& other) noexcept;
  NodeConnection& operator=(NodeConnection&& other) noexcept;

  // Sends all commands in one write and reads all replies: one round trip. Redis error replies
  // come back as Reply{kError} in their place; only I/O failures make the whole call fail
  // (ErrorCode::kIo, or kTimeout for the socket timeout), and then the connection is dropped
  // and it is unknown which commands ran.
  Result<std::vector<Reply>> Pipeline(const std::vector<const std::vector<std::string>*>& commands);

  const Options& options() const { return options_; }

 private:
  Status EnsureConnected();
  Error DropConnection(const char* what);

  Options options_;
  redisContext* context_ = nullptr;
};

}  // namespace katy::redis
