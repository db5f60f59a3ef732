#include "common/config.h"

#include <gtest/gtest.h>

#include <fstream>

namespace katy::config {
namespace {

std::vector<SettingSpec> Specs() {
  return {{"KATY_REDIS_URL", "redis://127.0.0.1:6379/0", "redis"},
          {"KATY_SHARDS", "16", "shards"},
          {"KATY_APP_SECRET", "", "secret", true, true}};
}

Settings::Lookup Env(const std::map<std::string, std::string>& values) {
  return [values](const std::string& name) -> std::optional<std::string> {
    auto it = values.find(name);
    if (it == values.end()) return std::nullopt;
    return it->second;
  };
}

TEST(ConfigTest, FlagBeatsEnvironmentBeatsDefault) {
  auto s = Settings::Load(Specs(), {"--shards", "8"}, Env({{"KATY_SHARDS", "4"}, {"KATY_APP_SECRET", "x"}}));
  EXPECT_EQ(s.Int("KATY_SHARDS", 1, 64), 8);
  EXPECT_EQ(s.String("KATY_REDIS_URL"), "redis://127.0.0.1:6379/0");
  auto t = Settings::Load(Specs(), {}, Env({{"KATY_SHARDS", "4"}, {"KATY_APP_SECRET", "x"}}));
  EXPECT_EQ(t.Int("KATY_SHARDS", 1, 64), 4);
  auto u = Settings::Load(Specs(), {"--shards=2", "--app-secret=y"}, Env({}));
  EXPECT_EQ(u.Int("KATY_SHARDS", 1, 64), 2);
  EXPECT_EQ(u.String("KATY_APP_SECRET"), "y");
}

TEST(ConfigTest, MissingRequiredSettingIsOneClearLine) {
  try {
    Settings::Load(Specs(), {}, Env({}));
    FAIL() << "expected ConfigError";
  } catch (const ConfigError& e) {
    std::string what = e.what();
    EXPECT_NE(what.find("missing required setting KATY_APP_SECRET"), std::string::npos) << what;
    EXPECT_NE(what.find("KATY_APP_SECRET_FILE"), std::string::npos) << what;
    EXPECT_NE(what.find("--app-secret"), std::string::npos) << what;
    EXPECT_EQ(what.find('\n'), std::string::npos);
  }
}

TEST(ConfigTest, SecretFromFile) {
  const std::string path = "/tmp/katy-config-test-secret";
  std::ofstream(path) << "from-file\n";
  auto s = Settings::Load(Specs(), {}, Env({{"KATY_APP_SECRET_FILE", path}}));
  EXPECT_EQ(s.String("KATY_APP_SECRET"), "from-file");
  EXPECT_THROW(Settings::Load(Specs(), {}, Env({{"KATY_APP_SECRET_FILE", "/nonexistent/x"}})), ConfigError);
}

TEST(ConfigTest, BadValuesAndFlagsAreRefused) {
  auto env = Env({{"KATY_APP_SECRET", "x"}, {"KATY_SHARDS", "lots"}});
  auto s = Settings::Load(Specs(), {}, env);
  EXPECT_THROW(s.Int("KATY_SHARDS", 1, 64), ConfigError);
  EXPECT_THROW(Settings::Load(Specs(), {"--no-such-flag=1"}, env), ConfigError);
  EXPECT_THROW(Settings::Load(Specs(), {"--shards"}, env), ConfigError);
  auto big = Settings::Load(Specs(), {"--shards=100"}, env);
  EXPECT_THROW(big.Int("KATY_SHARDS", 1, 64), ConfigError);
}

TEST(ConfigTest, RedactedJsonHidesSecretsAndUrlPasswords) {
  auto s = Settings::Load(Specs(), {"--redis-url=redis://:hunter2@db:6379/0"}, Env({{"KATY_APP_SECRET", "topsecret"}}));
  std::string json = s.RedactedJson();
  EXPECT_EQ(json.find("topsecret"), std::string::npos) << json;
  EXPECT_EQ(json.find("hunter2"), std::string::npos) << json;
  EXPECT_NE(json.find("redis://[redacted]@db:6379/0"), std::string::npos) << json;
  EXPECT_EQ(s.SecretValuesForTest(), std::vector<std::string>{"topsecret"});
}

TEST(ConfigTest, ParsesAddresses) {
  EXPECT_EQ(ParseHostPort("0.0.0.0:8080")->ToString(), "0.0.0.0:8080");
  EXPECT_EQ(ParseHostPort(":9101")->host, "127.0.0.1");
  EXPECT_EQ(ParseHostPort("[::1]:50051")->ToString(), "[::1]:50051");
  EXPECT_EQ(ParseHostPort("127.0.0.1:0")->port, 0);
  EXPECT_FALSE(ParseHostPort("localhost"));
  EXPECT_FALSE(ParseHostPort("h:99999"));
  EXPECT_FALSE(ParseHostPort("h:8o"));
  EXPECT_EQ(FlagForSetting("KATY_PAGE_TOKENS_FILE"), "--page-tokens-file");
}

}  // namespace
}  // namespace katy::config
