#include "services/responder/rules.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "services/responder/text_normalize.h"

namespace katy::responder {
namespace {

using katy::v1::InboundEvent;

RuleSet MustParse(const std::string& yaml) {
  auto rules = ParseRules(yaml, "test.yaml");
  EXPECT_TRUE(rules.ok()) << (rules.ok() ? "" : rules.error().message);
  return rules.ok() ? *rules : RuleSet{};
}

std::string LoadError(const std::string& yaml) {
  auto rules = ParseRules(yaml, "bad.yaml");
  EXPECT_FALSE(rules.ok());
  return rules.ok() ? "" : rules.error().message;
}

InboundEvent Text(const std::string& text) {
  InboundEvent event;
  event.set_kind(katy::v1::EVENT_KIND_MESSAGE);
  event.set_page_id("p");
  event.set_user_id("u");
  event.set_text(text);
  return event;
}

size_t First(size_t) { return 0; }

std::string TextOf(const std::string& message_json) {
  return nlohmann::json::parse(message_json)["text"].get<std::string>();
}

Decision DecideText(const RuleSet& rules, const std::string& text, const Conversation& conversation = {}) {
  return Decide(rules, Text(text), conversation, First);
}

constexpr const char* kFoundationRules = R"(
rules:
  - when: { keywords: [hello, hi] }
    reply: "hi there"
fallback:
  reply: "echo: {{text}}"
)";

TEST(RulesTest, FoundationFormat) {
  RuleSet rules = MustParse(kFoundationRules);
  Decision hello = DecideText(rules, "Hello Katy!");
  ASSERT_EQ(hello.messages.size(), 1u);
  EXPECT_EQ(TextOf(hello.messages[0]), "hi there");
  EXPECT_EQ(hello.rule, "rule1");
  Decision other = DecideText(rules, "what's up");
  ASSERT_EQ(other.messages.size(), 1u);
  EXPECT_EQ(TextOf(other.messages[0]), "echo: what's up");
  EXPECT_EQ(other.rule, "fallback");
}

TEST(RulesTest, KeywordsAreWholeWordsCaseAndAccentInsensitive) {
  RuleSet rules = MustParse(R"yaml(
rules:
  - name: weather
    when: { keywords: [météo, "good morning"] }
    reply: "sunny"
)yaml");
  EXPECT_EQ(DecideText(rules, "METEO today?").rule, "weather");
  EXPECT_EQ(DecideText(rules, "la Météo").rule, "weather");
  EXPECT_EQ(DecideText(rules, "Good Morning!").rule, "weather");
  EXPECT_EQ(DecideText(rules, "meteorology").rule, "");  // not a whole word; no fallback
  EXPECT_EQ(FoldForMatching("Ça VA Zürich ÉTÉ ñ"), "ca va zurich ete n");
  EXPECT_TRUE(ContainsWord("hi, there", "hi"));
  EXPECT_FALSE(ContainsWord("this", "hi"));
}

TEST(RulesTest, PostbackQuickReplyAttachmentStateAndFirstContact) {
  RuleSet rules = MustParse(R"yaml(
rules:
  - name: start
    when: { postback: GET_STARTED }
    reply: "welcome"
  - name: adopt
    when: { postback: [ADOPT_MITTENS, ADOPT_TOM] }
    reply: "purr"
  - name: weather
    when: { quick_reply: WEATHER }
    reply: "sunny"
  - name: photo
    when: { attachment: image }
    reply: "nice photo"
  - name: named
    when: { state: asking_name }
    reply: "thanks {{text}}"
    set: { name: "{{text}}" }
    state: ~
  - name: newcomer
    when: { first_contact: true }
    reply: "first time?"
)yaml");
  InboundEvent postback;
  postback.set_kind(katy::v1::EVENT_KIND_POSTBACK);
  postback.set_user_id("u");
  postback.set_postback_payload("GET_STARTED");
  EXPECT_EQ(Decide(rules, postback, {}, First).rule, "start");
  postback.set_postback_payload("ADOPT_TOM");
  EXPECT_EQ(Decide(rules, postback, {}, First).rule, "adopt");

  InboundEvent quick = Text("Weather");
  quick.set_quick_reply_payload("WEATHER");
  EXPECT_EQ(Decide(rules, quick, {}, First).rule, "weather");

  InboundEvent photo = Text("");
  photo.add_attachments()->set_type("image");
  EXPECT_EQ(Decide(rules, photo, {}, First).rule, "photo");

  Conversation asking;
  asking.state = "asking_name";
  Decision named = DecideText(rules, "Ada", asking);
  EXPECT_EQ(named.rule, "named");
  EXPECT_EQ(TextOf(named.messages[0]), "thanks Ada");
  EXPECT_EQ(named.set_vars.at("name"), "Ada");
  ASSERT_TRUE(named.next_state.has_value());
  EXPECT_EQ(*named.next_state, "");

  Conversation fresh;
  fresh.first_contact = true;
  EXPECT_EQ(DecideText(rules, "yo", fresh).rule, "newcomer");
  EXPECT_EQ(DecideText(rules, "yo", {}).rule, "");
}

TEST(RulesTest, InvalidUtf8InAValueBecomesAReplacementCharacterNotACrash) {
  // Found by rules_match_fuzz: a value with a broken UTF-8 sequence made the reply's JSON
  // serialisation throw, which would take the responder's worker down.
  RuleSet rules = MustParse("fallback:\n  reply: \"Hi {{first_name}}\"\n");
  Conversation conversation;
  conversation.first_name = "Ad\xff";
  Decision decision = DecideText(rules, "hello", conversation);
  ASSERT_EQ(decision.messages.size(), 1u);
  EXPECT_EQ(TextOf(decision.messages[0]), "Hi Ad\xef\xbf\xbd");
}

TEST(RulesTest, RegexCapturesVariablesAndFirstName) {
  RuleSet rules = MustParse(R"yaml(
rules:
  - name: intro
    when: { regex: "(?i)my name is (?P<name>\\w+)" }
    reply:
      - "Nice to meet you, {{name}}!"
      - "I'm Katy, {{ first_name }}. You said {{missing}}."
    set: { name: "{{name}}" }
fallback:
  reply: "Hi {{name}}"
)yaml");
  Conversation conversation;
  conversation.first_name = "Grace";
  Decision intro = DecideText(rules, "My name is Ada", conversation);
  ASSERT_EQ(intro.messages.size(), 2u);
  EXPECT_EQ(TextOf(intro.messages[0]), "Nice to meet you, Ada!");
  EXPECT_EQ(TextOf(intro.messages[1]), "I'm Katy, Grace. You said .");
  EXPECT_EQ(intro.set_vars.at("name"), "Ada");
  conversation.vars["name"] = "Ada";
  EXPECT_EQ(TextOf(DecideText(rules, "anything", conversation).messages[0]), "Hi Ada");
  Conversation nameless;
  Decision neutral = DecideText(rules, "my name is Bo", nameless);
  EXPECT_EQ(TextOf(neutral.messages[1]), "I'm Katy, there. You said .");
}

TEST(RulesTest, VariantsAndQuickReplies) {
  RuleSet rules = MustParse(R"yaml(
rules:
  - when: { keywords: [menu] }
    reply:
      variants: ["one", "two", "three"]
      quick_replies: ["Help", { title: "Weather", payload: WEATHER }]
)yaml");
  Decision first = Decide(rules, Text("menu"), {}, [](size_t n) { return n - 1; });
  auto json = nlohmann::json::parse(first.messages[0]);
  EXPECT_EQ(json["text"], "three");
  ASSERT_EQ(json["quick_replies"].size(), 2u);
  EXPECT_EQ(json["quick_replies"][0]["title"], "Help");
  EXPECT_EQ(json["quick_replies"][0]["payload"], "Help");
  EXPECT_EQ(json["quick_replies"][1]["payload"], "WEATHER");
  EXPECT_EQ(json["quick_replies"][1]["content_type"], "text");
}

TEST(RulesTest, NeverRepliesToEchoesReceiptsStandbyOrPageEvents) {
  RuleSet rules = MustParse(kFoundationRules);
  for (auto kind : {katy::v1::EVENT_KIND_ECHO, katy::v1::EVENT_KIND_DELIVERY, katy::v1::EVENT_KIND_READ,
                    katy::v1::EVENT_KIND_REACTION, katy::v1::EVENT_KIND_UNKNOWN}) {
    InboundEvent event = Text("hello");
    event.set_kind(kind);
    EXPECT_TRUE(Decide(rules, event, {}, First).messages.empty()) << kind;
  }
  InboundEvent standby = Text("hello");
  standby.set_standby(true);
  EXPECT_TRUE(Decide(rules, standby, {}, First).messages.empty());
  InboundEvent no_user = Text("hello");
  no_user.clear_user_id();
  EXPECT_TRUE(Decide(rules, no_user, {}, First).messages.empty());
}

TEST(RulesTest, LoadErrorsNameFileAndLine) {
  EXPECT_EQ(LoadError("rules:\n  - when: { keywords: [a] }\n    replyy: x\n"),
            "bad.yaml:3: unknown rule field 'replyy'");
  EXPECT_EQ(LoadError("rules:\n  - when: { regex: \"(\" }\n    reply: x\n").rfind("bad.yaml:2: bad regex", 0), 0u);
  std::string many = "rules:\n  - reply:\n      text: x\n      quick_replies: [";
  for (int i = 0; i < 14; ++i) many += (i ? ",q" : "q") + std::to_string(i);
  many += "]\n";
  EXPECT_NE(LoadError(many).find("at most 13 quick replies"), std::string::npos);
  EXPECT_NE(LoadError("rules:\n  - reply: { text: x, quick_replies: [\"twenty-one characters\"] }\n")
                .find("must have 1 to 20 characters"),
            std::string::npos);
  EXPECT_NE(LoadError("rules: [\n").find("bad.yaml:"), std::string::npos);
  EXPECT_EQ(LoadError("rulez: []\n"), "bad.yaml:1: unknown top-level key 'rulez'");
  EXPECT_EQ(LoadError("rules:\n  - when: { colour: red }\n"), "bad.yaml:2: unknown condition 'colour'");
  EXPECT_NE(LoadError("rules:\n  - reply: \"" + std::string(2000, 'a') + "\"\n").find("2000"), std::string::npos);
}

TEST(RulesTest, ButtonAndGenericTemplatesTypingAndSkills) {
  RuleSet rules = MustParse(R"yaml(
rules:
  - name: links
    when: { keywords: [links] }
    typing: true
    reply:
      text: "Where to, {{first_name}}?"
      buttons:
        - { title: "Docs", url: "https://example.com/docs" }
        - { title: "Help", payload: HELP }
  - name: kittens
    when: { keywords: [kittens] }
    reply:
      cards:
        - title: "Mittens"
          subtitle: "Sleeps a lot"
          image_url: "https://example.com/m.jpg"
          buttons: [{ title: "Adopt", payload: ADOPT_MITTENS }]
        - title: "Tom"
  - name: weather
    when: { keywords: [weather] }
    skill:
      url: "http://127.0.0.1:9999/weather"
      timeout_ms: 500
      fallback: "The weather service is napping, {{first_name}}."
)yaml");
  ASSERT_EQ(rules.rules.size(), 3u);
  EXPECT_TRUE(rules.rules[0].uses_first_name);
  EXPECT_FALSE(rules.rules[1].uses_first_name);
  EXPECT_TRUE(rules.rules[2].uses_first_name);

  Conversation ada;
  ada.first_name = "Ada";
  Decision links = DecideText(rules, "links please", ada);
  EXPECT_TRUE(links.typing);
  auto button = nlohmann::json::parse(links.messages.at(0));
  EXPECT_EQ(button["attachment"]["payload"]["template_type"], "button");
  EXPECT_EQ(button["attachment"]["payload"]["text"], "Where to, Ada?");
  EXPECT_EQ(button["attachment"]["payload"]["buttons"][0]["type"], "web_url");
  EXPECT_EQ(button["attachment"]["payload"]["buttons"][0]["url"], "https://example.com/docs");
  EXPECT_EQ(button["attachment"]["payload"]["buttons"][1]["type"], "postback");
  EXPECT_EQ(button["attachment"]["payload"]["buttons"][1]["payload"], "HELP");

  auto generic = nlohmann::json::parse(DecideText(rules, "kittens!").messages.at(0));
  EXPECT_EQ(generic["attachment"]["payload"]["template_type"], "generic");
  ASSERT_EQ(generic["attachment"]["payload"]["elements"].size(), 2u);
  EXPECT_EQ(generic["attachment"]["payload"]["elements"][0]["subtitle"], "Sleeps a lot");
  EXPECT_EQ(generic["attachment"]["payload"]["elements"][0]["buttons"][0]["payload"], "ADOPT_MITTENS");
  EXPECT_FALSE(generic["attachment"]["payload"]["elements"][1].contains("buttons"));

  Decision weather = DecideText(rules, "weather?", ada);
  ASSERT_NE(weather.skill, nullptr);
  EXPECT_EQ(weather.skill->url, "http://127.0.0.1:9999/weather");
  EXPECT_EQ(weather.skill->timeout, std::chrono::milliseconds(500));
  EXPECT_TRUE(weather.messages.empty());
  auto fallback = RenderMessages(weather.skill->fallback, Text("weather?"), ada, First);
  EXPECT_EQ(TextOf(fallback.at(0)), "The weather service is napping, Ada.");
}

TEST(RulesTest, TemplateAndSkillLoadErrors) {
  EXPECT_NE(LoadError("rules:\n  - reply: { text: x, buttons: [{title: a, payload: b}, {title: a, payload: b}, "
                      "{title: a, payload: b}, {title: a, payload: b}] }\n")
                .find("1 to 3 buttons"),
            std::string::npos);
  EXPECT_NE(LoadError("rules:\n  - reply: { text: x, buttons: [{title: a}] }\n").find("{title, url}"),
            std::string::npos);
  EXPECT_NE(LoadError("rules:\n  - reply: { buttons: [{title: a, payload: b}] }\n").find("needs text"),
            std::string::npos);
  EXPECT_NE(LoadError("rules:\n  - reply: { text: x, cards: [{title: a}] }\n").find("either text or cards"),
            std::string::npos);
  EXPECT_NE(LoadError("rules:\n  - reply: { cards: [{subtitle: a}] }\n").find("needs a title"), std::string::npos);
  EXPECT_NE(LoadError("rules:\n  - skill: ftp://x\n").find("http://"), std::string::npos);
  EXPECT_NE(LoadError("rules:\n  - skill: http://x\n    reply: y\n").find("either 'reply' or 'skill'"),
            std::string::npos);
  EXPECT_NE(LoadError("rules:\n  - skill: { url: \"http://x\", timeout_ms: 5 }\n").find("timeout_ms"),
            std::string::npos);
}

// Referrals (m.me links, ads, the chat plugin) and opt-ins reach the rules written for them,
// with {{ref}}; never the fallback, and never a rule that does not ask for them.
TEST(RulesTest, ReferralsAndOptinsReachOnlyTheRulesWrittenForThem) {
  const RuleSet rules = MustParse(R"(
rules:
  - name: promo
    when: { ref: "PROMO*" }
    reply: "Welcome, you came from {{ref}}!"
  - name: newsletter
    when: { optin: [NEWSLETTER, DEALS] }
    reply: "You are subscribed."
  - name: anyone
    when: { state: ~ }
    reply: "Hi"
fallback:
  reply: "Sorry?"
)");
  auto event = [](katy::v1::EventKind kind, const std::string& ref) {
    InboundEvent out;
    out.set_kind(kind);
    out.set_user_id("u");
    out.mutable_referral()->set_ref(ref);
    return out;
  };
  Decision promo = Decide(rules, event(katy::v1::EVENT_KIND_REFERRAL, "PROMO_SUMMER"), {}, First);
  EXPECT_EQ(promo.rule, "promo");
  EXPECT_EQ(TextOf(promo.messages.at(0)), "Welcome, you came from PROMO_SUMMER!");
  // A new user's Get Started through the link carries the ref on the postback.
  InboundEvent started = event(katy::v1::EVENT_KIND_POSTBACK, "PROMO1");
  started.set_postback_payload("GET_STARTED");
  EXPECT_EQ(Decide(rules, started, {}, First).rule, "promo");
  // Another ref, or an opt-in for something else: no rule wrote for it, and no fallback.
  EXPECT_EQ(Decide(rules, event(katy::v1::EVENT_KIND_REFERRAL, "SPRING"), {}, First).rule, "");
  EXPECT_EQ(Decide(rules, event(katy::v1::EVENT_KIND_OPTIN, "OTHER"), {}, First).rule, "");
  // The Send to Messenger plugin's data-ref, or a marketing opt-in's payload.
  EXPECT_EQ(Decide(rules, event(katy::v1::EVENT_KIND_OPTIN, "NEWSLETTER"), {}, First).rule, "newsletter");
  InboundEvent marketing = event(katy::v1::EVENT_KIND_OPTIN, "");
  marketing.set_postback_payload("DEALS");
  EXPECT_EQ(Decide(rules, marketing, {}, First).rule, "newsletter");
  // "PROMO*" takes PROMO itself too; an empty ref never matches a pattern.
  EXPECT_EQ(Decide(rules, event(katy::v1::EVENT_KIND_REFERRAL, "PROMO"), {}, First).rule, "promo");
  InboundEvent plain;
  plain.set_kind(katy::v1::EVENT_KIND_MESSAGE);
  plain.set_user_id("u");
  plain.set_text("hello");
  EXPECT_EQ(Decide(rules, plain, {}, First).rule, "anyone");
  InboundEvent standby = event(katy::v1::EVENT_KIND_REFERRAL, "PROMO_X");
  standby.set_standby(true);
  EXPECT_EQ(Decide(rules, standby, {}, First).rule, "");
}

TEST(RulesTest, MediaRepliesGoByUrlReusableUnlessSaidOtherwise) {
  const RuleSet rules = MustParse(R"(
rules:
  - when: { keywords: [cat] }
    reply:
      - image: "https://example.com/cat.jpg"
        quick_replies: ["More"]
      - audio: "https://example.com/{{text}}.mp3"
        reusable: false
)");
  Decision decision = DecideText(rules, "cat");
  ASSERT_EQ(decision.messages.size(), 2u);
  auto image = nlohmann::json::parse(decision.messages[0]);
  EXPECT_EQ(image["attachment"]["type"], "image");
  EXPECT_EQ(image["attachment"]["payload"]["url"], "https://example.com/cat.jpg");
  EXPECT_EQ(image["attachment"]["payload"]["is_reusable"], true);
  EXPECT_EQ(image["quick_replies"][0]["title"], "More");
  auto audio = nlohmann::json::parse(decision.messages[1]);
  EXPECT_EQ(audio["attachment"]["payload"]["url"], "https://example.com/cat.mp3");
  EXPECT_EQ(audio["attachment"]["payload"]["is_reusable"], false);

  for (const char* bad :
       {"reply: { image: 'ftp://x/y.jpg' }", "reply: { image: 'https://x/y.jpg', text: hi }",
        "reply: { image: 'https://x/a.jpg', video: 'https://x/b.mp4' }", "reply: { text: hi, reusable: true }"}) {
    auto parsed = ParseRules(std::string("rules:\n  - ") + bad + "\n", "bad.yaml");
    EXPECT_FALSE(parsed.ok()) << bad;
  }
}

TEST(RulesTest, PlatformTellsInstagramFromMessenger) {
  const RuleSet rules = MustParse(R"(
rules:
  - when: { platform: instagram, keywords: [hi] }
    reply: "Hi from the Instagram bot"
  - when: { keywords: [hi] }
    reply: "Hi from the Messenger bot"
)");
  InboundEvent instagram;
  instagram.set_kind(katy::v1::EVENT_KIND_MESSAGE);
  instagram.set_user_id("u");
  instagram.set_text("hi");
  instagram.set_platform("instagram");
  EXPECT_EQ(TextOf(Decide(rules, instagram, {}, First).messages.at(0)), "Hi from the Instagram bot");
  EXPECT_EQ(TextOf(DecideText(rules, "hi").messages.at(0)), "Hi from the Messenger bot");
  EXPECT_FALSE(ParseRules("rules:\n  - when: { platform: whatsapp }\n    reply: x\n", "bad.yaml").ok());
}

// Instagram counts 1000 bytes where Messenger counts 2000 characters: 600 accented letters
// (1,200 bytes) load for Messenger (or either platform, where the sender splits the text for
// Instagram) and are refused, with the place, in a rule written for Instagram.
TEST(RulesTest, InstagramRulesKeepInstagramsTextLimitAtLoad) {
  std::string accents;
  for (int i = 0; i < 600; ++i) accents += "\u00e9";
  const std::string reply = "    reply: \"" + accents + "\"\n";
  EXPECT_TRUE(ParseRules("rules:\n  - when: { platform: messenger }\n" + reply, "ok.yaml").ok());
  EXPECT_TRUE(ParseRules("rules:\n  - when: { keywords: [hi] }\n" + reply, "ok.yaml").ok());
  auto refused = ParseRules("rules:\n  - when: { platform: instagram }\n" + reply, "ig.yaml");
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().message,
            "ig.yaml:3: reply text must be at most 1000 bytes on Instagram (Meta's limit), got 1200");
  auto fallback = ParseRules(
      "rules:\n  - when: { platform: instagram }\n    skill:\n      url: http://x/\n"
      "      fallback: \"" +
          accents + "\"\n",
      "ig.yaml");
  EXPECT_FALSE(fallback.ok());
}

