#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace katy::emulator {

// One message the emulated Send API accepted, or one thread-control call of the bot's.
struct RecordedMessage {
  std::string message_id;  // the mid returned to the bot
  std::string page_id;
  std::string recipient;  // PSID or user_ref
  std::string messaging_type;
  std::string message_json;  // empty for sender actions
  std::string sender_action;
  int64_t received_at_ms = 0;
  uint64_t seq = 0;  // arrival order across all users
  // The app that sent it: empty for the bot (the Send API), kPageInboxAppId for a person
  // answering in the Page Inbox.
  std::string app_id;
  // A Handover Protocol call the bot made: "pass_thread_control" (to target_app_id) or
  // "take_thread_control". Kept with the messages so that their order at Meta can be checked.
  std::string thread_control;
  std::string target_app_id;
  std::string comment_id;  // a private reply: the comment (or visitor's post) it answers
};

// The Page Inbox's app id: Meta's own inbox, where people answer as the page.
inline constexpr const char* kPageInboxAppId = "263902037430900";

// Everything the emulated Send API accepted, in arrival order. Thread-safe.
class MessageStore {
 public:
  // Stores the message, assigning message_id and seq; returns the stored copy.
  RecordedMessage Add(RecordedMessage message);
  // The messages for one recipient (every recipient when empty), in arrival order.
  std::vector<RecordedMessage> For(const std::string& recipient) const;
  size_t size() const;
  void Clear();

 private:
  mutable std::mutex mutex_;
  std::vector<RecordedMessage> messages_;
  uint64_t next_seq_ = 1;
};

// The emulated users' profiles (Graph `GET /{psid}`). A user nobody named gets a stable name
// derived from the PSID, like a real account would have. Thread-safe.
class ProfileBook {
 public:
  struct Profile {
    std::string first_name;
    std::string last_name;
  };
  void Set(const std::string& psid, Profile profile);
  Profile Get(const std::string& psid) const;

 private:
  mutable std::mutex mutex_;
  std::map<std::string, Profile> profiles_;
};

// Each page's Messenger Profile (get_started, greeting, persistent_menu, ...). Thread-safe.
class MessengerProfiles {
 public:
  void Merge(const std::string& page, const nlohmann::json& fields);
  // The requested fields that are set ({} when none); every field when `fields` is empty.
  nlohmann::json Get(const std::string& page, const std::vector<std::string>& fields) const;
  void Delete(const std::string& page, const std::vector<std::string>& fields);

 private:
  mutable std::mutex mutex_;
  std::map<std::string, nlohmann::json> profiles_;
};

// Each page's webhook subscriptions for the app (Graph `/{page}/subscribed_apps`). A page
// starts with only messages and messaging_postbacks, the way a page set up by hand often is,
// so that `katyctl subscriptions check` has something to find. Thread-safe.
class PageSubscriptions {
 public:
  std::vector<std::string> Get(const std::string& page) const;
  void Set(const std::string& page, std::vector<std::string> fields);

 private:
  mutable std::mutex mutex_;
  std::map<std::string, std::vector<std::string>> fields_;
};

// Media saved through the Attachment Upload API: each upload gets a new attachment_id, which
// the Send API then accepts instead of a url. Thread-safe.
class AttachmentStore {
 public:
  struct Upload {
    std::string attachment_id;
    std::string page;
    std::string type;
    std::string url;
  };
  std::string Add(const std::string& page, const std::string& type, const std::string& url);
  bool Known(const std::string& attachment_id) const;
  std::vector<Upload> All() const;

 private:
  mutable std::mutex mutex_;
  std::vector<Upload> uploads_;
};

// Who has each conversation's thread (handover): the bot unless an app took it or was passed
// it. Thread-safe.
class ThreadOwners {
 public:
  // The owner's app id; empty for the bot.
  std::string Get(const std::string& page, const std::string& psid) const;
  void Set(const std::string& page, const std::string& psid, std::string app_id);

 private:
  mutable std::mutex mutex_;
  std::map<std::pair<std::string, std::string>, std::string> owners_;
};

// The Instagram professional accounts the emulator plays, next to the pages: their webhooks
// have `"object": "instagram"` and their Send API keeps Instagram's limits. Thread-safe.
class InstagramAccounts {
 public:
  void Add(const std::string& account_id);
  bool Contains(const std::string& account_id) const;

 private:
  mutable std::mutex mutex_;
  std::set<std::string> ids_;
};

// The people who wrote to the emulator's pages, by the app-scoped id Meta would know them by
// in a data deletion request: each person (PSID) gets one, and it names their PSIDs on every
// page they wrote to (what Graph's ids_for_pages answers). Thread-safe.
class AppScopedUsers {
 public:
  // `psid` wrote to `page`.
  void Wrote(const std::string& page, const std::string& psid);
  // The person's app-scoped id: digits, unrelated to the PSID's.
  static std::string IdOf(const std::string& psid);
  // Their (page, PSID) pairs, oldest first; empty for an id nobody has.
  std::vector<std::pair<std::string, std::string>> PagesOf(const std::string& app_scoped_id) const;

 private:
  mutable std::mutex mutex_;
  std::map<std::string, std::vector<std::pair<std::string, std::string>>> pages_;
};

}  // namespace katy::emulator
