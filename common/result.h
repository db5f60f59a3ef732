#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace katy {

// What kind of failure an Error is, for the code that decides what to do about it.
enum class ErrorCode {
  kIo,         // a connection or socket failed: trying again may work
  kConnect,    // no connection was made, so nothing reached the peer
  kTimeout,    // no answer in time: the peer may or may not have acted
  kReply,      // the peer answered with an error, or with something Katy cannot read
  kConfig,     // a setting or a file Katy was given is wrong
  kInvalid,    // a caller's argument or command line is wrong
  kLostLease,  // this instance no longer owns the shard it was working on
  kRejected,   // input refused (a webhook body, a skill's answer); `reason` says why
};

// "io", "connect", "timeout", "reply", "config", "invalid", "lost_lease", "rejected".
std::string_view ErrorCodeName(ErrorCode code);

// An expected failure carried as a value. `message` is for humans; `reason`, when set, is a
// finer machine-readable cause than the code ("invalid_json", "skill_http_500").
struct Error {
  ErrorCode code;
  std::string message;
  std::string reason = {};

  // What metrics and dead letters record: the reason when there is one, else the code's name.
  std::string Label() const { return reason.empty() ? std::string(ErrorCodeName(code)) : reason; }
};

inline std::string_view ErrorCodeName(ErrorCode code) {
  switch (code) {
    case ErrorCode::kIo:
      return "io";
    case ErrorCode::kConnect:
      return "connect";
    case ErrorCode::kTimeout:
      return "timeout";
    case ErrorCode::kReply:
      return "reply";
    case ErrorCode::kConfig:
      return "config";
    case ErrorCode::kInvalid:
      return "invalid";
    case ErrorCode::kLostLease:
      return "lost_lease";
    case ErrorCode::kRejected:
      return "rejected";
  }
  return "unknown";
}

// Either a T or an Error. Katy's I/O edges return this instead of throwing, so that no
// failure escapes a handler or a worker loop as an exception.
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : value_(std::move(value)) {}      // NOLINT: implicit by design
  Result(Error error) : value_(std::move(error)) {}  // NOLINT: implicit by design

  bool ok() const { return std::holds_alternative<T>(value_); }
  explicit operator bool() const { return ok(); }

  // Precondition: ok().
  T& value() & { return std::get<T>(value_); }
  const T& value() const& { return std::get<T>(value_); }
  T&& value() && { return std::get<T>(std::move(value_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

  // Precondition: !ok().
  const Error& error() const { return std::get<Error>(value_); }

 private:
  std::variant<T, Error> value_;
};

// The success value of operations that return nothing.
struct Ok {};

using Status = Result<Ok>;

}  // namespace katy
