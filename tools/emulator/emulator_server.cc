#include "tools/emulator/emulator_server.h"

#include <pistache/endpoint.h>
#include <pistache/http.h>
#include <pistache/peer.h>

#include <sys/socket.h>

#include <cerrno>
#include <chrono>
#include <future>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>
#include <sstream>
#include <thread>

#include "common/clock.h"
#include "common/hmac.h"
#include "common/http/http_client.h"
#include "common/http/pistache_util.h"
#include "common/instagram_limits.h"
#include "common/log.h"
#include "common/page_setup.h"
#include "common/signed_request.h"
#include "tools/emulator/chat_page.h"
#include "tools/emulator/comment_book.h"
#include "tools/emulator/send_api.h"
#include "tools/emulator/webhook_builder.h"

namespace katy::emulator {
namespace {

using namespace Pistache;
using nlohmann::json;

std::vector<std::string> SplitPath(const std::string& path) {
  std::vector<std::string> parts;
  size_t start = 1;
  while (start <= path.size()) {
    size_t slash = path.find('/', start);
    if (slash == std::string::npos) slash = path.size();
    if (slash > start) parts.push_back(path.substr(start, slash - start));
    start = slash + 1;
  }
  return parts;
}

json ToJson(const RecordedMessage& message) {
  json out{{"message_id", message.message_id},
           {"page", message.page_id},
           {"recipient", message.recipient},
           {"seq", message.seq},
           {"received_at_ms", message.received_at_ms}};
  if (!message.messaging_type.empty()) out["messaging_type"] = message.messaging_type;
  if (!message.message_json.empty()) out["message"] = json::parse(message.message_json, nullptr, false);
  if (!message.sender_action.empty()) out["sender_action"] = message.sender_action;
  if (!message.app_id.empty()) out["app_id"] = message.app_id;
  if (!message.thread_control.empty()) out["thread_control"] = message.thread_control;
  if (!message.target_app_id.empty()) out["target_app_id"] = message.target_app_id;
  if (!message.comment_id.empty()) out["comment_id"] = message.comment_id;
  return out;
}

struct Reply {
  Reply() = default;
  Reply(int status_code, std::string text, UsageHeaders usage_headers = {})
      : status(status_code), body(std::move(text)), usage(std::move(usage_headers)) {}
  int status = 200;
  std::string body;
  UsageHeaders usage;  // sent as X-App-Usage / X-Business-Use-Case-Usage when set
};

constexpr char kAppUsageName[] = "X-App-Usage";
constexpr char kBusinessUsageName[] = "X-Business-Use-Case-Usage";
using AppUsageHeader = http::StringHeader<kAppUsageName>;
using BusinessUsageHeader = http::StringHeader<kBusinessUsageName>;

// Whether the client of this request has hung up. Pistache 0.0.5 writes a response to the
// connection's descriptor number after the handler returns; when the client died meanwhile (a
// killed sender, a slow call under a latency fault), the hang-up may be handled first, the
// descriptor closed and handed to a new client's connection, which then reads this response
// as the answer to its own request: the chaos test saw a sender's Send API answers shifted by
// one, and a message taken for delivered that Meta never got. Meta answers nobody once the
// client is gone, so neither does the emulator. Called on the connection's own I/O thread,
// where the descriptor is still this connection's.
bool ClientGone(Http::ResponseWriter& response) {
  std::shared_ptr<Tcp::Peer> peer;
  try {
    peer = response.peer();
  } catch (const std::exception&) {
    return true;  // already disconnected
  }
  char byte = 0;
  const ssize_t n = recv(peer->fd(), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
  return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
}

// Why a call that changes the emulator's state is refused, or "" to serve it. The emulator
// signs webhooks with the app secret, so a web page in the operator's browser must not be able
// to drive it: a cross-site page can POST text/plain without asking first, but not
// application/json (that needs a CORS preflight, which the emulator never grants), and a
// browser names the page's origin, which must be the emulator's own.
std::string CrossSiteRefusal(const Http::Request& request) {
  const auto method = request.method();
  if (request.resource().rfind("/_emulator/", 0) != 0 || method == Http::Method::Get || method == Http::Method::Head) {
    return "";
  }
  // POST is the one state-changing method a cross-site page may send without a preflight.
  auto type = request.headers().tryGet<Http::Header::ContentType>();
  if (method == Http::Method::Post && (!type || type->mime() != MIME(Application, Json))) {
    return "the body must be sent as Content-Type: application/json";
  }
  auto origin = request.headers().tryGetRaw("Origin");
  if (!origin) return "";  // not a browser, or a same-origin GET-like request
  auto host = request.headers().tryGet<Http::Header::Host>();
  const std::string own = host ? "http://" + host->host() + ":" + host->port().toString() : "";
  const std::string own_default_port = host ? "http://" + host->host() : "";
  if (origin->value() == own || (host && host->port() == 80 && origin->value() == own_default_port)) return "";
  return "calls from another origin are refused";
}

// Send API calls a latency fault holds back, each answered from a timer on the I/O thread that
// read it (Pistache's per-request Timeout), never by sleeping in that thread: a few I/O
// threads hold thousands of slow calls, like Meta does. Pistache gives each I/O thread a copy
// of the handler, so each copy holds its own thread's calls and needs no lock; a copy starts
// empty.
class HeldCalls {
 public:
  struct Call {
    std::string page;
    Http::Request request;
    FaultInjector::Verdict fault;
    std::weak_ptr<Tcp::Peer> peer;
    // Holds the armed timer: Pistache disarms it when its writer goes.
    std::unique_ptr<Http::ResponseWriter> writer;
  };

  explicit HeldCalls(std::shared_ptr<FaultInjector> faults) : faults_(std::move(faults)) {}
  HeldCalls(const HeldCalls& other) : faults_(other.faults_) {}
  HeldCalls& operator=(const HeldCalls&) = delete;

  // Answers `request` in `fault.delay_ms`: Pistache then calls the handler's onTimeout.
  void Hold(std::string page, const Http::Request& request, Http::ResponseWriter response,
            FaultInjector::Verdict fault) {
    // A sweep walks every held call: once per kSweepEvery holds, not on each (thousands may be held).
    if (++holds_since_sweep_ >= kSweepEvery) {
      ForgetTheGone();
      holds_since_sweep_ = 0;
    }
    auto peer = response.peer();
    Call call{std::move(page), request, std::move(fault), peer,
              std::make_unique<Http::ResponseWriter>(std::move(response))};
    call.writer->timeoutAfter(std::chrono::milliseconds(call.fault.delay_ms));  // armed where it lives
    // A gone client's call not swept yet, whose Peer's address this new one took.
    if (held_.erase(peer.get()) > 0) faults_->HeldChanged(-1);
    held_[peer.get()] = std::move(call);
    faults_->HeldChanged(+1);
  }

  // The call whose timer fired for this connection, if any. Its writer (whose timer is running
  // this very callback) is kept until the next call, when Pistache is done with it.
  std::optional<Call> TakeDue(Http::ResponseWriter& response) {
    retired_.clear();
    std::shared_ptr<Tcp::Peer> peer;
    try {
      peer = response.peer();
    } catch (const std::exception&) {
      return std::nullopt;
    }
    auto it = held_.find(peer.get());
    if (it == held_.end()) return std::nullopt;
    Call call = std::move(it->second);
    held_.erase(it);
    faults_->HeldChanged(-1);
    retired_.push_back(std::move(call.writer));
    return call;
  }

 private:
  // Calls whose client hung up: Pistache never fires their timers.
  void ForgetTheGone() {
    for (auto it = held_.begin(); it != held_.end();) {
      if (!it->second.peer.expired()) {
        ++it;
        continue;
      }
      it = held_.erase(it);
      faults_->HeldChanged(-1);
    }
  }

  static constexpr int kSweepEvery = 256;
  std::shared_ptr<FaultInjector> faults_;
  std::map<Tcp::Peer*, Call> held_;
  int holds_since_sweep_ = 0;
  std::vector<std::unique_ptr<Http::ResponseWriter>> retired_;
};

class EmulatorHandler : public Http::Handler {
 public:
  HTTP_PROTOTYPE(EmulatorHandler)
  EmulatorHandler(std::shared_ptr<MessageStore> store, std::shared_ptr<ProfileBook> profiles,
                  std::shared_ptr<FaultInjector> faults, std::shared_ptr<WebhookDelivery> webhooks,
                  std::shared_ptr<const EmulatorOptions> options, std::shared_ptr<std::atomic<uint64_t>> mid_counter,
                  std::shared_ptr<CommentBook> comments)
      : store_(std::move(store)),
        comments_(std::move(comments)),
        profiles_(std::move(profiles)),
        faults_(std::move(faults)),
        webhooks_(std::move(webhooks)),
        options_(std::move(options)),
        mid_counter_(std::move(mid_counter)) {
    instagram_->Add(options_->chat_instagram_id);
  }

  void onRequest(const Http::Request& request, Http::ResponseWriter response) override {
    http::KeepAliveUnlessClosed(request, response);
    if (request.resource() == "/" && request.method() == Http::Method::Get) {
      response.headers().add<Http::Header::ContentType>(MIME(Text, Html));
      response.send(Http::Code::Ok, ChatPageHtml());
      return;
    }
    const std::string refusal = CrossSiteRefusal(request);
    if (!refusal.empty()) return Answer(response, {403, json{{"error", {{"message", refusal}}}}.dump()});
    if (auto page = SendApiPage(request)) return ServeSendApi(*page, request, std::move(response));
    Answer(response, Route(request));
  }

  // A Send API call a latency fault held back is due.
  void onTimeout(const Http::Request&, Http::ResponseWriter response) override {
    auto call = held_.TakeDue(response);
    if (!call) return;  // not ours: Pistache's own timeouts are not used
    http::KeepAliveUnlessClosed(call->request, response);
    Answer(response, SendApi(call->page, call->request, call->fault));
  }

 private:
  void Answer(Http::ResponseWriter& response, const Reply& reply) {
    if (ClientGone(response)) return;
    response.headers().add<Http::Header::ContentType>(MIME(Application, Json));
    if (!reply.usage.app_usage.empty()) {
      response.headers().add<AppUsageHeader>(reply.usage.app_usage);
      response.headers().add<BusinessUsageHeader>(reply.usage.business_use_case_usage);
    }
    response.send(static_cast<Http::Code>(reply.status), reply.body);
  }

  // The page of a Send API call (POST /v{N}/{page}/messages), else nullopt.
  static std::optional<std::string> SendApiPage(const Http::Request& request) {
    auto parts = SplitPath(request.resource());
    if (parts.size() == 3 && parts[0].size() > 1 && parts[0][0] == 'v' && parts[2] == "messages" &&
        request.method() == Http::Method::Post) {
      return parts[1];
    }
    return std::nullopt;
  }

  // The call's fault is drawn when it arrives; a latency holds its answer back on a timer.
  void ServeSendApi(const std::string& page, const Http::Request& request, Http::ResponseWriter response) {
    Reply refusal;
    if (!TokenAccepted(request, &refusal)) return Answer(response, refusal);
    auto fault = faults_->Next(page, WallClockMs());
    if (fault.delay_ms > 0) return held_.Hold(page, request, std::move(response), std::move(fault));
    Answer(response, SendApi(page, request, fault));
  }

  Reply Route(const Http::Request& request) {
    const std::string& path = request.resource();
    auto parts = SplitPath(path);
    const auto method = request.method();
    if (parts.size() == 3 && parts[0].size() > 1 && parts[0][0] == 'v' && parts[2] == "messenger_profile") {
      return MessengerProfile(parts[1], request);
    }
    if (parts.size() == 3 && parts[0].size() > 1 && parts[0][0] == 'v' && parts[2] == "message_attachments" &&
        method == Http::Method::Post) {
      return UploadAttachment(parts[1], request);
    }
    if (path == "/_emulator/attachments" && method == Http::Method::Get) {
      json list = json::array();
      for (const auto& upload : attachments_->All()) {
        list.push_back({{"attachment_id", upload.attachment_id},
                        {"page", upload.page},
                        {"type", upload.type},
                        {"url", upload.url}});
      }
      return {200, list.dump()};
    }
    if (parts.size() == 3 && parts[0].size() > 1 && parts[0][0] == 'v' &&
        (parts[2] == "pass_thread_control" || parts[2] == "take_thread_control" || parts[2] == "thread_owner")) {
      return ThreadControl(parts[1] == "me" ? options_->chat_page_id : parts[1], parts[2], request);
    }
    if (path == "/_emulator/inbox/reply" && method == Http::Method::Post) return InboxReply(request.body());
    if (path == "/_emulator/inbox/owner" && method == Http::Method::Get) {
      const std::string owner =
          thread_owners_->Get(request.query().get("page").value_or(""), request.query().get("psid").value_or(""));
      return {200, json{{"owner", owner.empty() ? "bot" : owner == kPageInboxAppId ? "inbox" : owner}}.dump()};
    }
    if (path == "/_emulator/inbox/pass" && method == Http::Method::Post) return InboxHandover(request.body(), true);
    if (path == "/_emulator/inbox/take" && method == Http::Method::Post) return InboxHandover(request.body(), false);
    if (parts.size() == 3 && parts[0].size() > 1 && parts[0][0] == 'v' && parts[2] == "subscribed_apps") {
      return SubscribedApps(parts[1] == "me" ? options_->chat_page_id : parts[1], request);
    }
    if (path == "/_emulator/messages" && method == Http::Method::Get) {
      json list = json::array();
      for (const auto& message : store_->For(request.query().get("psid").value_or(""))) {
        list.push_back(ToJson(message));
      }
      return {200, list.dump()};
    }
    if (path == "/_emulator/messages" && method == Http::Method::Delete) {
      store_->Clear();
      return {200, R"({"cleared":true})"};
    }
    if (path == "/_emulator/say" && method == Http::Method::Post) return Say(request.body());
    if (path == "/_emulator/comment" && method == Http::Method::Post) return WriteComment(request.body());
    if (path == "/_emulator/comments" && method == Http::Method::Get) {
      json list = json::array();
      for (const auto& comment : comments_->OnPage(request.query().get("page").value_or(""))) {
        list.push_back(CommentJson(comment));
      }
      return {200, list.dump()};
    }
    if (parts.size() == 3 && parts[0].size() > 1 && parts[0][0] == 'v' &&
        (parts[2] == "comments" || parts[2] == "replies") && method == Http::Method::Post) {
      return PublicReply(parts[1], request);
    }
    if (path == "/_emulator/faults") return Faults(method, request.body());
    if (path == "/_emulator/config") {
      return {200, json{{"page", options_->chat_page_id}, {"instagram", options_->chat_instagram_id}}.dump()};
    }
    if (path == "/_emulator/queues") return Queues();
    if (path == "/_emulator/read" && method == Http::Method::Post) return Receipt(request.body(), false);
    if (path == "/_emulator/delivered" && method == Http::Method::Post) return Receipt(request.body(), true);
    if (path == "/_emulator/profiles" && method == Http::Method::Post) return NameUser(request.body());
    if (path == "/_emulator/delete-user" && method == Http::Method::Post) return DeleteUser(request.body());
    if (path == "/_emulator/unsend" && method == Http::Method::Post) return Unsend(request.body());
    if (parts.size() == 3 && parts[0].size() > 1 && parts[0][0] == 'v' && parts[2] == "ids_for_pages" &&
        method == Http::Method::Get) {
      return IdsForPages(parts[1], request);
    }
    if (parts.size() == 2 && parts[0].size() > 1 && parts[0][0] == 'v' && method == Http::Method::Get &&
        parts[1].rfind('_', 0) != 0) {
      return UserProfile(parts[1], request);
    }
    if (path == "/_emulator/health") return {200, R"({"ok":true})"};
    return {404, R"({"error":{"message":"Unknown path components","type":"OAuthException","code":2500}})"};
  }

  // Queue depth for the chat page, from the first service whose /metrics answers (each service
  // exports the same queue-depth gauges).
  Reply Queues() {
    thread_local http::Client client(std::chrono::milliseconds(800), std::chrono::milliseconds(300));
    for (const auto& url : options_->metrics_urls) {
      auto response = client.Get(url);
      if (response && response->status == 200) return {200, QueueTotalsFromMetrics(response->body).dump()};
    }
    return {200, R"({"available":false})"};
  }

  Reply Faults(Http::Method method, const std::string& body) {
    if (method == Http::Method::Delete) {
      faults_->Set(FaultConfig{});
    } else if (method == Http::Method::Post) {
      auto parsed = ParseFaults(body);
      if (!parsed) return {400, json{{"error", parsed.error().message}}.dump()};
      faults_->Set(*parsed);
    }
    json answer = json::parse(FaultsToJson(faults_->Get()));
    for (const auto& [code, count] : faults_->InjectedCounts()) answer["injected"][std::to_string(code)] = count;
    answer["slow_calls"] = faults_->SlowCalls();
    answer["most_held_calls"] = faults_->MostHeld();
    return {200, answer.dump()};
  }

  // ?platform=instagram: the Instagram account's profile (its own, kept apart from the page's).
  Reply MessengerProfile(const std::string& page_in_path, const Http::Request& request) {
    Reply refusal;
    if (!TokenAccepted(request, &refusal)) return refusal;
    const bool instagram = request.query().get("platform").value_or("") == "instagram";
    const std::string page = instagram ? page_in_path + ":instagram" : page_in_path;
    if (request.method() == Http::Method::Get) {
      std::vector<std::string> fields;
      std::stringstream list(request.query().get("fields").value_or(""));
      for (std::string field; std::getline(list, field, ',');) fields.push_back(field);
      json data = json::array();
      json found = messenger_profiles_->Get(page, fields);
      if (!found.empty()) data.push_back(found);
      return {200, json{{"data", data}}.dump()};
    }
    json body = json::parse(request.body(), nullptr, false);
    if (request.method() == Http::Method::Delete) {
      if (!body.is_object() || !body.contains("fields") || !body["fields"].is_array()) {
        GraphError error{400, 100, 0, "OAuthException", "(#100) param fields must be a list of field names"};
        return {400, error.Body()};
      }
      messenger_profiles_->Delete(page, body["fields"].get<std::vector<std::string>>());
      return {200, R"({"result":"success"})"};
    }
    if (request.method() != Http::Method::Post) return {405, R"({"error":"GET, POST or DELETE"})"};
    if (instagram) {
      if (auto error = InstagramProfileError(body)) {
        return {400, GraphError{400, 100, 0, "OAuthException", "(#100) " + *error}.Body()};
      }
      body.erase("platform");
    } else if (auto error = ValidateMessengerProfile(body)) {
      return {error->http_status, error->Body()};
    }
    messenger_profiles_->Merge(page, body);
    return {200, R"({"result":"success"})"};
  }

  // GET lists the app's subscription ({"data": []} when it has none); POST replaces its fields
  // with subscribed_fields (comma-separated), each one a Page webhook field Meta knows.
  Reply SubscribedApps(const std::string& page, const Http::Request& request) {
    Reply refusal;
    if (!TokenAccepted(request, &refusal)) return refusal;
    if (request.method() == Http::Method::Get) {
      const auto fields = subscriptions_->Get(page);
      json data = json::array();
      if (!fields.empty()) {
        data.push_back({{"category", "Business"},
                        {"link", "https://katy.example/emulator"},
                        {"name", "Katy"},
                        {"id", options_->app_id},
                        {"subscribed_fields", fields}});
      }
      return {200, json{{"data", data}}.dump()};
    }
    if (request.method() != Http::Method::Post) return {405, R"({"error":"GET or POST"})"};
    auto listed = request.query().get("subscribed_fields");
    if (!listed || listed->empty()) {
      GraphError error{400, 100, 0, "OAuthException", "(#100) The parameter subscribed_fields is required"};
      return {400, error.Body()};
    }
    std::vector<std::string> fields;
    std::stringstream list(http::UrlDecode(*listed));
    const bool instagram = instagram_->Contains(page);
    for (std::string field; std::getline(list, field, ',');) {
      if (instagram ? !IsInstagramWebhookField(field) : !IsMessengerWebhookField(field) && field != "feed") {
        GraphError error{
            400, 100, 0, "OAuthException",
            "(#100) Param subscribed_fields[" + std::to_string(fields.size()) + "] must be a Page webhook field"};
        return {400, error.Body()};
      }
      fields.push_back(field);
    }
    subscriptions_->Set(page, std::move(fields));
    return {200, R"({"success":true})"};
  }

  // The Attachment Upload API: {"message":{"attachment":{"type","payload":{"url","is_reusable"}}}}
  // answers {"attachment_id"} for image, audio, video or file from a url.
  Reply UploadAttachment(const std::string& page, const Http::Request& request) {
    Reply refusal;
    if (!TokenAccepted(request, &refusal)) return refusal;
    const json body = json::parse(request.body(), nullptr, false);
    const json attachment = body.is_object() && body.contains("message") && body["message"].is_object()
                                ? body["message"].value("attachment", json())
                                : json();
    const std::string type = attachment.is_object() ? attachment.value("type", "") : "";
    const json payload = attachment.is_object() ? attachment.value("payload", json::object()) : json::object();
    if (type != "image" && type != "audio" && type != "video" && type != "file") {
      GraphError error{400, 100, 0, "OAuthException",
                       "(#100) param message[attachment][type] must be image, audio, video or file"};
      return {400, error.Body()};
    }
    if (!payload.is_object() || !payload.contains("url") || !payload["url"].is_string()) {
      GraphError error{400, 100, 0, "OAuthException", "(#100) param message[attachment][payload][url] is required"};
      return {400, error.Body()};
    }
    return {200, json{{"attachment_id", attachments_->Add(page, type, payload["url"].get<std::string>())}}.dump()};
  }

  // A Send API call whose token was accepted and whose fault was drawn (any latency is over).
  Reply SendApi(const std::string& page_in_path, const Http::Request& request, const FaultInjector::Verdict& fault) {
    const int64_t now = WallClockMs();
    // Every answer carries the usage headers, as Meta's do.
    const UsageHeaders usage =
        MakeUsageHeaders(page_in_path, faults_->CallsLastSecond(page_in_path, now), faults_->LimitFor(page_in_path),
                         fault.error && fault.error->code == 613);
    if (fault.error) return {fault.error->http_status, fault.error->Body(), usage};
    auto content_type = request.headers().tryGet<Http::Header::ContentType>();
    const bool form = content_type && content_type->mime() == MIME(Application, FormUrlEncoded);
    auto verdict = ValidateSend(form ? FormToJson(request.body()) : request.body());
    if (auto* error = std::get_if<GraphError>(&verdict)) return {error->http_status, error->Body(), usage};
    const auto& send = std::get<AcceptedSend>(verdict);
    if (auto unknown = UnknownAttachmentId(send.message_json)) return {unknown->http_status, unknown->Body(), usage};
    if (instagram_->Contains(page_in_path)) {
      if (auto refused = InstagramRefusal(send)) return {refused->http_status, refused->Body(), usage};
    }
    RecordedMessage message;
    if (!send.comment_id.empty()) {
      // A private reply reaches the comment's author, once (CommentBook::TakePrivateReply).
      auto taken = comments_->TakePrivateReply(send.comment_id, now);
      if (auto* error = std::get_if<GraphError>(&taken)) return {error->http_status, error->Body(), usage};
      message.recipient = std::get<Comment>(taken).author;
      message.comment_id = send.comment_id;
    } else {
      message.recipient = send.recipient;
    }
    message.page_id = page_in_path;
    message.messaging_type = send.messaging_type;
    message.message_json = send.message_json;
    message.sender_action = send.sender_action;
    message.received_at_ms = WallClockMs();
    RecordedMessage stored = store_->Add(std::move(message));
    if (options_->on_message) options_->on_message(stored);
    // Each accepted message at debug: with the sender's "delivered" lines, who got which id.
    // The message itself only where the operator allows message text in logs.
    if (log::MessageTextAllowed()) {
      log::Debug(
          "send api accepted",
          {{"message_id", stored.message_id}, {"recipient", stored.recipient}, {"message", stored.message_json}});
    } else {
      log::Debug("send api accepted", {{"message_id", stored.message_id}, {"recipient", stored.recipient}});
    }
    Echo(stored);
    json answer{{"recipient_id", stored.recipient}};
    if (send.sender_action.empty()) answer["message_id"] = stored.message_id;
    return {200, answer.dump(), usage};
  }

  // What Instagram's Send API refuses that Messenger's takes (common/instagram_limits.h), with
  // the error type Instagram answers with.
  static std::optional<GraphError> InstagramRefusal(const AcceptedSend& send) {
    if (send.recipient_is_ref) {
      return GraphError{400, 100, 0, "IGApiException", "(#100) Instagram has no user_ref recipients"};
    }
    if (send.message_json.empty()) return std::nullopt;
    if (auto error = InstagramMessageError(json::parse(send.message_json, nullptr, false))) {
      return GraphError{400, 100, 0, "IGApiException", "(#100) " + *error};
    }
    return std::nullopt;
  }

  // An attachment_id the Attachment Upload API never gave: Meta refuses it.
  std::optional<GraphError> UnknownAttachmentId(const std::string& message_json) const {
    const json message = json::parse(message_json, nullptr, false);
    if (!message.is_object() || !message.contains("attachment") || !message["attachment"].is_object()) {
      return std::nullopt;
    }
    const json payload = message["attachment"].value("payload", json::object());
    if (!payload.is_object() || !payload.contains("attachment_id")) return std::nullopt;
    const json& id = payload["attachment_id"];
    if (id.is_string() && attachments_->Known(id.get<std::string>())) return std::nullopt;
    return GraphError{400, 100, 0, "OAuthException", "(#100) Invalid attachment_id"};
  }

  bool TokenAccepted(const Http::Request& request, Reply* refusal) {
    std::string token = request.query().get("access_token").value_or("");
    if (token.empty()) {
      GraphError error{400, 104, 0, "OAuthException", "An access token is required to request this resource."};
      *refusal = {error.http_status, error.Body()};
      return false;
    }
    if (!options_->page_token.empty() && !ConstantTimeEquals(token, options_->page_token)) {
      GraphError error{400, 190, 0, "OAuthException", "Invalid OAuth access token."};
      *refusal = {error.http_status, error.Body()};
      return false;
    }
    return true;
  }

  Reply UserProfile(const std::string& psid, const Http::Request& request) {
    Reply refusal;
    if (!TokenAccepted(request, &refusal)) return refusal;
    auto profile = profiles_->Get(psid);
    json answer{{"id", psid}};
    std::stringstream fields(request.query().get("fields").value_or("first_name,last_name"));
    for (std::string field; std::getline(fields, field, ',');) {
      if (field == "first_name") answer["first_name"] = profile.first_name;
      if (field == "last_name") answer["last_name"] = profile.last_name;
      if (field == "name") answer["name"] = profile.first_name + " " + profile.last_name;  // Instagram's
      if (field == "profile_pic") answer["profile_pic"] = "https://example.com/emulator/" + psid + ".png";
    }
    return {200, answer.dump()};
  }

  Reply NameUser(const std::string& body) {
    json request = json::parse(body, nullptr, false);
    if (!request.is_object() || !request.contains("psid") || !request["psid"].is_string() ||
        !request.contains("first_name") || !request["first_name"].is_string()) {
      return {400, R"({"error":"expected {\"psid\":\"...\",\"first_name\":\"...\",\"last_name\":\"...\"}"})"};
    }
    profiles_->Set(request["psid"].get<std::string>(),
                   {request["first_name"].get<std::string>(), request.value("last_name", "")});
    return {200, R"({"ok":true})"};
  }

  Reply Say(const std::string& body) {
    json request = json::parse(body, nullptr, false);
    if (!request.is_object() || !request.contains("psid") || !request["psid"].is_string() ||
        !request.contains("page") || !request["page"].is_string() ||
        (!request.contains("text") && !request.contains("postback") && !request.contains("ref") &&
         !request.contains("ad"))) {
      json error{{"error",
                  "expected {\"page\":\"...\",\"psid\":\"...\",\"text\":\"...\"} "
                  "(or \"postback\" instead of \"text\"; \"ref\" or \"ad\": true alone for a referral)"}};
      return {400, error.dump()};
    }
    const double age_days = request.value("age_days", 0.0);
    if (age_days < 0 || age_days > 365) return {400, R"({"error":"age_days is between 0 and 365"})"};
    const std::string platform = request.value("platform", "messenger");
    if (platform != "messenger" && platform != "instagram") {
      return {400, R"({"error":"platform is \"messenger\" or \"instagram\""})"};
    }
    UserEvent event;
    event.page_id = request["page"].get<std::string>();
    if (platform == "instagram") instagram_->Add(event.page_id);
    event.psid = request["psid"].get<std::string>();
    app_users_->Wrote(event.page_id, event.psid);
    event.timestamp_ms = WallClockMs() - static_cast<int64_t>(age_days * 24 * 3600 * 1000);
    event.mid = "m_user_" + std::to_string(event.timestamp_ms) + "_" + std::to_string(++*mid_counter_);
    event.text = request.value("text", "");
    event.quick_reply_payload = request.value("quick_reply", "");
    event.postback_payload = request.value("postback", "");
    event.postback_title = request.value("title", event.postback_payload);
    event.ref = request.value("ref", "");
    event.from_ad = request.value("ad", false);
    if (request.contains("first_name") && request["first_name"].is_string()) {
      profiles_->Set(event.psid, {request["first_name"].get<std::string>(), request.value("last_name", "")});
    }
    json answer{{"mid", event.mid}};
    // Another app has the thread: the bot hears the person in standby[] only.
    const bool standby = !thread_owners_->Get(event.page_id, event.psid).empty();
    const int status = DeliverAndWait(event.page_id, UserEventItem(event), standby);
    if (status == 0) {
      answer["error"] = "ingress unreachable at " + options_->ingress_url;
      return {502, answer.dump()};
    }
    answer["ingress_status"] = status;
    return {status == 200 ? 200 : 502, answer.dump()};
  }

  // POST /_emulator/comment {"page","psid","text"}: a person comments on the page's post (or,
  // with "platform":"instagram", on the account's media) and Meta sends the `feed` (`comments`)
  // webhook. Optional: "name", "post", "age_days" (a comment written that long ago),
  // "visitor_post" (a post on the page instead), "live" (an Instagram live comment), "repeat"
  // (deliver the same change that many times, as Meta's redeliveries do), and "comment_id" with
  // "verb" ("edited", "remove") for an existing comment. Answers its ids.
  Reply WriteComment(const std::string& body) {
    json request = json::parse(body, nullptr, false);
    if (!request.is_object() || !request.contains("page") || !request["page"].is_string() ||
        !request.contains("psid") || !request["psid"].is_string()) {
      return {400, R"({"error":"expected {\"page\":\"...\",\"psid\":\"...\",\"text\":\"...\"}"})"};
    }
    const std::string verb = request.value("verb", "add");
    if (verb != "add" && verb != "edited" && verb != "remove") {
      return {400, R"({"error":"verb is add, edited or remove"})"};
    }
    const std::string page = request["page"].get<std::string>();
    if (request.value("platform", "messenger") == "instagram") instagram_->Add(page);
    Comment comment;
    if (request.contains("comment_id")) {
      auto found = comments_->Find(request.value("comment_id", ""));
      if (!found) return {404, R"({"error":"no such comment"})"};
      comment = *found;
      if (request.contains("text")) comment.text = request.value("text", "");
      comment = comments_->Add(comment);
    } else {
      comment.page_id = page;
      comment.instagram = instagram_->Contains(page);
      comment.visitor_post = request.value("visitor_post", false) && !comment.instagram;
      comment.author = request["psid"].get<std::string>();
      comment.author_name = request.value("name", "Alex Doe");
      comment.text = request.value("text", "");
      comment.post_id = request.value("post", "");
      const auto age_days = request.value("age_days", 0.0);
      comment.created_ms = WallClockMs() - static_cast<int64_t>(age_days * 24 * 3600 * 1000);
      comment = comments_->Add(comment);
    }
    const json change = CommentChange(comment, verb, request.value("live", false));
    const int repeat = std::clamp(request.value("repeat", 1), 1, 5);
    int status = 0;
    for (int i = 0; i < repeat; ++i) status = DeliverChangeAndWait(page, change);
    json answer{{"comment_id", comment.id}, {"post_id", comment.post_id}, {"ingress_status", status}};
    return {status == 200 ? 200 : 502, answer.dump()};
  }

  // Graph POST /{comment}/comments (a Page) or /{comment}/replies (Instagram): a public reply.
  Reply PublicReply(const std::string& comment_id, const Http::Request& request) {
    Reply refusal;
    if (!TokenAccepted(request, &refusal)) return refusal;
    const json body = json::parse(request.body(), nullptr, false);
    if (!body.is_object() || !body.contains("message") || !body["message"].is_string() ||
        body["message"].get<std::string>().empty()) {
      return {400, GraphError{400, 100, 0, "OAuthException", "(#100) param message must be a non-empty string"}.Body()};
    }
    auto added = comments_->AddPublicReply(comment_id, body["message"].get<std::string>());
    if (auto* error = std::get_if<GraphError>(&added)) return {error->http_status, error->Body()};
    return {200, json{{"id", std::get<std::string>(added)}}.dump()};
  }

  int DeliverChangeAndWait(const std::string& page, json change) {
    auto result = std::make_shared<std::promise<int>>();
    auto delivered = result->get_future();
    webhooks_->EnqueueChange(
        page, std::move(change), [result](int status) { result->set_value(status); }, ObjectOf(page));
    if (delivered.wait_for(std::chrono::seconds(20)) != std::future_status::ready) return 0;
    return delivered.get();
  }

  // The webhook object of a page's or account's events.
  std::string ObjectOf(const std::string& page) const { return instagram_->Contains(page) ? "instagram" : "page"; }

  // Queues one item and waits (at most 20 s) for the final status of its delivery.
  // Meta's data deletion callback for a person (docs/privacy.md): a signed_request naming
  // their app-scoped id, POSTed as a form to ingress's /data-deletion. "forge" spoils it
  // ("signature", "algorithm", "expired", "future"); "resend" sends the last one again, as
  // Meta retries. Answers Katy's status and answer, and the id used.
  Reply DeleteUser(const std::string& body) {
    json request = json::parse(body, nullptr, false);
    if (!request.is_object() || (!request.contains("psid") && !request.value("resend", false))) {
      return {400, R"json({"error":"expected {\"psid\":\"...\"} (\"forge\", \"resend\" optional)"})json"};
    }
    std::string signed_request;
    std::string app_scoped_id;
    if (request.value("resend", false)) {
      std::lock_guard lock(last_deletion_->mutex);
      signed_request = last_deletion_->signed_request;
      app_scoped_id = last_deletion_->app_scoped_id;
      if (signed_request.empty()) return {400, R"({"error":"no deletion request was sent yet"})"};
    } else {
      app_scoped_id = AppScopedUsers::IdOf(request["psid"].get<std::string>());
      signed_request = SignedDeletion(app_scoped_id, request.value("forge", ""));
      std::lock_guard lock(last_deletion_->mutex);
      last_deletion_->signed_request = signed_request;
      last_deletion_->app_scoped_id = app_scoped_id;
    }
    thread_local http::Client client(std::chrono::milliseconds(10000), std::chrono::milliseconds(2000));
    const std::string url = options_->ingress_url.substr(0, options_->ingress_url.rfind('/')) + "/data-deletion";
    auto answer =
        client.Post(url, "signed_request=" + signed_request, {"Content-Type: application/x-www-form-urlencoded"});
    if (!answer) return {502, json{{"error", "ingress unreachable at " + url}}.dump()};
    json katy = json::parse(answer->body, nullptr, false);
    return {200, json{{"status", answer->status},
                      {"answer", katy.is_discarded() ? json(answer->body) : katy},
                      {"app_scoped_id", app_scoped_id}}
                     .dump()};
  }

  // The person deletes (unsends) a message they wrote: Meta's `message` with `is_deleted`
  // naming its mid (docs/messenger-platform.md).
  Reply Unsend(const std::string& body) {
    json request = json::parse(body, nullptr, false);
    if (!request.is_object() || !request.contains("psid") || !request.contains("page") || !request.contains("mid")) {
      return {400, R"({"error":"expected {\"page\":\"...\",\"psid\":\"...\",\"mid\":\"...\"}"})"};
    }
    const std::string page = request["page"].get<std::string>();
    json item{{"sender", {{"id", request["psid"]}}},
              {"recipient", {{"id", page}}},
              {"timestamp", WallClockMs()},
              {"message", {{"mid", request["mid"]}, {"is_deleted", true}}}};
    const int status = DeliverAndWait(page, std::move(item));
    if (status == 0) return {502, json{{"error", "ingress unreachable at " + options_->ingress_url}}.dump()};
    return {200, json{{"ingress_status", status}}.dump()};
  }

  std::string SignedDeletion(const std::string& app_scoped_id, const std::string& forge) const {
    int64_t issued_at = WallClockMs() / 1000;
    if (forge == "expired") issued_at -= 30LL * 24 * 3600;
    if (forge == "future") issued_at += 24 * 3600;
    json payload{{"algorithm", forge == "algorithm" ? "HMAC-SHA1" : "HMAC-SHA256"},
                 {"expires", issued_at + 3600},
                 {"issued_at", issued_at},
                 {"user_id", app_scoped_id}};
    return SignRequest(payload.dump(), forge == "signature" ? "not-the-app-secret" : options_->app_secret);
  }

  // Graph's ID Matching API: the person's PSIDs on the pages they wrote to, for the app's token
  // ("<app id>|<app secret>") with its appsecret_proof.
  Reply IdsForPages(const std::string& app_scoped_id, const Http::Request& request) {
    std::string token = request.query().get("access_token").value_or("");
    if (const size_t bar = token.find("%7C"); bar != std::string::npos) token.replace(bar, 3, "|");
    const std::string app_token = options_->app_id + "|" + options_->app_secret;
    if (!ConstantTimeEquals(token, app_token) ||
        !ConstantTimeEquals(request.query().get("appsecret_proof").value_or(""),
                            HmacSha256Hex(options_->app_secret, app_token))) {
      return {
          400,
          GraphError{400, 190, 0, "OAuthException", "Invalid OAuth access token - Cannot parse access token"}.Body()};
    }
    json data = json::array();
    for (const auto& [page, psid] : app_users_->PagesOf(app_scoped_id)) {
      data.push_back({{"id", psid}, {"page", {{"id", page}, {"name", "Page " + page}}}});
    }
    return {200, json{{"data", data}}.dump()};
  }

  int DeliverAndWait(const std::string& page, json item, bool standby = false) {
    auto result = std::make_shared<std::promise<int>>();
    auto delivered = result->get_future();
    webhooks_->Enqueue(
        page, std::move(item), [result](int status) { result->set_value(status); }, ObjectOf(page), standby);
    if (delivered.wait_for(std::chrono::seconds(20)) != std::future_status::ready) return 0;
    return delivered.get();
  }

  Reply Receipt(const std::string& body, bool delivery) {
    json request = json::parse(body, nullptr, false);
    if (!request.is_object() || !request.contains("psid") || !request.contains("page")) {
      return {400, R"({"error":"expected {\"page\":\"...\",\"psid\":\"...\"}"})"};
    }
    const std::string page = request["page"].get<std::string>();
    const std::string psid = request["psid"].get<std::string>();
    const int64_t now = WallClockMs();
    json item{{"sender", {{"id", psid}}}, {"recipient", {{"id", page}}}, {"timestamp", now}};
    if (instagram_->Contains(page)) {
      // Instagram sends no delivery receipts, and a read names the message read.
      if (delivery) return {400, R"({"error":"Instagram sends no delivery receipts"})"};
      std::string last_mid;
      for (const auto& message : store_->For(psid)) {
        if (message.page_id == page && message.sender_action.empty()) last_mid = message.message_id;
      }
      if (last_mid.empty()) return {400, R"({"error":"the account sent this user nothing to read"})"};
      item["read"] = {{"mid", last_mid}};
    } else if (delivery) {
      json mids = json::array();
      for (const auto& message : store_->For(psid)) {
        if (message.page_id == page && message.sender_action.empty()) mids.push_back(message.message_id);
      }
      item["delivery"] = {{"mids", mids}, {"watermark", now}};
    } else {
      item["read"] = {{"watermark", now}};
    }
    const int status = DeliverAndWait(page, std::move(item));
    return {status == 200 ? 200 : 502, json{{"ingress_status", status}}.dump()};
  }

  // The Handover Protocol's calls, as Conversation Routing keeps them: pass_thread_control
  // {"recipient":{"id"},"target_app_id","metadata"} gives the thread to the Page Inbox (or back
  // to the bot), take_thread_control {"recipient"} takes it for the bot, GET thread_owner
  // ?recipient=PSID names the owner. Meta notifies the app receiving (pass) or losing (take) the
  // thread; that is never the bot here, so no webhook follows.
  Reply ThreadControl(const std::string& page, const std::string& call, const Http::Request& request) {
    Reply refusal;
    if (!TokenAccepted(request, &refusal)) return refusal;
    if (call == "thread_owner") {
      const std::string psid = request.query().get("recipient").value_or("");
      if (psid.empty())
        return {400, GraphError{400, 100, 0, "OAuthException", "(#100) param recipient is required"}.Body()};
      const std::string owner = thread_owners_->Get(page, psid);
      json entry;
      entry["thread_owner"]["app_id"] = owner.empty() ? options_->app_id : owner;
      json answer;
      answer["data"] = json::array({entry});
      return {200, answer.dump()};
    }
    if (request.method() != Http::Method::Post) return {405, R"({"error":"POST"})"};
    const json body = json::parse(request.body(), nullptr, false);
    const json recipient = body.is_object() ? body.value("recipient", json()) : json();
    const std::string psid = recipient.is_object() ? recipient.value("id", "") : "";
    if (psid.empty()) {
      return {400, GraphError{400, 100, 0, "OAuthException", "(#100) param recipient must be non-empty."}.Body()};
    }
    if (call == "take_thread_control") {
      thread_owners_->Set(page, psid, "");
      RecordThreadControl(page, psid, call, "");
      return {200, R"({"success":true})"};
    }
    const std::string target = body.value("target_app_id", json("")).is_string() ? body.value("target_app_id", "")
                                                                                 : body["target_app_id"].dump();
    if (target != kPageInboxAppId && target != options_->app_id) {
      return {400, GraphError{400, 100, 0, "OAuthException",
                              "(#100) param target_app_id must be an app connected to the page (the Page Inbox is " +
                                  std::string(kPageInboxAppId) + ")"}
                       .Body()};
    }
    thread_owners_->Set(page, psid, target == options_->app_id ? "" : target);
    RecordThreadControl(page, psid, call, target);
    return {200, R"({"success":true})"};
  }

  // Kept in the store with the messages (/_emulator/messages lists it), in arrival order.
  void RecordThreadControl(const std::string& page, const std::string& psid, const std::string& call,
                           const std::string& target) {
    RecordedMessage record;
    record.page_id = page;
    record.recipient = psid;
    record.received_at_ms = WallClockMs();
    record.thread_control = call;
    record.target_app_id = target;
    store_->Add(std::move(record));
  }

  // A person answers as the page from the Page Inbox: recorded with the inbox's app id (the
  // chat page shows it in the thread) and delivered to the bot as an echo from the inbox app.
  Reply InboxReply(const std::string& body) {
    json request = json::parse(body, nullptr, false);
    if (!request.is_object() || !request.contains("page") || !request.contains("psid") || !request.contains("text") ||
        !request["text"].is_string() || request["text"].get<std::string>().empty()) {
      return {400, R"({"error":"expected {\"page\":\"...\",\"psid\":\"...\",\"text\":\"...\"}"})"};
    }
    RecordedMessage message;
    message.page_id = request["page"].get<std::string>();
    message.recipient = request["psid"].get<std::string>();
    message.messaging_type = "RESPONSE";
    message.message_json = json{{"text", request["text"]}}.dump();
    message.received_at_ms = WallClockMs();
    message.app_id = kPageInboxAppId;
    RecordedMessage stored = store_->Add(std::move(message));
    json echo{{"is_echo", true}, {"app_id", kPageInboxAppId}, {"mid", stored.message_id}, {"text", request["text"]}};
    json item{{"sender", {{"id", stored.page_id}}},
              {"recipient", {{"id", stored.recipient}}},
              {"timestamp", stored.received_at_ms},
              {"message", echo}};
    const int status = DeliverAndWait(stored.page_id, std::move(item));
    return {status == 200 ? 200 : 502, json{{"mid", stored.message_id}, {"ingress_status", status}}.dump()};
  }

  // The Page Inbox passes the thread back to the bot (a pass_thread_control webhook to it), or
  // takes it from the bot (take_thread_control: Meta tells the app losing the thread).
  Reply InboxHandover(const std::string& body, bool pass_back) {
    json request = json::parse(body, nullptr, false);
    if (!request.is_object() || !request.contains("page") || !request.contains("psid")) {
      return {400, R"({"error":"expected {\"page\":\"...\",\"psid\":\"...\"}"})"};
    }
    const std::string page = request["page"].get<std::string>();
    const std::string psid = request["psid"].get<std::string>();
    thread_owners_->Set(page, psid, pass_back ? "" : kPageInboxAppId);
    const std::string from = pass_back ? kPageInboxAppId : options_->app_id;
    const std::string to = pass_back ? options_->app_id : kPageInboxAppId;
    json item{{"sender", {{"id", psid}}},
              {"recipient", {{"id", page}}},
              {"timestamp", WallClockMs()},
              {pass_back ? "pass_thread_control" : "take_thread_control",
               {{"previous_owner_app_id", from},
                {"new_owner_app_id", to},
                {"metadata", request.value("metadata", pass_back ? "passed back from the Page Inbox"
                                                                 : "taken in the Page Inbox")}}}};
    const int status = DeliverAndWait(page, std::move(item));
    return {status == 200 ? 200 : 502, json{{"ingress_status", status}}.dump()};
  }

  // An echo of a message the bot sent, as Meta sends one back (sender is the page).
  void Echo(const RecordedMessage& sent) {
    if (!options_->echoes || sent.message_json.empty()) return;
    json message = json::parse(sent.message_json, nullptr, false);
    if (!message.is_object()) return;
    message["is_echo"] = true;
    message["app_id"] = options_->app_id;
    message["mid"] = sent.message_id;
    json item{{"sender", {{"id", sent.page_id}}},
              {"recipient", {{"id", sent.recipient}}},
              {"timestamp", sent.received_at_ms},
              {"message", message}};
    webhooks_->Enqueue(sent.page_id, std::move(item), {}, ObjectOf(sent.page_id));
  }

  std::shared_ptr<MessageStore> store_;
  std::shared_ptr<CommentBook> comments_;
  std::shared_ptr<ProfileBook> profiles_;
  std::shared_ptr<FaultInjector> faults_;
  std::shared_ptr<WebhookDelivery> webhooks_;
  std::shared_ptr<MessengerProfiles> messenger_profiles_ = std::make_shared<MessengerProfiles>();
  std::shared_ptr<PageSubscriptions> subscriptions_ = std::make_shared<PageSubscriptions>();
  std::shared_ptr<AttachmentStore> attachments_ = std::make_shared<AttachmentStore>();
  std::shared_ptr<InstagramAccounts> instagram_ = std::make_shared<InstagramAccounts>();
  std::shared_ptr<ThreadOwners> thread_owners_ = std::make_shared<ThreadOwners>();
  std::shared_ptr<AppScopedUsers> app_users_ = std::make_shared<AppScopedUsers>();
  struct LastDeletion {
    std::mutex mutex;
    std::string signed_request;
    std::string app_scoped_id;
  };
  std::shared_ptr<LastDeletion> last_deletion_ = std::make_shared<LastDeletion>();
  std::shared_ptr<const EmulatorOptions> options_;
  std::shared_ptr<std::atomic<uint64_t>> mid_counter_;
  HeldCalls held_{faults_};  // this I/O thread's own
};

}  // namespace

Result<std::unique_ptr<EmulatorServer>> EmulatorServer::Start(const EmulatorOptions& options) {
  std::unique_ptr<EmulatorServer> out(new EmulatorServer());
  out->store_ = std::make_shared<MessageStore>();
  out->comments_ = std::make_shared<CommentBook>();
  out->profiles_ = std::make_shared<ProfileBook>();
  out->faults_ = std::make_shared<FaultInjector>();
  out->webhooks_ = std::make_shared<WebhookDelivery>(
      DeliveryOptions{options.ingress_url, options.app_secret, options.webhook_batch, options.webhook_workers});
  if (!options.faults_json.empty()) {
    auto faults = ParseFaults(options.faults_json);
    if (!faults) return Error{ErrorCode::kConfig, "faults: " + faults.error().message};
    out->faults_->Set(*faults);
  }
  auto shared_options = std::make_shared<const EmulatorOptions>(options);
  try {
    out->endpoint_ = std::make_shared<Http::Endpoint>(Address(options.address.host, Port(options.address.port)));
    out->endpoint_->init(Http::Endpoint::options().threads(options.threads).flags(Tcp::Options::ReuseAddr));
    out->endpoint_->setHandler(
        Http::make_handler<EmulatorHandler>(out->store_, out->profiles_, out->faults_, out->webhooks_, shared_options,
                                            std::make_shared<std::atomic<uint64_t>>(0), out->comments_));
    out->endpoint_->serveThreaded();
    out->port_ = static_cast<uint16_t>(out->endpoint_->getPort());
  } catch (const std::exception& e) {
    return Error{ErrorCode::kIo, "cannot serve HTTP on " + options.address.ToString() + ": " + e.what()};
  }
  return out;
}

EmulatorServer::~EmulatorServer() { Shutdown(); }

void EmulatorServer::Shutdown() {
  if (webhooks_) webhooks_->Stop();
  if (endpoint_) {
    endpoint_->shutdown();
    endpoint_.reset();
  }
}

}  // namespace katy::emulator
