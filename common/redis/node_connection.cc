#include "common/redis/node_connection.h"

#include "common/redis/hiredis_reply.h"

#include <cerrno>
#include <cstring>
#include <utility>

namespace katy::redis {

Reply CopyReply(const redisReply* raw) {
  Reply reply;
  switch (raw->type) {
    case REDIS_REPLY_STRING:
      reply.type = Reply::Type::kString;
      reply.str.assign(raw->str, raw->len);
      break;
    case REDIS_REPLY_STATUS:
      reply.type = Reply::Type::kStatus;
      reply.str.assign(raw->str, raw->len);
      break;
    case REDIS_REPLY_ERROR:
      reply.type = Reply::Type::kError;
      reply.str.assign(raw->str, raw->len);
      break;
    case REDIS_REPLY_INTEGER:
      reply.type = Reply::Type::kInteger;
      reply.integer = raw->integer;
      break;
    case REDIS_REPLY_ARRAY:
      reply.type = Reply::Type::kArray;
      reply.elements.reserve(raw->elements);
      for (size_t i = 0; i < raw->elements; ++i) reply.elements.push_back(CopyReply(raw->element[i]));
      break;
    default:
      reply.type = Reply::Type::kNil;
  }
  return reply;
}

namespace {

timeval ToTimeval(std::chrono::milliseconds ms) {
  return timeval{static_cast<time_t>(ms.count() / 1000), static_cast<suseconds_t>((ms.count() % 1000) * 1000)};
}

void AppendArgv(redisContext* context, const std::vector<std::string>& argv) {
  std::vector<const char*> ptrs;
  std::vector<size_t> lens;
  ptrs.reserve(argv.size());
  lens.reserve(argv.size());
  for (const auto& arg : argv) {
    ptrs.push_back(arg.data());
    lens.push_back(arg.size());
  }
  redisAppendCommandArgv(context, static_cast<int>(argv.size()), ptrs.data(), lens.data());
}

}  // namespace

NodeConnection::NodeConnection(Options options) : options_(std::move(options)) {}

NodeConnection::~NodeConnection() {
  if (context_ != nullptr) redisFree(context_);
}

NodeConnection::NodeConnection(NodeConnection&& other) noexcept
    : options_(std::move(other.options_)), context_(std::exchange(other.context_, nullptr)) {}

NodeConnection& NodeConnection::operator=(NodeConnection&& other) noexcept {
  if (this != &other) {
    if (context_ != nullptr) redisFree(context_);
    options_ = std::move(other.options_);
    context_ = std::exchange(other.context_, nullptr);
  }
  return *this;
}

Error NodeConnection::DropConnection(const char* what) {
  std::string message = what;
  ErrorCode code = ErrorCode::kIo;
  if (context_ != nullptr) {
    message += ": ";
    message += context_->errstr;
    // hiredis reports a socket timeout as an I/O error whose text is strerror(EAGAIN); errno
    // itself may have changed since.
    if (context_->err == REDIS_ERR_IO && std::strcmp(context_->errstr, std::strerror(EAGAIN)) == 0) {
      code = ErrorCode::kTimeout;
    }
    redisFree(context_);
    context_ = nullptr;
  }
  return Error{code, message};
}

Status NodeConnection::EnsureConnected() {
  if (context_ != nullptr) return Ok{};
  timeval connect_timeout = ToTimeval(options_.connect_timeout);
  context_ = redisConnectWithTimeout(options_.host.c_str(), options_.port, connect_timeout);
  if (context_ == nullptr) return Error{ErrorCode::kIo, "cannot allocate a Redis context"};
  if (context_->err != 0) {
    Error error{ErrorCode::kIo, "cannot connect to Redis at " + options_.host + ":" + std::to_string(options_.port) +
                                    ": " + context_->errstr};
    redisFree(context_);
    context_ = nullptr;
    return error;
  }
  redisSetTimeout(context_, ToTimeval(options_.socket_timeout));
  std::vector<std::vector<std::string>> setup;
  if (auto auth = options_.AuthCommand(); !auth.empty()) setup.push_back(std::move(auth));
  if (options_.db != 0) setup.push_back({"SELECT", std::to_string(options_.db)});
  for (const auto& command : setup) {
    AppendArgv(context_, command);
    void* raw = nullptr;
    if (redisGetReply(context_, &raw) != REDIS_OK) return DropConnection("Redis handshake failed");
    Reply reply = CopyReply(static_cast<redisReply*>(raw));
    freeReplyObject(raw);
    if (reply.IsError()) {
      redisFree(context_);
      context_ = nullptr;
      return Error{ErrorCode::kIo, "Redis refused " + command[0] + ": " + reply.str};
    }
  }
  return Ok{};
}

Result<std::vector<Reply>> NodeConnection::Pipeline(const std::vector<const std::vector<std::string>*>& commands) {
  if (auto connected = EnsureConnected(); !connected) return connected.error();
  for (const auto* argv : commands) AppendArgv(context_, *argv);
  std::vector<Reply> replies;
  replies.reserve(commands.size());
  for (size_t i = 0; i < commands.size(); ++i) {
    void* raw = nullptr;
    if (redisGetReply(context_, &raw) != REDIS_OK || raw == nullptr) {
      return DropConnection("Redis command failed");
    }
    replies.push_back(CopyReply(static_cast<redisReply*>(raw)));
    freeReplyObject(raw);
  }
  return replies;
}

}  // namespace katy::redis
