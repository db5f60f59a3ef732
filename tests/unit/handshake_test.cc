#include "services/ingress/handshake.h"

#include <gtest/gtest.h>

namespace katy::ingress {
namespace {

TEST(HandshakeTest, EchoesChallengeByteForByte) {
  auto reply = Handshake("subscribe", "verify-me", "1158201444", "verify-me");
  EXPECT_EQ(reply.status, 200);
  EXPECT_EQ(reply.body, "1158201444");
  // Documented as an int, treated as an opaque string.
  EXPECT_EQ(Handshake("subscribe", "verify-me", "abc-XYZ_09", "verify-me").body, "abc-XYZ_09");
}

TEST(HandshakeTest, RefusesEverythingElse) {
  EXPECT_EQ(Handshake("subscribe", "wrong", "1", "verify-me").status, 403);
  EXPECT_EQ(Handshake("subscribe", "", "1", "verify-me").status, 403);
  EXPECT_EQ(Handshake("unsubscribe", "verify-me", "1", "verify-me").status, 403);
  EXPECT_EQ(Handshake("", "verify-me", "1", "verify-me").status, 403);
  EXPECT_EQ(Handshake("subscribe", "verify-me", "", "verify-me").status, 403);
  EXPECT_EQ(Handshake("subscribe", "verify-me-too", "1", "verify-me").status, 403);
  // An unset verify token never matches, not even an empty one.
  EXPECT_EQ(Handshake("subscribe", "", "1", "").status, 403);
}

}  // namespace
}  // namespace katy::ingress
