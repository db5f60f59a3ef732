// Page setup's pure parts: Meta's Messenger Profile limits, the YAML a profile is written in,
// the diff `katyctl profile apply` prints, and the subscriptions `check` finds missing.
#include "common/page_setup.h"

#include <gtest/gtest.h>

#include <algorithm>

#include <fstream>
#include <sstream>

#include "services/responder/rules.h"
#include "tools/katyctl/page_setup.h"

namespace katy {
namespace {

using nlohmann::json;

json Menu(size_t items, const std::string& title = "Help") {
  json actions = json::array();
  for (size_t i = 0; i < items; ++i) actions.push_back({{"type", "postback"}, {"title", title}, {"payload", "P"}});
  return json::array({{{"locale", "default"}, {"call_to_actions", actions}}});
}

TEST(PageSetupTest, MetasProfileLimitsAreCheckedWithThePlaceNamed) {
  EXPECT_FALSE(MessengerProfileError({{"persistent_menu", Menu(20)}}));
  EXPECT_EQ(*MessengerProfileError({{"persistent_menu", Menu(21)}}),
            "persistent_menu[0].call_to_actions: at most 20 items");
  EXPECT_EQ(*MessengerProfileError({{"persistent_menu", Menu(1, std::string(21, 'x'))}}),
            "persistent_menu[0].call_to_actions[0].title: 1 to 20 characters");
  // Twenty characters of a non-Latin script are twenty, not sixty bytes' worth.
  EXPECT_FALSE(MessengerProfileError({{"persistent_menu", Menu(1, "ねこねこねこねこねこねこねこねこねこねこ")}}));
  json nested = Menu(1);
  nested[0]["call_to_actions"][0] = {{"type", "nested"}, {"title", "More"}, {"call_to_actions", json::array()}};
  EXPECT_NE(MessengerProfileError({{"persistent_menu", nested}})->find("removed in Graph API v8.0"), std::string::npos);
  json french_only = Menu(1);
  french_only[0]["locale"] = "fr_FR";
  EXPECT_EQ(*MessengerProfileError({{"persistent_menu", french_only}}),
            "persistent_menu: one menu must have the locale \"default\"");
  EXPECT_EQ(*MessengerProfileError({{"greeting", {{{"locale", "default"}, {"text", std::string(161, 'a')}}}}}),
            "greeting[0].text: 1 to 160 characters");
  EXPECT_EQ(*MessengerProfileError({{"get_started", {{"payload", std::string(1001, 'p')}}}}),
            "get_started.payload: 1 to 1000 characters");
  json five = json::array();
  for (int i = 0; i < 5; ++i) five.push_back({{"question", "Q?"}, {"payload", "P"}});
  EXPECT_EQ(*MessengerProfileError({{"ice_breakers", five}}), "ice_breakers: at most 4 questions");
  EXPECT_FALSE(MessengerProfileError(
      {{"ice_breakers", {{{"locale", "default"}, {"call_to_actions", {{{"question", "Q?"}, {"payload", "P"}}}}}}}}));
  EXPECT_EQ(*MessengerProfileError({{"whitelisted_domains", {"http://example.com"}}}),
            "whitelisted_domains[0]: an https:// URL");
  EXPECT_EQ(*MessengerProfileError({{"colour", "red"}}), "unknown Messenger Profile field 'colour'");
  EXPECT_TRUE(MessengerProfileError(json::object()));
}

TEST(PageSetupTest, YamlBecomesMetasJsonAndBack) {
  auto profile = ctl::ProfileFromYaml(R"(
get_started: { payload: "123" }
persistent_menu:
  - locale: default
    composer_input_disabled: false
    call_to_actions:
      - { type: postback, title: "true", payload: "true" }
)");
  ASSERT_TRUE(profile.ok()) << profile.error().message;
  EXPECT_EQ((*profile)["get_started"]["payload"], "123");  // payloads stay text
  EXPECT_EQ((*profile)["persistent_menu"][0]["composer_input_disabled"], false);
  EXPECT_EQ((*profile)["persistent_menu"][0]["call_to_actions"][0]["title"], "true");  // quoted: text
  auto again = ctl::ProfileFromYaml(ctl::ProfileToYaml(*profile));
  ASSERT_TRUE(again.ok()) << again.error().message;
  EXPECT_EQ(*again, *profile);
  EXPECT_EQ(ctl::ProfileFromYaml("get_started: [unclosed").error().code, ErrorCode::kInvalid);
  EXPECT_EQ(ctl::ProfileFromYaml("- a list").error().code, ErrorCode::kInvalid);
}

TEST(PageSetupTest, ChangesNameEachFieldTheFileSets) {
  const json current = {{"get_started", {{"payload", "GO"}}}, {"greeting", {{{"locale", "default"}, {"text", "Hi"}}}}};
  const json desired = {{"get_started", {{"payload", "GO"}}},
                        {"greeting", {{{"locale", "default"}, {"text", "Hello"}}}},
                        {"whitelisted_domains", {"https://katy.example"}}};
  EXPECT_EQ(ctl::ProfileChanges(current, desired),
            (std::vector<std::string>{"= get_started",
                                      R"(~ greeting: [{"locale":"default","text":"Hi"}] -> )"
                                      R"([{"locale":"default","text":"Hello"}])",
                                      R"(+ whitelisted_domains: ["https://katy.example"])"}));
}

TEST(PageSetupTest, MissingSubscriptionsAreTheHandledFieldsNotSubscribed) {
  const std::vector<std::string> page = WantedWebhookFields(false, false);
  EXPECT_EQ(ctl::MissingSubscriptions({"messages", "messaging_postbacks", "message_echoes", "messaging_handovers",
                                       "standby", "message_reactions", "messaging_optins", "message_deliveries",
                                       "message_reads", "feed", "message_edits"},
                                      page),
            (std::vector<std::string>{"messaging_referrals"}));
  EXPECT_EQ(ctl::MissingSubscriptions({}, page).size(), std::size(kHandledWebhookFields));
  EXPECT_NE(std::find(page.begin(), page.end(), "message_edits"), page.end());
  for (std::string_view field : kHandledWebhookFields) EXPECT_TRUE(IsMessengerWebhookField(field)) << field;
  EXPECT_FALSE(IsMessengerWebhookField("messages_typo"));
  // Comment rules want the page's feed, and an Instagram account's comments and live comments.
  EXPECT_EQ(ctl::MissingSubscriptions(page, WantedWebhookFields(false, true)), (std::vector<std::string>{"feed"}));
  const auto instagram = WantedWebhookFields(true, true);
  EXPECT_EQ(
      ctl::MissingSubscriptions(
          {"messages", "messaging_postbacks", "messaging_seen", "message_reactions", "messaging_referral"}, instagram),
      (std::vector<std::string>{"comments", "live_comments"}));
  for (const auto& field : instagram) EXPECT_TRUE(IsInstagramWebhookField(field)) << field;
}

TEST(PageSetupTest, AnInstagramProfileHasOnlyIceBreakersAndAPersistentMenu) {
  const auto ice_breakers = nlohmann::json::parse(
      R"({"platform":"instagram","ice_breakers":[{"locale":"default","call_to_actions":[{"question":"Price?","payload":"PRICE"}]}]})");
  EXPECT_EQ(InstagramProfileError(ice_breakers), std::nullopt);
  const auto greeting = nlohmann::json::parse(R"({"greeting":[{"locale":"default","text":"Hi"}]})");
  EXPECT_EQ(MessengerProfileError(greeting), std::nullopt);
  ASSERT_TRUE(InstagramProfileError(greeting));
  EXPECT_NE(InstagramProfileError(greeting)->find("only ice_breakers and persistent_menu"), std::string::npos);
}

// The demo profile keeps Meta's limits, and each postback it offers has its own rule.
TEST(PageSetupTest, TheDemoProfileHoldsAndEveryPayloadHasItsRule) {
  std::ifstream file(std::string(KATY_SOURCE_DIR) + "/deploy/profile.yaml");
  std::stringstream text;
  text << file.rdbuf();
  auto profile = ctl::ProfileFromYaml(text.str());
  ASSERT_TRUE(profile.ok()) << profile.error().message;
  EXPECT_FALSE(MessengerProfileError(*profile)) << *MessengerProfileError(*profile);
  auto rules = responder::LoadRulesFile(std::string(KATY_SOURCE_DIR) + "/deploy/rules/katy.yaml");
  ASSERT_TRUE(rules.ok()) << rules.error().message;
  std::vector<std::string> payloads = {(*profile)["get_started"]["payload"].get<std::string>()};
  for (const auto& item : (*profile)["persistent_menu"][0]["call_to_actions"]) payloads.push_back(item["payload"]);
  for (const auto& payload : payloads) {
    katy::v1::InboundEvent tap;
    tap.set_kind(katy::v1::EVENT_KIND_POSTBACK);
    tap.set_user_id("u");
    tap.set_postback_payload(payload);
    std::map<std::string, std::string> captures;
    const responder::Rule* rule = responder::FindRule(*rules, tap, {}, &captures);
    ASSERT_NE(rule, nullptr) << payload;
    EXPECT_NE(rule->name, "fallback") << payload << " falls through to the fallback";
  }
}

}  // namespace
}  // namespace katy
