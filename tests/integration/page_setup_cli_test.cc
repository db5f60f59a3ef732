// `katyctl profile` and `katyctl subscriptions` against the emulator's Graph API, over real
// HTTP: what a person setting up a page runs.
#include <gtest/gtest.h>
#include <cstdlib>

#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "common/http/http_client.h"
#include "common/page_setup.h"
#include "tests/support/in_process_emulator.h"
#include "tests/support/test_support.h"
#include "tools/emulator/emulator_server.h"
#include "tools/katyctl/katyctl_commands.h"
#include "tools/katyctl/page_setup.h"

namespace katy::ctl {
namespace {

using nlohmann::json;

constexpr const char* kToken = "page-token";

class PageSetupCliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    meta_ = std::make_unique<testing::InProcessEmulator>(kToken);
    ASSERT_TRUE(meta_->server);
    server_ = meta_->server.get();
    graph_ = meta_->graph_url();
    setenv("KATY_GRAPH_URL", graph_.c_str(), 1);
    setenv("KATY_PAGE_TOKEN", kToken, 1);
    unsetenv("KATY_PAGE_TOKENS_FILE");
    unsetenv("KATY_APP_ID");
    setenv("KATY_RULES", "/nonexistent/katy-rules.yaml", 1);  // no comment rules unless a test writes some
  }
  void TearDown() override {
    for (const char* name : {"KATY_GRAPH_URL", "KATY_PAGE_TOKEN", "KATY_PAGE_TOKENS_FILE", "KATY_RULES"}) {
      unsetenv(name);
    }
  }

  struct Run {
    int status;
    std::string out;
    std::string err;
  };
  static Run Katyctl(const std::vector<std::string>& args) {
    std::ostringstream out;
    std::ostringstream err;
    const int status = RunKatyctl(args, out, err);
    return {status, out.str(), err.str()};
  }

  // The profile the emulator holds for the token's page.
  json StoredProfile() {
    auto got = http_.Get(graph_ + "/me/messenger_profile?access_token=" + std::string(kToken));
    auto data = json::parse(got->body)["data"];
    return data.empty() ? json::object() : data[0];
  }

  // In a directory of this test's own: ctest runs the tests of this suite as parallel
  // processes, and a shared /tmp/tokens.json was overwritten by a neighbour under TSan.
  std::string WriteFile(const std::string& name, const std::string& text) {
    if (dir_.empty()) dir_ = testing::MakeTempDir("page-setup-cli");
    std::string path = dir_ + "/" + name;
    std::ofstream(path) << text;
    return path;
  }

  std::string dir_;  // WriteFile's, made at its first call
  std::unique_ptr<testing::InProcessEmulator> meta_;
  emulator::EmulatorServer* server_ = nullptr;  // meta_'s
  std::string graph_;
  http::Client http_;
};

std::string DemoProfileText() {
  std::ifstream file(std::string(KATY_SOURCE_DIR) + "/deploy/profile.yaml");
  std::stringstream text;
  text << file.rdbuf();
  return text.str();
}

TEST_F(PageSetupCliTest, DryRunShowsTheDiffAndChangesNothingThenApplyAndGetRoundTrip) {
  const std::string path = WriteFile("profile.yaml", DemoProfileText());
  const json wanted = *ProfileFromYaml(DemoProfileText());

  Run dry = Katyctl({"profile", "apply", path, "--dry-run"});
  EXPECT_EQ(dry.status, 0) << dry.err;
  EXPECT_NE(dry.out.find(R"(+ get_started: {"payload":"GET_STARTED"})"), std::string::npos) << dry.out;
  EXPECT_NE(dry.out.find("dry run: 3 field(s) would change; nothing was changed"), std::string::npos) << dry.out;
  EXPECT_EQ(StoredProfile(), json::object());

  Run apply = Katyctl({"profile", "apply", path});
  EXPECT_EQ(apply.status, 0) << apply.err;
  EXPECT_NE(apply.out.find("applied 3 field(s)"), std::string::npos) << apply.out;
  EXPECT_EQ(StoredProfile(), wanted);

  Run get = Katyctl({"profile", "get"});
  ASSERT_EQ(get.status, 0) << get.err;
  auto read_back = ProfileFromYaml(get.out);
  ASSERT_TRUE(read_back.ok()) << get.out;
  EXPECT_EQ(*read_back, wanted);

  Run again = Katyctl({"profile", "apply", path});
  EXPECT_EQ(again.status, 0);
  EXPECT_NE(again.out.find("= persistent_menu"), std::string::npos) << again.out;
  EXPECT_NE(again.out.find("nothing to change"), std::string::npos) << again.out;
}

TEST_F(PageSetupCliTest, AProfileBeyondMetasLimitsIsRefusedWithNothingChanged) {
  std::string items;
  for (int i = 0; i < 21; ++i)
    items += "      - { type: postback, title: Item, payload: P" + std::to_string(i) + " }\n";
  const std::string path =
      WriteFile("too_big.yaml", "persistent_menu:\n  - locale: default\n    call_to_actions:\n" + items);
  Run refused = Katyctl({"profile", "apply", path});
  EXPECT_EQ(refused.status, 1);
  EXPECT_NE(refused.err.find("persistent_menu[0].call_to_actions: at most 20 items; nothing was changed"),
            std::string::npos)
      << refused.err;
  EXPECT_EQ(StoredProfile(), json::object());
  EXPECT_EQ(Katyctl({"profile", "apply", WriteFile("bad.yaml", "greeting: [unclosed")}).status, 1);
  EXPECT_EQ(Katyctl({"profile", "apply"}).status, 2);
}

