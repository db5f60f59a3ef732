#pragma once

#include <string>
#include <vector>

#include "common/redis/redis_client.h"

namespace katy::redis {

// True for Redis's answer to EVALSHA of a script it does not hold (after a restart or
// SCRIPT FLUSH).
bool IsNoScript(const Reply& reply);

// A Lua script run by its SHA1 (EVALSHA), loaded on demand: a call Redis answers NOSCRIPT
// (after a restart or SCRIPT FLUSH) is repeated as EVAL, which runs the script and caches it
// on the node that ran it (on a cluster, each master holds its own cache). Immutable and
// thread-safe; the Client passed in is not.
class Script {
 public:
  explicit Script(std::string source);

  const std::string& sha() const { return sha_; }
  const std::string& source() const { return source_; }

  // Runs the script once. Error "reply" carries a script error's text.
  Result<Reply> Run(Client& client, const std::vector<std::string>& keys, const std::vector<std::string>& args) const;

  struct Call {
    std::vector<std::string> keys;
    std::vector<std::string> args;
  };
  // The EVALSHA command for one call, for connections that send commands themselves.
  std::vector<std::string> EvalShaCommand(const std::vector<std::string>& keys,
                                          const std::vector<std::string>& args) const;
  // The same, taking the call's strings instead of copying them (large arguments on hot paths).
  std::vector<std::string> EvalShaCommand(Call&& call) const;

  // Runs many calls in one round trip (plus one more only if the script must be loaded).
  // Replies come back in call order; a script error is a Reply{kError} in its place.
  // Calls that met NOSCRIPT did not run and are re-sent once the script is loaded.
  Result<std::vector<Reply>> RunPipelined(Client& client, const std::vector<Call>& calls) const;

 private:
  std::string source_;
  std::string sha_;
};

}  // namespace katy::redis
