#pragma once

#include <chrono>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"

struct redisContext;

namespace katy::redis {

struct Options {
  std::string host = "127.0.0.1";
  int port = 6379;
  int db = 0;
  std::string password;
  std::chrono::milliseconds connect_timeout{500};
  // Must be longer than any BLOCK timeout used on this connection: a socket timeout that
  // fires first drops a reply Redis already sent, and with it the entries it delivered.
  std::chrono::milliseconds socket_timeout{2000};
};

// Parses redis://[[user]:password@]host[:port][/db]. Returns ErrorCode::kConfig when malformed.
Result<Options> ParseUrl(std::string_view url);

// An owned copy of one Redis reply.
struct Reply {
  enum class Type { kNil, kString, kStatus, kInteger, kArray, kError };
  Type type = Type::kNil;
  std::string str;              // kString, kStatus, kError
  long long integer = 0;        // kInteger
  std::vector<Reply> elements;  // kArray

  bool IsNil() const { return type == Type::kNil; }
  bool IsError() const { return type == Type::kError; }
  bool IsArray() const { return type == Type::kArray; }
};

// One connection to Redis (redis-plus-plus style): long-lived, movable, not copyable, not
// thread-safe (one owner thread at a time; share through ClientPool). Connects lazily and
// reconnects on the next call after any I/O failure, so a Redis restart heals by itself.
class Client {
 public:
  explicit Client(Options options);
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;
  Client(Client&& other) noexcept;
  Client& operator=(Client&& other) noexcept;

  // Sends one command and waits for its reply. Error codes: "io" (cannot connect, connection
  // lost), "timeout" (socket timeout), "reply" (Redis answered with an error; message is its
  // text). After "io" or "timeout" the connection is dropped.
  Result<Reply> Command(const std::vector<std::string>& argv);

  // Sends all commands in one write and reads all replies: one round trip. Redis error replies
  // come back as Reply{kError} in their place; only I/O failures make the whole call fail
  // (then it is unknown which commands ran: callers must be idempotent).
  Result<std::vector<Reply>> Pipeline(const std::vector<std::vector<std::string>>& commands);

  // PING; true when Redis answered PONG.
  bool Ping();

  const Options& options() const { return options_; }

 private:
  Status EnsureConnected();
  Error DropConnection(const char* what);

  Options options_;
  redisContext* context_ = nullptr;
};

}  // namespace katy::redis
