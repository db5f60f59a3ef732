#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <string>
#include <vector>

#include "common/redis/redis_client.h"

struct redisReader;

namespace katy::redis {

// A non-blocking Redis connection driven by the caller's event loop (epoll), for code that
// must never wait on Redis: commands are queued and written pipelined, and each reply is
// handed, in order, to the callback given with its command.
//
// The caller watches fd() for EPOLLIN, plus EPOLLOUT while wants_write(), calls OnEvents()
// with what epoll reported, Flush() after queueing commands, and CheckTimeouts() now and
// then (every 100 ms is plenty). The socket changes on reconnection: generation() tells.
//
// Connects lazily, and again on the first command after a failure. Every new connection
// first sends AUTH and SELECT (from the options) and the `setup` commands (SCRIPT LOAD, say),
// pipelined before anything else; an error reply to any of them fails the connection. A command not answered within
// options.socket_timeout of being queued fails with ErrorCode::kTimeout; a connection that does
// not open within options.connect_timeout, or breaks, fails with ErrorCode::kIo. Either way every
// command still waiting fails with it, in order, and the connection is dropped: it is then
// unknown which of them ran, so commands must be idempotent.
//
// One thread. Callbacks run inside Send (only when connecting fails at once), OnEvents and
// CheckTimeouts; they may call Send. Callbacks of commands still waiting when the connection
// is destroyed are not run.
class AsyncConnection {
 public:
  using Clock = std::chrono::steady_clock;
  using Callback = std::function<void(Result<Reply>)>;

  explicit AsyncConnection(Options options, std::vector<std::vector<std::string>> setup = {});
  ~AsyncConnection();
  AsyncConnection(const AsyncConnection&) = delete;
  AsyncConnection& operator=(const AsyncConnection&) = delete;

  // Queues `argv`; nothing is written before Flush() or the socket's next EPOLLOUT.
  void Send(const std::vector<std::string>& argv, Callback done);

  // Writes what is queued, as far as the socket takes it now.
  void Flush();

  // Reads replies and runs their callbacks, or completes a connection in progress.
  void OnEvents(uint32_t epoll_events);

  // Fails everything (and drops the connection) when the oldest command is overdue or the
  // connection is taking too long to open.
  void CheckTimeouts(Clock::time_point now);

  int fd() const { return fd_; }
  bool wants_write() const { return fd_ >= 0 && (connecting_ || sent_ < out_.size()); }
  uint64_t generation() const { return generation_; }
  size_t waiting() const { return waiting_.size(); }

 private:
  struct Waiting {
    Callback done;
    Clock::time_point deadline;
  };
  void Connect();
  void Fail(const Error& error);
  void Queue(const std::vector<std::string>& argv);

  Options options_;
  std::vector<std::vector<std::string>> setup_;
  int fd_ = -1;
  uint64_t generation_ = 0;
  bool connecting_ = false;
  Clock::time_point connect_deadline_;
  std::string out_;  // formatted commands; out_[0, sent_) already written
  size_t sent_ = 0;
  redisReader* reader_ = nullptr;
  std::deque<Waiting> waiting_;
};

}  // namespace katy::redis