TEST_F(PageSetupCliTest, CheckReportsTheMissingSubscriptionsAndFixAddsThem) {
  Run check = Katyctl({"subscriptions", "check"});
  EXPECT_EQ(check.status, 1);
  EXPECT_NE(check.out.find("subscribed: messages, messaging_postbacks"), std::string::npos) << check.out;
  EXPECT_NE(check.out.find("missing: messaging_optins, message_deliveries"), std::string::npos) << check.out;

  Run fix = Katyctl({"subscriptions", "fix"});
  EXPECT_EQ(fix.status, 0) << fix.err;
  auto apps = json::parse(http_.Get(graph_ + "/me/subscribed_apps?access_token=" + std::string(kToken))->body);
  const auto fields = apps["data"][0]["subscribed_fields"].get<std::vector<std::string>>();
  EXPECT_TRUE(MissingSubscriptions(fields, katy::WantedWebhookFields(false, false)).empty());
  EXPECT_EQ(fields.front(), "messages");  // what the page had stays

  Run after = Katyctl({"subscriptions", "check", "1045"});
  EXPECT_EQ(after.status, 0) << after.out << after.err;
  EXPECT_NE(after.out.find("missing: (none)"), std::string::npos) << after.out;
}

// Comment rules want the page's `feed`, and an Instagram account's comments; the account's
// profile (ice breakers) goes with platform=instagram and is kept apart from the page's.
TEST_F(PageSetupCliTest, CommentRulesWantTheCommentsFieldsAndInstagramHasItsOwnProfile) {
  setenv("KATY_RULES", WriteFile("rules.yaml", "rules:\n  - when: { comment: true }\n    reply: hi\n").c_str(), 1);
  ASSERT_EQ(Katyctl({"subscriptions", "fix"}).status, 0);
  Run check = Katyctl({"subscriptions", "check"});
  EXPECT_EQ(check.status, 0) << check.out;
  EXPECT_NE(check.out.find("feed"), std::string::npos) << check.out;
  EXPECT_NE(check.out.find("message_edits"), std::string::npos) << check.out;

  const std::string tokens =
      WriteFile("tokens.json",
                R"({"1045": "page-token", "17841400000000001": {"token": "page-token", "platform": "instagram"}})");
  setenv("KATY_PAGE_TOKENS_FILE", tokens.c_str(), 1);
  // Linked to a page, the account's fields are the app's (App Dashboard): katyctl says which.
  Run linked = Katyctl({"subscriptions", "check", "17841400000000001"});
  EXPECT_EQ(linked.status, 2);
  EXPECT_NE(linked.err.find("App Dashboard"), std::string::npos) << linked.err;
  EXPECT_NE(linked.err.find("comments, live_comments"), std::string::npos) << linked.err;
  // With Instagram Login, the account's own subscribed_apps.
  setenv("KATY_INSTAGRAM_GRAPH_URL", graph_.c_str(), 1);
  Run account = Katyctl({"subscriptions", "check", "17841400000000001"});
  unsetenv("KATY_INSTAGRAM_GRAPH_URL");
  EXPECT_EQ(account.status, 1);
  EXPECT_NE(account.out.find("comments, live_comments"), std::string::npos) << account.out;

  const std::string profile = WriteFile(
      "ig.yaml",
      "ice_breakers:\n  - locale: default\n    call_to_actions:\n      - { question: \"Price?\", payload: PRICE }\n");
  Run apply = Katyctl({"profile", "apply", profile, "1045", "--platform", "instagram"});
  EXPECT_EQ(apply.status, 0) << apply.err;
  EXPECT_NE(apply.out.find("applied 1 field(s)"), std::string::npos) << apply.out;
  Run get = Katyctl({"profile", "get", "1045", "--platform", "instagram"});
  EXPECT_NE(get.out.find("Price?"), std::string::npos) << get.out;
  EXPECT_EQ(Katyctl({"profile", "get", "1045"}).out.find("Price?"), std::string::npos) << "the page's own profile";
  Run greeting = Katyctl(
      {"profile", "apply", WriteFile("g.yaml", "greeting:\n  - { locale: default, text: Hi }\n"), "17841400000000001"});
  EXPECT_EQ(greeting.status, 1);
  EXPECT_NE(greeting.err.find("only ice_breakers and persistent_menu"), std::string::npos) << greeting.err;
}

TEST_F(PageSetupCliTest, GraphRefusalsAndAmbiguousPagesAreClearErrors) {
  setenv("KATY_PAGE_TOKEN", "wrong", 1);
  Run refused = Katyctl({"subscriptions", "check"});
  EXPECT_EQ(refused.status, 1);
  EXPECT_NE(refused.err.find("the Graph API refused: Invalid OAuth access token. (code 190)"), std::string::npos)
      << refused.err;
  EXPECT_EQ(refused.err.find("wrong"), std::string::npos) << "the token must not be printed";

  unsetenv("KATY_PAGE_TOKEN");
  const std::string tokens = WriteFile("tokens.json", R"({"1045": "page-token", "2000": "other"})");
  setenv("KATY_PAGE_TOKENS_FILE", tokens.c_str(), 1);
  Run ambiguous = Katyctl({"profile", "get"});
  EXPECT_EQ(ambiguous.status, 2);
  EXPECT_NE(ambiguous.err.find("several pages are configured: name the PAGE"), std::string::npos) << ambiguous.err;
  EXPECT_EQ(Katyctl({"profile", "get", "1045"}).status, 0);
  Run unknown = Katyctl({"profile", "get", "3000"});
  EXPECT_EQ(unknown.status, 1);
  EXPECT_NE(unknown.err.find("no page token for page 3000"), std::string::npos) << unknown.err;
}

}  // namespace
}  // namespace katy::ctl
