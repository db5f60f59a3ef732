#include "common/json_escape.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

namespace katy {
namespace {

TEST(JsonEscapeTest, EscapesLikeMeta) {
  std::string json = nlohmann::json{{"text", "\u00c7a \u2600 https://x.y/z \U0001F600"}}.dump();
  std::string escaped = EscapeJsonLikeMeta(json);
  EXPECT_EQ(escaped, "{\"text\":\"\\u00c7a \\u2600 https:\\/\\/x.y\\/z \\ud83d\\ude00\"}");
  for (char c : escaped) EXPECT_LT(static_cast<unsigned char>(c), 0x80);
  EXPECT_EQ(nlohmann::json::parse(escaped), nlohmann::json::parse(json));
}

TEST(JsonEscapeTest, KeepsExistingEscapesAndStructure) {
  std::string json = R"({"a":"quote \" and \\ back","b/c":[1,2]})";
  EXPECT_EQ(EscapeJsonLikeMeta(json), R"({"a":"quote \" and \\ back","b\/c":[1,2]})");
}

TEST(JsonEscapeTest, AppendJsonEscapedHandlesControls) {
  std::string out;
  AppendJsonEscaped(out, std::string("a\"b\\c\nd\x01", 8));
  EXPECT_EQ(out, "a\\\"b\\\\c\\nd\\u0001");
}

}  // namespace
}  // namespace katy
