#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "common/config.h"
#include "common/result.h"
#include "tools/emulator/comment_book.h"
#include "tools/emulator/fault_injector.h"
#include "tools/emulator/message_store.h"
#include "tools/emulator/webhook_delivery.h"

namespace Pistache::Http {
class Endpoint;
}

namespace katy::emulator {

struct EmulatorOptions {
  config::HostPort address;
  std::string app_secret;                   // signs the webhooks it delivers
  std::string ingress_url;                  // where webhooks go, e.g. http://127.0.0.1:8080/webhook
  std::string page_token;                   // when non-empty, the only access token the Send API accepts
  std::string faults_json;                  // initial faults (fault_injector.h), empty for none
  int threads = 8;                          // HTTP worker threads (an injected hang holds one)
  size_t webhook_batch = 1;                 // messaging items per webhook POST at most
  int webhook_workers = 1;                  // webhook POSTs in flight at once (1 keeps everything in order)
  bool echoes = false;                      // send the bot an echo webhook for every message it sends
  std::string app_id = "1517776481860111";  // the app id in echoes
  std::string chat_page_id = "1045";        // the page the chat page talks to
  // The Instagram account the chat page talks to as an Instagram user (webhooks with
  // "object": "instagram", Instagram's Send API limits); /_emulator/say adds others.
  std::string chat_instagram_id = "17841400000000001";
  std::vector<std::string> metrics_urls;  // services' /metrics, for the chat page's queue panel
  // Called for every message the Send API accepts (load mode matches replies with it); on an
  // HTTP thread, so it must be thread-safe and quick.
  std::function<void(const RecordedMessage&)> on_message;
};

// Meta, as far as Katy can tell, over HTTP:
//   POST /v{N}/{page}/messages, /v{N}/me/messages   the Send API (validated, recorded)
//   GET  /_emulator/messages?psid=ID                 what the Send API accepted for a user
//   DELETE /_emulator/messages                       forget every recorded message
//   POST /_emulator/say {"page","psid","text"}       a user's message, delivered as a signed
//                                                    Meta-form webhook to the ingress URL (queued,
//                                                    batched, retried on non-200 like Meta);
//                                                    "platform":"instagram" makes "page" an
//                                                    Instagram account and the webhook Instagram's
//   POST /_emulator/comment {"page","psid","text"}   a comment on the page's post (Instagram:
//                                                    the account's media), as Meta's signed
//                                                    `feed` / `comments` webhook (comment_book.h)
//   GET  /_emulator/comments?page=ID                 the comments and the replies they got
//   POST /v{N}/{comment}/comments, /replies          a public reply under a comment
//                                                    (the Send API takes recipient.comment_id
//                                                    once per comment, within 7 days)
//   POST /_emulator/read, /_emulator/delivered {"page","psid"}   read / delivery receipts
//                                                    (Instagram: reads by mid, no deliveries)
//   GET  /v{N}/{psid}?fields=...                     the user profile API
//   POST /_emulator/profiles {"psid","first_name","last_name"}   names a user
//   GET|POST|DELETE /v{N}/me/messenger_profile        the Messenger Profile (Meta's limits)
//   GET|POST /v{N}/{page}/subscribed_apps            the app's webhook fields on the page
//   POST /v{N}/{page}/message_attachments            the Attachment Upload API (GET
//                                                    /_emulator/attachments lists the uploads)
//   POST /v{N}/{page}/pass_thread_control, take_thread_control, GET thread_owner   handover
//   POST /_emulator/inbox/reply {"page","psid","text"}  a person answers from the Page Inbox
//                                                    (an echo from the inbox app reaches the bot)
//   POST /_emulator/inbox/pass, /_emulator/inbox/take {"page","psid"}   the inbox gives the
//                                                    thread back / takes it (handover webhooks)
//   GET  /_emulator/inbox/owner?page=&psid=          "bot", "inbox" or another app id
//   GET|POST|DELETE /_emulator/faults                read, set or clear injected faults
//   GET  /                                           the chat page (a person talks to the bot)
//   GET  /_emulator/config, /_emulator/queues        the chat page's settings and queue depth
class EmulatorServer {
 public:
  static Result<std::unique_ptr<EmulatorServer>> Start(const EmulatorOptions& options);
  ~EmulatorServer();
  int port() const { return port_; }
  MessageStore& store() { return *store_; }
  CommentBook& comments() { return *comments_; }
  ProfileBook& profiles() { return *profiles_; }
  FaultInjector& faults() { return *faults_; }
  WebhookDelivery& webhooks() { return *webhooks_; }
  void Shutdown();

 private:
  EmulatorServer() = default;
  std::shared_ptr<MessageStore> store_;
  std::shared_ptr<CommentBook> comments_;
  std::shared_ptr<ProfileBook> profiles_;
  std::shared_ptr<FaultInjector> faults_;
  std::shared_ptr<WebhookDelivery> webhooks_;
  std::shared_ptr<Pistache::Http::Endpoint> endpoint_;
  int port_ = 0;
};

}  // namespace katy::emulator
