#pragma once

#include <string>
#include <vector>

namespace katy::redis {

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

  static Reply ErrorReply(std::string text) {
    Reply reply;
    reply.type = Type::kError;
    reply.str = std::move(text);
    return reply;
  }
  static Reply Integer(long long value) {
    Reply reply;
    reply.type = Type::kInteger;
    reply.integer = value;
    return reply;
  }
};

}  // namespace katy::redis
