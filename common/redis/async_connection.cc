#include "common/redis/async_connection.h"

#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstring>

#include "common/redis/hiredis_reply.h"

namespace katy::redis {
namespace {

void AppendNumber(std::string& out, size_t value) {
  char digits[24];
  const auto [end, ec] = std::to_chars(digits, digits + sizeof digits, value);
  out.append(digits, end);
}

}  // namespace

AsyncConnection::AsyncConnection(Options options, std::vector<std::vector<std::string>> setup)
    : options_(std::move(options)), setup_(std::move(setup)) {}

AsyncConnection::~AsyncConnection() {
  if (fd_ >= 0) close(fd_);
  if (reader_ != nullptr) redisReaderFree(reader_);
}

void AsyncConnection::Queue(const std::vector<std::string>& argv) {
  // RESP, as redisFormatCommandArgv writes it, without its allocation.
  out_ += '*';
  AppendNumber(out_, argv.size());
  out_ += "\r\n";
  for (const auto& arg : argv) {
    out_ += '$';
    AppendNumber(out_, arg.size());
    out_ += "\r\n";
    out_ += arg;
    out_ += "\r\n";
  }
}

void AsyncConnection::Send(const std::vector<std::string>& argv, Callback done) {
  if (fd_ < 0) {
    Connect();
    if (fd_ < 0) {
      done(Error{ErrorCode::kIo, "cannot connect to Redis at " + options_.host + ":" + std::to_string(options_.port)});
      return;
    }
  }
  Queue(argv);
  waiting_.push_back({std::move(done), Clock::now() + options_.socket_timeout});
}

void AsyncConnection::Connect() {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV;
  addrinfo* found = nullptr;
  if (getaddrinfo(options_.host.c_str(), std::to_string(options_.port).c_str(), &hints, &found) != 0) return;
  for (addrinfo* a = found; a != nullptr && fd_ < 0; a = a->ai_next) {
    const int fd = socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, a->ai_protocol);
    if (fd < 0) continue;
    if (connect(fd, a->ai_addr, a->ai_addrlen) == 0 || errno == EINPROGRESS) {
      fd_ = fd;
    } else {
      close(fd);
    }
  }
  freeaddrinfo(found);
  if (fd_ < 0) return;
  const int one = 1;
  setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  ++generation_;
  connecting_ = true;
  connect_deadline_ = Clock::now() + options_.connect_timeout;
  reader_ = redisReaderCreate();
  out_.clear();
  sent_ = 0;
  // The handshake goes first; a refusal fails the connection and everything behind it.
  auto handshake = [this](const std::vector<std::string>& command) {
    Queue(command);
    waiting_.push_back({[this, name = command[0]](Result<Reply> reply) {
                          if (reply.ok() && reply->IsError()) {
                            Fail(Error{ErrorCode::kIo, "Redis refused " + name + ": " + reply->str});
                          }
                        },
                        connect_deadline_ + options_.socket_timeout});
  };
  if (auto auth = options_.AuthCommand(); !auth.empty()) handshake(auth);
  if (options_.db != 0) handshake({"SELECT", std::to_string(options_.db)});
  for (const auto& command : setup_) handshake(command);
}

void AsyncConnection::Fail(const Error& error) {
  if (fd_ >= 0) close(fd_);
  fd_ = -1;
  connecting_ = false;
  if (reader_ != nullptr) redisReaderFree(reader_);
  reader_ = nullptr;
  out_.clear();
  sent_ = 0;
  // Callbacks may queue new commands (on a new connection): take the old ones out first.
  std::deque<Waiting> failed = std::move(waiting_);
  waiting_.clear();
  for (auto& w : failed) w.done(error);
}

void AsyncConnection::Flush() {
  if (fd_ < 0 || connecting_) return;
  while (sent_ < out_.size()) {
    const ssize_t n = send(fd_, out_.data() + sent_, out_.size() - sent_, MSG_NOSIGNAL);
    if (n > 0) {
      sent_ += static_cast<size_t>(n);
    } else if (n < 0 && errno == EINTR) {
      continue;
    } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      return;  // the rest on EPOLLOUT
    } else {
      return Fail(Error{ErrorCode::kIo, std::string("lost the connection to Redis: ") + std::strerror(errno)});
    }
  }
  out_.clear();
  sent_ = 0;
}

void AsyncConnection::OnEvents(uint32_t epoll_events) {
  if (fd_ < 0) return;
  if (connecting_) {
    if ((epoll_events & (EPOLLOUT | EPOLLERR | EPOLLHUP)) == 0) return;
    int error = 0;
    socklen_t len = sizeof error;
    getsockopt(fd_, SOL_SOCKET, SO_ERROR, &error, &len);
    if (error != 0) {
      return Fail(Error{ErrorCode::kIo, "cannot connect to Redis at " + options_.host + ":" +
                                            std::to_string(options_.port) + ": " + std::strerror(error)});
    }
    connecting_ = false;
  }
  if ((epoll_events & EPOLLOUT) != 0) Flush();
  if (fd_ < 0 || (epoll_events & (EPOLLIN | EPOLLERR | EPOLLHUP)) == 0) return;
  char buffer[64 * 1024];
  while (true) {
    const ssize_t n = recv(fd_, buffer, sizeof buffer, 0);
    if (n == 0) return Fail(Error{ErrorCode::kIo, "Redis closed the connection"});
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) break;
      return Fail(Error{ErrorCode::kIo, std::string("lost the connection to Redis: ") + std::strerror(errno)});
    }
    redisReaderFeed(reader_, buffer, static_cast<size_t>(n));
    if (static_cast<size_t>(n) < sizeof buffer) break;
  }
  while (fd_ >= 0) {
    void* raw = nullptr;
    if (redisReaderGetReply(reader_, &raw) != REDIS_OK) return Fail(Error{ErrorCode::kIo, "Redis protocol error"});
    if (raw == nullptr) return;  // the rest of the reply is still on its way
    Reply reply = CopyReply(static_cast<redisReply*>(raw));
    freeReplyObject(raw);
    if (waiting_.empty()) return Fail(Error{ErrorCode::kIo, "Redis sent a reply nobody asked for"});
    Callback done = std::move(waiting_.front().done);
    waiting_.pop_front();
    done(std::move(reply));
  }
}

void AsyncConnection::CheckTimeouts(Clock::time_point now) {
  if (fd_ < 0) return;
  if (connecting_ && now >= connect_deadline_) {
    return Fail(Error{ErrorCode::kIo, "cannot connect to Redis at " + options_.host + ":" +
                                          std::to_string(options_.port) + ": timed out"});
  }
  if (!waiting_.empty() && now >= waiting_.front().deadline) {
    Fail(Error{ErrorCode::kTimeout,
               "Redis did not answer within " + std::to_string(options_.socket_timeout.count()) + " ms"});
  }
}

}  // namespace katy::redis