TEST(RulesTest, TheDemoBotLoadsAndHolds) {
  auto loaded = LoadRulesFile(std::string(KATY_SOURCE_DIR) + "/deploy/rules/katy.yaml");
  ASSERT_TRUE(loaded.ok()) << loaded.error().message;
  const RuleSet& rules = *loaded;
  InboundEvent start;
  start.set_kind(katy::v1::EVENT_KIND_POSTBACK);
  start.set_user_id("u");
  start.set_postback_payload("GET_STARTED");
  Conversation grace;
  grace.first_name = "Grace";
  Decision welcome = Decide(rules, start, grace, First);
  EXPECT_TRUE(welcome.typing);
  EXPECT_NE(TextOf(welcome.messages.at(0)).find("Grace"), std::string::npos);

  EXPECT_EQ(DecideText(rules, "Hello!").rule, "greeting");
  // "remind me" sets the demo's reminder, whose rule answers it when it falls due.
  Decision remind = DecideText(rules, "please remind me");
  ASSERT_EQ(remind.remind.size(), 1u);
  InboundEvent nudge;
  nudge.set_kind(katy::v1::EVENT_KIND_TIMER);
  nudge.set_user_id("u");
  nudge.set_kind_key(remind.remind[0].name);
  EXPECT_EQ(Decide(rules, nudge, grace, First).rule, "demo_nudge");
  Decision ask = DecideText(rules, "my name");
  EXPECT_EQ(ask.next_state, "asking_name");
  Conversation asking;
  asking.state = "asking_name";
  Decision remember = DecideText(rules, "Ada", asking);
  EXPECT_EQ(remember.set_vars.at("name"), "Ada");
  Conversation known;
  known.vars["name"] = "Ada";
  EXPECT_NE(TextOf(DecideText(rules, "hi", known).messages.at(0)).find("Ada"), std::string::npos);
  auto help = nlohmann::json::parse(DecideText(rules, "help").messages.at(0));
  EXPECT_EQ(help["attachment"]["payload"]["template_type"], "button");
  auto kittens = DecideText(rules, "show me kittens");
  ASSERT_EQ(kittens.messages.size(), 2u);
  EXPECT_EQ(nlohmann::json::parse(kittens.messages[1])["attachment"]["payload"]["template_type"], "generic");
  EXPECT_EQ(DecideText(rules, "qwertyuiop").rule, "fallback");
  EXPECT_EQ(DecideText(rules, "STOP").privacy, PrivacyAction::kOptOut);
  EXPECT_EQ(DecideText(rules, "please don't stop").privacy, PrivacyAction::kNone);
  EXPECT_EQ(DecideText(rules, "Start!").privacy, PrivacyAction::kOptIn);
  EXPECT_EQ(DecideText(rules, "please delete my data").privacy, PrivacyAction::kForget);
  Decision human = DecideText(rules, "can I talk to a human?");
  EXPECT_EQ(human.rule, "human");
  ASSERT_TRUE(human.handover);
  EXPECT_EQ(human.handover->target_app_id, kPageInboxAppId);
}

