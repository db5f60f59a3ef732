#include "common/config.h"

#include <gtest/gtest.h>

#include <fstream>

#include "common/runtime/service_main.h"

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
  // The characters a password generator uses: the redaction ends where the parser does.
  for (const std::string password : {"ab/cd", "a@b", "x:y", "p%40q", "s/@:%"}) {
    auto t =
        Settings::Load(Specs(), {"--redis-url=redis://u:" + password + "@db:6379/0"}, Env({{"KATY_APP_SECRET", "x"}}));
    EXPECT_EQ(t.RedactedJson().find(password), std::string::npos) << t.RedactedJson();
    EXPECT_NE(t.RedactedJson().find("redis://[redacted]@db:6379/0"), std::string::npos) << t.RedactedJson();
  }
}

// The examples' placeholders and short secrets refuse to start, naming the setting and never
// echoing the value.
TEST(ConfigTest, PlaceholderAndShortSecretsAreRefused) {
  for (const char* placeholder : {"change-me", "CHANGE-ME", "changeme", "secret", "password"}) {
    try {
      CheckSecretStrength("KATY_APP_SECRET", placeholder, kMinSecretLength);
      ADD_FAILURE() << placeholder << " was accepted";
    } catch (const ConfigError& e) {
      const std::string what = e.what();
      EXPECT_NE(what.find("KATY_APP_SECRET is a placeholder"), std::string::npos) << what;
      EXPECT_NE(what.find("openssl rand"), std::string::npos) << what;
    }
  }
  EXPECT_THROW(CheckSecretStrength("KATY_CONTROL_TOKEN", "short-token", kMinSecretLength), ConfigError);
  EXPECT_NO_THROW(CheckSecretStrength("KATY_CONTROL_TOKEN", "a-long-enough-token", kMinSecretLength));
  EXPECT_NO_THROW(CheckSecretStrength("KATY_CONTROL_TOKEN", "", kMinSecretLength));  // unset: the caller decides
}

// A gRPC port others can reach needs a token; loopback may go without one.
TEST(ConfigTest, ANetworkReachableGrpcPortNeedsAToken) {
  for (const char* host : {"0.0.0.0", "10.1.2.3", "::", "katy-sender"}) {
    try {
      CheckServiceToken("KATY_CONTROL_TOKEN", "", HostPort{host, 50051});
      ADD_FAILURE() << host << " was allowed without a token";
    } catch (const ConfigError& e) {
      EXPECT_NE(std::string(e.what()).find("KATY_CONTROL_TOKEN is required"), std::string::npos) << e.what();
    }
  }
  for (const char* host : {"127.0.0.1", "127.0.0.5", "::1", "localhost"}) {
    EXPECT_NO_THROW(CheckServiceToken("KATY_CONTROL_TOKEN", "", HostPort{host, 50051})) << host;
  }
  EXPECT_NO_THROW(CheckServiceToken("KATY_CONTROL_TOKEN", "a-long-enough-token", HostPort{"0.0.0.0", 50051}));
  EXPECT_THROW(CheckServiceToken("KATY_CONTROL_TOKEN", "change-me", HostPort{"127.0.0.1", 50051}), ConfigError);
}

// LoadCommonConfig applies both; runtime::RedisOptions applies the strength check to the
// password in the Redis URL, which may come from a file like a secret.
TEST(ConfigTest, CommonConfigChecksTheTokenAndTheRedisPassword) {
  auto load = [](const std::map<std::string, std::string>& env) {
    auto common = LoadCommonConfig(Settings::Load(CommonSpecs("127.0.0.1:50051", "127.0.0.1:9101"), {}, Env(env)));
    runtime::RedisOptions(common);
    return common;
  };
  EXPECT_NO_THROW(load({}));
  EXPECT_THROW(load({{"KATY_GRPC_ADDR", "0.0.0.0:50051"}}), ConfigError);
  EXPECT_NO_THROW(load({{"KATY_GRPC_ADDR", "0.0.0.0:50051"}, {"KATY_CONTROL_TOKEN", "0123456789abcdef0"}}));
  EXPECT_THROW(load({{"KATY_REDIS_URL", "redis://:change-me@db:6379/0"}}), ConfigError);
  EXPECT_NO_THROW(load({{"KATY_REDIS_URL", "redis://:a/b@c:d%e-0123456789@db:6379/0"}}));
  const std::string path = ::testing::TempDir() + "/redis-url";
  std::ofstream(path) << "redis://:from-a-file-0123456789@db:6379/0\n";
  auto from_file = LoadCommonConfig(
      Settings::Load(CommonSpecs("127.0.0.1:50051", "127.0.0.1:9101"), {}, Env({{"KATY_REDIS_URL_FILE", path}})));
  EXPECT_EQ(from_file.redis_url, "redis://:from-a-file-0123456789@db:6379/0");
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
