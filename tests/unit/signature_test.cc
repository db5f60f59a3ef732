#include "services/ingress/signature.h"

#include <gtest/gtest.h>

#include "common/hmac.h"
#include "tests/support/test_support.h"

namespace katy::ingress {
namespace {

constexpr const char* kSecret = "test-app-secret";

std::string Sha256Header(const std::string& body) { return "sha256=" + HmacSha256Hex(kSecret, body); }

TEST(SignatureTest, AcceptsSignatureOverTheRawEscapedBytes) {
  const std::string body = testing::ReadFixture("unicode_escaped.json");
  ASSERT_NE(body.find("\\u00c7a va"), std::string::npos) << "fixture must stay in Meta's escaped form";
  EXPECT_EQ(VerifySignature(kSecret, body, Sha256Header(body), "", false), SignatureCheck::kValid);
}

TEST(SignatureTest, KnownVector) {
  // HMAC-SHA256("key", "The quick brown fox jumps over the lazy dog"), RFC 4231-style vector.
  EXPECT_EQ(HmacSha256Hex("key", "The quick brown fox jumps over the lazy dog"),
            "f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8");
  // RFC 4231 case 6: a key longer than the block is hashed first.
  EXPECT_EQ(HmacSha256Hex(std::string(131, '\xaa'), "Test Using Larger Than Block-Size Key - Hash Key First"),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");
  EXPECT_EQ(HmacSha256Hex("", ""), "b613679a0814d9ec772f95d778c35fc5ff1697c493715653c6c712144292c5ad");
  EXPECT_EQ(HmacSha1Hex("key", "The quick brown fox jumps over the lazy dog"),
            "de7c9b85b8b78aa6bc8a7a36f70a90701c9db4d9");
  // The keyed state is cached per thread: switching keys back and forth must not mix them.
  EXPECT_EQ(HmacSha256Hex("key", "The quick brown fox jumps over the lazy dog"),
            "f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8");
}

TEST(SignatureTest, RejectsSignatureOfReserializedJson) {
  // What peer libraries get wrong: signing the decoded, re-serialized body.
  const std::string raw = testing::ReadFixture("unicode_escaped.json");
  std::string unescaped = raw;
  for (size_t pos; (pos = unescaped.find("\\/")) != std::string::npos;) unescaped.replace(pos, 2, "/");
  ASSERT_NE(unescaped, raw);
  EXPECT_EQ(VerifySignature(kSecret, raw, Sha256Header(unescaped), "", false), SignatureCheck::kMismatch);
}

TEST(SignatureTest, RejectsWrongMissingAndMalformedHeaders) {
  const std::string body = testing::ReadFixture("text_message.json");
  std::string wrong = Sha256Header(body);
  wrong.back() = wrong.back() == '0' ? '1' : '0';
  EXPECT_EQ(VerifySignature(kSecret, body, wrong, "", false), SignatureCheck::kMismatch);
  EXPECT_EQ(VerifySignature("other-secret", body, Sha256Header(body), "", false), SignatureCheck::kMismatch);
  EXPECT_EQ(VerifySignature(kSecret, body, "", "", false), SignatureCheck::kMissing);
  EXPECT_EQ(VerifySignature(kSecret, body, "sha256=abc", "", false), SignatureCheck::kMalformed);
  EXPECT_EQ(VerifySignature(kSecret, body, HmacSha256Hex(kSecret, body), "", false), SignatureCheck::kMalformed);
  std::string not_hex = Sha256Header(body);
  not_hex[10] = 'z';
  EXPECT_EQ(VerifySignature(kSecret, body, not_hex, "", false), SignatureCheck::kMalformed);
  // A body changed by one byte no longer verifies.
  EXPECT_EQ(VerifySignature(kSecret, body + " ", Sha256Header(body), "", false), SignatureCheck::kMismatch);
}

TEST(SignatureTest, AcceptsUppercaseHex) {
  const std::string body = testing::ReadFixture("text_message.json");
  std::string header = Sha256Header(body);
  for (size_t i = 7; i < header.size(); ++i) header[i] = static_cast<char>(std::toupper(header[i]));
  EXPECT_EQ(VerifySignature(kSecret, body, header, "", false), SignatureCheck::kValid);
}

TEST(SignatureTest, LegacySha1OnlyWhenAllowedAndSha256Absent) {
  const std::string body = testing::ReadFixture("text_message.json");
  const std::string sha1 = "sha1=" + HmacSha1Hex(kSecret, body);
  EXPECT_EQ(VerifySignature(kSecret, body, "", sha1, false), SignatureCheck::kMissing);
  EXPECT_EQ(VerifySignature(kSecret, body, "", sha1, true), SignatureCheck::kValid);
  EXPECT_EQ(VerifySignature(kSecret, body, "", "sha1=" + HmacSha1Hex("x", body), true), SignatureCheck::kMismatch);
  // When sha256 is present it decides, even if a valid sha1 is present too.
  EXPECT_EQ(VerifySignature(kSecret, body, "sha256=" + std::string(64, '0'), sha1, true), SignatureCheck::kMismatch);
}

TEST(SignatureTest, ConstantTimeEqualsComparesWholeStrings) {
  EXPECT_TRUE(ConstantTimeEquals("abc", "abc"));
  EXPECT_FALSE(ConstantTimeEquals("abc", "abd"));
  EXPECT_FALSE(ConstantTimeEquals("abc", "abcd"));
  EXPECT_TRUE(ConstantTimeEquals("", ""));
}

}  // namespace
}  // namespace katy::ingress
