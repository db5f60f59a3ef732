#pragma once

#include <string>
#include <utility>
#include <variant>

namespace katy {

// An expected failure carried as a value: `code` is a short machine-readable reason (it
// becomes a metric label or a dead-letter reason), `message` is for humans.
struct Error {
  std::string code;
  std::string message;
};

// Either a T or an Error. Katy's I/O edges return this instead of throwing, so that no
// failure escapes a handler or a worker loop as an exception.
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : value_(std::move(value)) {}          // NOLINT: implicit by design
  Result(Error error) : value_(std::move(error)) {}      // NOLINT: implicit by design

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
