#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/result.h"
#include "katy/v1/events.pb.h"
#include "services/responder/ad_window.h"
#include "services/responder/disclosure.h"
#include "services/responder/reminders.h"

namespace re2 {
class RE2;
}

namespace katy::responder {

// One message to send, before placeholders are filled in.
struct MessageTemplate {
  std::vector<std::string> variants;  // text; one is picked at random when several
  struct QuickReply {
    std::string title;
    std::string payload;
  };
  std::vector<QuickReply> quick_replies;
  struct Button {
    std::string title;
    std::string url;      // a web_url button when set
    std::string payload;  // else a postback button
  };
  std::vector<Button> buttons;  // with text: a button template (at most 3)
  struct Card {
    std::string title;
    std::string subtitle;
    std::string image_url;
    std::vector<Button> buttons;  // at most 3
  };
  std::vector<Card> cards;  // a generic template (at most 10 cards), instead of text
  // An image, audio, video or file by URL, instead of text. Reusable ones are uploaded once by
  // the sender and sent by attachment id afterwards (docs/sending.md, "Media").
  struct Media {
    std::string type;  // image, audio, video, file
    std::string url;   // a template: placeholders allowed
    bool reusable = true;
  };
  std::optional<Media> media;
};

// Where a rule (or a skill) hands the conversation (docs/handover.md): to another app with
// pass_thread_control after its messages, or back to Katy with take_thread_control before them.
struct Handover {
  std::string target_app_id;  // the Page Inbox's id for `inbox`; empty: take the thread back
  std::string reason;         // the metadata passed with it (a template in a rule)
  bool take() const { return target_app_id.empty(); }
};

// The Page Inbox's app id: people answering as the page (docs/messenger-platform.md).
inline constexpr const char* kPageInboxAppId = "263902037430900";

// `inbox`, an app id (digits) or `back`, as a rule or a skill names a handover; nullopt when
// `target` is none of them. Pure.
std::optional<Handover> ParseHandoverTarget(const std::string& target, std::string reason);

// Hands the event to an HTTP endpoint that answers with messages (see docs/rules.md).
struct Skill {
  std::string url;
  std::chrono::milliseconds timeout{2000};
  std::vector<MessageTemplate> fallback;  // sent when the skill fails (after one retry)
};

// All conditions given must hold (AND); an empty matcher matches every event.
struct Matcher {
  std::vector<std::string> keywords;       // folded; any one of them, as a whole word
  std::vector<std::string> postbacks;      // postback payload, exactly one of these
  std::vector<std::string> quick_replies;  // quick-reply payload, exactly one of these
  // The referral's ref (an m.me link, an ad, the chat plugin; on a message, a postback or a
  // referral event), one of these; "PROMO*" is every ref that starts with PROMO.
  std::vector<std::string> refs;
  // An opt-in whose payload or ref is one of these (the same patterns).
  std::vector<std::string> optins;
  std::shared_ptr<re2::RE2> regex;    // partial match on the text; named groups are captures
  std::string attachment;             // an attachment of this type
  std::optional<std::string> state;   // the conversation's state ("" = no state)
  std::optional<bool> first_contact;  // the user's first event ever
  std::string platform;               // "instagram" or "messenger" (empty: either)
  std::vector<std::string> pages;     // the page's (or Instagram account's) id, one of these
  // `comment: true`: the rule answers comments (and visitors' posts), and only them; the other
  // conditions apply to the comment's text. `post`: only comments on these posts or media.
  bool comment = false;
  std::vector<std::string> posts;
  // `timer: NAME`: the rule answers that reminder when it falls due, and nothing else; no other
  // kind of rule answers a reminder (docs/rules.md, "Reminders").
  std::string timer;
};

// What a rule does to the person's data and consent (docs/privacy.md): `forget: true` erases
// everything Katy holds about them before the rule's replies go; `opt_out: true` stops every
// message but answers to their own later messages until `opt_in: true`.
enum class PrivacyAction { kNone, kForget, kOptOut, kOptIn };

struct Rule {
  std::string name;
  int line = 0;  // where the rule starts in its file, for errors and metrics
  Matcher when;
  std::vector<MessageTemplate> replies;
  std::map<std::string, std::string> set;        // variables to set (values are templates)
  std::optional<std::string> next_state;         // set the state ("" clears it)
  bool typing = false;                           // send typing_on before the replies
  std::optional<Skill> skill;                    // replies come from this skill (then `reply` is unused)
  bool uses_first_name = false;                  // a template mentions {{first_name}}: fetch the profile
  std::optional<Handover> handover;              // hand the conversation over (after the replies)
  std::string comment_reply;                     // a comment rule's public reply under the comment (a template)
  std::vector<ReminderRequest> remind;           // reminders to set (services/responder/reminders.h)
  std::vector<std::string> cancel;               // reminders to cancel, by name
  PrivacyAction privacy = PrivacyAction::kNone;  // forget, opt_out or opt_in (docs/privacy.md)
};

struct RuleSet {
  std::vector<Rule> rules;  // tried in file order; the first match wins
  std::optional<Rule> fallback;
  // bot_disclosure: a page's own disclosure text instead of KATY_BOT_DISCLOSURE ("" off).
  std::map<std::string, std::string> disclosure_by_page;
  // What is allowed but probably wrong ("file:line: why"), logged when the rules load.
  std::vector<std::string> warnings;
};

// What the responder knows of a conversation when it picks a reply.
struct Conversation {
  std::string state;
  std::map<std::string, std::string> vars;
  std::string first_name;
  bool first_contact = false;
  int64_t profile_checked_ms = 0;  // when the profile was last fetched (or failed); 0 never
  // Who has the thread (services/responder/thread_owner.h): the app id, empty for Katy.
  std::string owner;
  int64_t owner_since_ms = 0;
  int64_t human_last_ms = 0;
  AdWindow ad;                             // an ad's click and 7 days (services/responder/ad_window.h)
  DisclosureHistory disclosure;            // services/responder/disclosure.h
  std::vector<PendingReminder> reminders;  // services/responder/reminders.h
  int64_t opted_out_ms = 0;                // when the person opted out (0: they have not)
  int64_t kept_from_ms = 0;                // when the hash's lifetime was last renewed (ConversationRenewalDue)
};

// The result of matching one event.
struct Decision {
  std::string rule;                   // the rule's name ("fallback", "" when nothing matched)
  std::vector<std::string> messages;  // Send API `message` objects, as JSON
  std::map<std::string, std::string> set_vars;
  std::optional<std::string> next_state;
  bool typing = false;                  // send typing_on first
  const Skill* skill = nullptr;         // when set, the skill decides the messages
  std::optional<Handover> handover;     // its reason rendered
  std::string public_reply;             // a comment rule's public reply, rendered ("" for none)
  std::vector<ReminderRequest> remind;  // reminders to set, and to cancel by name
  std::vector<std::string> cancel;
  PrivacyAction privacy = PrivacyAction::kNone;
};

// Parses a rules file's YAML text. Errors carry "file:line: what is wrong" (code "rules").
// Limits Meta enforces are checked here, at load, not at send time: at most 13 quick replies,
// titles at most 20 characters, payloads at most 1000, text under 2000 characters.
Result<RuleSet> ParseRules(const std::string& yaml_text, const std::string& file_name);
// Reads and parses a file.
Result<RuleSet> LoadRulesFile(const std::string& path);

// The rule that answers an event: the first whose matcher holds, else the fallback (never for
// a referral, an opt-in or a comment); null when none does or the event must not be answered
// (echoes, deliveries, reads, standby, page-level events, comments that are not new or are the
// page's own: IsAnswerableComment). Fills `captures` with the regex's named groups. Pure, thread-safe.
const Rule* FindRule(const RuleSet& rules, const katy::v1::InboundEvent& event, const Conversation& conversation,
                     std::map<std::string, std::string>* captures);

// Renders a rule's replies and actions for an event. `pick(n)` returns a number in [0, n) for
// random variants. Pure, thread-safe.
Decision ApplyRule(const Rule& rule, const katy::v1::InboundEvent& event, const Conversation& conversation,
                   std::map<std::string, std::string> captures, const std::function<size_t(size_t)>& pick);

// FindRule then ApplyRule; an empty Decision when no rule answers.
Decision Decide(const RuleSet& rules, const katy::v1::InboundEvent& event, const Conversation& conversation,
                const std::function<size_t(size_t)>& pick);

// Renders message templates (for a skill's fallback), with the same placeholders as replies.
std::vector<std::string> RenderMessages(const std::vector<MessageTemplate>& templates,
                                        const katy::v1::InboundEvent& event, const Conversation& conversation,
                                        const std::function<size_t(size_t)>& pick);

// True for the events a person sends, which open the messaging window and which any rule
// (the fallback too) may answer: messages and postbacks. Referrals and opt-ins are answered
// only by rules with a `ref` or `optin` condition, within the window of the last message.
bool IsReplyable(const katy::v1::InboundEvent& event);

// Whether a rule of `rules` answers comments on `platform` ("messenger" or "instagram"): the
// page or account must then send its comments' webhook field (katyctl subscriptions). Pure.
bool AnswersComments(const RuleSet& rules, const std::string& platform);

// A comment (or a visitor's post) a comment rule may answer with a private reply: just added
// (not an edit, a removal or a hide), by someone other than the page, not in standby.
bool IsAnswerableComment(const katy::v1::InboundEvent& event);

// Fills {{name}} placeholders: regex captures first, then text, first_name, ref, and for a
// comment comment_text and commenter_name, then variables.
// {{name|default}} gives the default when the value is unknown or empty; otherwise an unknown
// name becomes "". Pure.
std::string Render(const std::string& text, const std::map<std::string, std::string>& values);

}  // namespace katy::responder