TEST(RulesTest, RenderPlaceholders) {
  EXPECT_EQ(Render("a {{x}} b {{ y }} {{z}}", {{"x", "1"}, {"y", "2"}}), "a 1 b 2 ");
  EXPECT_EQ(Render("no placeholders", {}), "no placeholders");
  EXPECT_EQ(Render("unclosed {{x", {{"x", "1"}}), "unclosed {{x");
  EXPECT_EQ(Render("hi {{name|friend}}!", {}), "hi friend!");
  EXPECT_EQ(Render("hi {{ name | friend }}!", {{"name", ""}}), "hi friend!");
  EXPECT_EQ(Render("hi {{name|friend}}!", {{"name", "Ada"}}), "hi Ada!");
}

}  // namespace
}  // namespace katy::responder

namespace katy::responder {
namespace {

InboundEvent CommentEvent(const std::string& text, const std::string& verb = "add") {
  InboundEvent event;
  event.set_kind(katy::v1::EVENT_KIND_COMMENT);
  event.set_page_id("p");
  event.set_user_id("u");
  event.set_user_name("Ana Example");
  event.set_comment_id("c1");
  event.set_mid("c1");
  event.set_post_id("p_post1");
  event.set_verb(verb);
  event.set_text(text);
  return event;
}

constexpr const char* kCommentRules = R"yaml(
rules:
  - name: price-on-post2
    when: { comment: true, post: p_post2, keywords: [price] }
    reply: "post 2"
  - name: price
    when: { comment: true, keywords: [price] }
    reply: "Hi {{first_name}}, 20 EUR (you said: {{comment_text}})"
    comment_reply: "Check your inbox, {{commenter_name}}!"
  - name: hello
    when: { keywords: [price, hello] }
    reply: "a message rule"
fallback:
  reply: "echo: {{text}}"
)yaml";

TEST(RulesTest, OnlyACommentRuleAnswersACommentAndItAnswersNothingElse) {
  const RuleSet rules = MustParse(kCommentRules);
  const Decision decision = Decide(rules, CommentEvent("what is the price?"), {}, First);
  EXPECT_EQ(decision.rule, "price");
  ASSERT_EQ(decision.messages.size(), 1u);
  EXPECT_EQ(TextOf(decision.messages[0]), "Hi Ana, 20 EUR (you said: what is the price?)");
  EXPECT_EQ(decision.public_reply, "Check your inbox, Ana Example!");
  auto on_post2 = CommentEvent("price?");
  on_post2.set_post_id("p_post2");
  EXPECT_EQ(Decide(rules, on_post2, {}, First).rule, "price-on-post2");
  // No comment rule matches: not the message rule, not the fallback.
  EXPECT_TRUE(Decide(rules, CommentEvent("nice photo"), {}, First).rule.empty());
  // A message never reaches a comment rule.
  EXPECT_EQ(DecideText(rules, "price please").rule, "hello");
}

TEST(RulesTest, EditsRemovalsThePagesOwnAndStandbyCommentsAreNeverAnswered) {
  const RuleSet rules = MustParse(kCommentRules);
  EXPECT_TRUE(IsAnswerableComment(CommentEvent("price")));
  for (const char* verb : {"edited", "remove", "hide"}) {
    EXPECT_TRUE(Decide(rules, CommentEvent("price", verb), {}, First).rule.empty()) << verb;
  }
  auto own = CommentEvent("price");
  own.set_by_page(true);
  EXPECT_TRUE(Decide(rules, own, {}, First).rule.empty());
  auto standby = CommentEvent("price");
  standby.set_standby(true);
  EXPECT_TRUE(Decide(rules, standby, {}, First).rule.empty());
  InboundEvent feed = CommentEvent("price");
  feed.set_kind(katy::v1::EVENT_KIND_FEED);
  EXPECT_TRUE(Decide(rules, feed, {}, First).rule.empty());
}

TEST(RulesTest, CommentRulesAreCheckedAtLoad) {
  EXPECT_NE(LoadError("rules:\n  - when: { comment: true }\n    reply: [a, b]\n").find("one private reply"),
            std::string::npos);
  EXPECT_NE(LoadError("rules:\n  - when: { comment: true }\n    typing: true\n    reply: a\n").find("typing"),
            std::string::npos);
  EXPECT_NE(LoadError("rules:\n  - when: { comment: true }\n    handover: inbox\n    reply: a\n").find("hand"),
            std::string::npos);
  EXPECT_NE(LoadError("rules:\n  - when: { keywords: [x] }\n    comment_reply: a\n").find("comment: true"),
            std::string::npos);
  EXPECT_NE(LoadError("rules:\n  - when: { post: p1 }\n    reply: a\n").find("comment: true"), std::string::npos);
  EXPECT_NE(LoadError("rules:\n  - when: { comment: true, postback: X }\n    reply: a\n").find("no postback"),
            std::string::npos);
  EXPECT_NE(LoadError("rules:\n  - when: { comment: true }\n").find("needs reply"), std::string::npos);
  MustParse("rules:\n  - when: { comment: true }\n    comment_reply: thanks\n");
}

// Privacy actions (docs/privacy.md): a rule forgets the person, opts them out or back in; the
// words are the rules' own, and a `page` condition makes them a page's.
TEST(RulesTest, PrivacyActionsAndAPagesOwnWords) {
  RuleSet rules = MustParse(R"yaml(
rules:
  - when: { page: "1045", regex: "^(?i)\\s*(stop|arret)\\s*$" }
    opt_out: true
    reply: "You won't hear from us again. Write START to undo."
  - when: { regex: "^(?i)\\s*(stop|unsubscribe)\\s*$" }
    opt_out: true
    reply: "Unsubscribed."
  - when: { keywords: [start] }
    opt_in: true
    reply: "Welcome back."
  - when: { keywords: ["delete my data"] }
    forget: true
    opt_out: false
    reply: "Done: we have forgotten you."
)yaml");
  auto on_page = [&](const std::string& page, const std::string& text) {
    InboundEvent event = Text(text);
    event.set_page_id(page);
    return Decide(rules, event, {}, First);
  };
  EXPECT_EQ(on_page("1045", "arret").privacy, PrivacyAction::kOptOut);
  EXPECT_EQ(on_page("1045", "arret").rule, "rule1");
  EXPECT_EQ(on_page("2000", "arret").rule, "") << "another page's words are not this one's";
  EXPECT_EQ(on_page("2000", " STOP ").rule, "rule2");
  EXPECT_EQ(on_page("2000", "please don't stop").rule, "") << "only the word alone opts out";
  EXPECT_EQ(DecideText(rules, "start").privacy, PrivacyAction::kOptIn);
  EXPECT_EQ(DecideText(rules, "please delete my data").privacy, PrivacyAction::kForget);
  EXPECT_EQ(DecideText(rules, "hello").privacy, PrivacyAction::kNone);

  EXPECT_NE(LoadError("rules:\n  - when: { keywords: [x] }\n    forget: true\n    opt_out: true\n").find("one of"),
            std::string::npos);
  EXPECT_NE(LoadError("rules:\n  - when: { keywords: [x] }\n    forget: please\n").find("true or false"),
            std::string::npos);
  EXPECT_NE(LoadError("rules:\n  - when: { page: abc }\n    reply: a\n").find("numeric"), std::string::npos);
  EXPECT_NE(LoadError("rules:\n  - when: { comment: true }\n    opt_out: true\n    reply: a\n").find("comment"),
            std::string::npos);
}

}  // namespace
}  // namespace katy::responder
