#pragma once

#include <ostream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/result.h"

// katyctl's page setup: the page's Messenger Profile from a YAML file, and the page's webhook
// subscriptions, through the Graph API with the page's own token. The Graph URL and the tokens
// come from the sender's settings (KATY_GRAPH_URL, KATY_PAGE_TOKEN, KATY_PAGE_TOKENS_FILE,
// KATY_APP_SECRET with KATY_APPSECRET_PROOF=1); KATY_APP_ID names the app among the page's
// subscribed apps. Meta's rules are in common/page_setup.h.
namespace katy::ctl {

// The Messenger Profile a YAML file describes, as the JSON body Meta takes: mappings become
// objects, sequences arrays, `true`/`false` booleans, every other scalar a string (payloads stay
// text). Error "invalid", with the line, when the YAML does not parse or is not a mapping.
// Meta's limits are checked apart (MessengerProfileError). Pure.
Result<nlohmann::json> ProfileFromYaml(const std::string& text);

// The profile as YAML that ProfileFromYaml reads back to the same JSON. Pure.
std::string ProfileToYaml(const nlohmann::json& profile);

// What setting `desired` over `current` changes: one line per field of `desired`, in its order:
// "= field" when it is the same, "+ field: <new>" when unset, "~ field: <old> -> <new>" when
// different (values as compact JSON). Fields `desired` leaves out are not touched. Pure.
std::vector<std::string> ProfileChanges(const nlohmann::json& current, const nlohmann::json& desired);

// The fields of `wanted` (common/page_setup.h, WantedWebhookFields) that `subscribed` lacks, in
// that order. Pure.
std::vector<std::string> MissingSubscriptions(const std::vector<std::string>& subscribed,
                                              const std::vector<std::string>& wanted);

// `katyctl profile get [PAGE]`, `profile apply FILE [PAGE] [--dry-run]`, `subscriptions check
// [PAGE]`, `subscriptions fix [PAGE]`; words[0] is "profile" or "subscriptions". PAGE may be
// left out when one page is configured. PAGE may be an Instagram account of the tokens file; or
// `platform` "instagram" names the Instagram account linked to the page PAGE (the profile calls
// carry platform=instagram). Subscriptions want the comments' field (`feed`; `comments` and
// `live_comments` on Instagram) when the rules at KATY_RULES answer comments there. Returns the exit status: 0 done
// (check: nothing missing), 1 failed (check: fields missing), 2 usage.
int RunPageSetup(const std::vector<std::string>& words, bool dry_run, const std::string& platform, std::ostream& out,
                 std::ostream& err);

}  // namespace katy::ctl
