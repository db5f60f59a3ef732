#include "services/sender/outbound_service.h"

#include <algorithm>
#include <cstdlib>
#include <variant>

#include <nlohmann/json.hpp>

#include "common/events.h"
#include "common/grpc/control_service.h"
#include "common/hmac.h"
#include "common/instagram_limits.h"
#include "common/json_text.h"
#include "common/log.h"
#include "common/message_tags.h"
#include "common/redis/streams.h"
#include "services/sender/sender_handler.h"
#include "services/sender/text_split.h"

namespace katy::sender {
namespace {

// KEYS[1] the idempotency key's mark, KEYS[2] the shard's outbound stream, KEYS[3] the mark
// as releases before 2026-12 named it (the caller's key alone; one hash tag for all three).
// ARGV[1] id, ARGV[2] serialized OutboundMessage, ARGV[3] mark TTL (s).
// Returns {1, id} when queued, {0, id} when this page, recipient and key were used before. An
// old-style mark counts only when it names this very message: it was shared by every
// recipient on the shard, which is the bug the scoped mark fixes.
constexpr const char* kEnqueueLua = R"lua(
local first = redis.call('GET', KEYS[1])
if first then return {0, first} end
if redis.call('GET', KEYS[3]) == ARGV[1] then return {0, ARGV[1]} end
redis.call('XADD', KEYS[2], '*', 'pb', ARGV[2])
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[3])
return {1, ARGV[1]}
)lua";

constexpr size_t kMaxKey = 200;
// Parts one call may become: a 2,000-character Messenger part each. More is a bulk mailing,
// which the outbound API is not for.
constexpr size_t kMaxParts = 10;
constexpr size_t kMaxIdLength = 64;

// A recipient id goes into Redis keys and the message id ("api:<page>:<recipient>:<key>"):
// printable, without the separator, bounded.
bool IsRecipientId(const std::string& text) {
  return !text.empty() && text.size() <= kMaxIdLength &&
         std::all_of(text.begin(), text.end(), [](char c) { return c > ' ' && c < 0x7f && c != ':' && c != '/'; });
}

// The Send API `message` of the request, or why there is none.
std::variant<std::string, std::string> MessageOf(const katy::v1::OutboundSendRequest& request) {
  using Either = std::variant<std::string, std::string>;
  if (request.text().empty() == request.message_json().empty()) {
    return Either(std::in_place_index<1>, "give either text or message_json");
  }
  if (!request.text().empty()) {
    if (SplitMessageText(request.text(), request.platform() == "instagram").size() > kMaxParts) {
      return Either(std::in_place_index<1>, "text is longer than " + std::to_string(kMaxParts) +
                                                " messages of Meta's size; send less per call");
    }
    return Either(std::in_place_index<0>, ToJsonText(nlohmann::json{{"text", request.text()}}));
  }
  auto message = nlohmann::json::parse(request.message_json(), nullptr, false);
  if (!message.is_object() || (!message.contains("text") && !message.contains("attachment"))) {
    return Either(std::in_place_index<1>, "message_json must be a Send API message object with text or attachment");
  }
  if (request.platform() == "instagram") {
    if (auto error = InstagramMessageError(message)) return Either(std::in_place_index<1>, *error);
  }
  return Either(std::in_place_index<0>, ToJsonText(message));
}

}  // namespace

OutboundCheck CheckOutbound(const katy::v1::OutboundSendRequest& request, const UserWindow& window, int64_t now_ms) {
  OutboundCheck check;
  auto refuse = [&](std::string why, bool invalid) {
    check.refusal = std::move(why);
    check.invalid_argument = invalid;
    return check;
  };
  if (request.page_id().empty() || request.recipient_id().empty())
    return refuse("page_id and recipient_id are required", true);
  if (!IsNumericId(request.page_id(), kMaxIdLength))
    return refuse("page_id must be a page's or account's numeric id", true);
  if (!IsRecipientId(request.recipient_id())) {
    return refuse("recipient_id must be a page-scoped id (printable, no ':' or '/', at most 64 characters)", true);
  }
  if (request.idempotency_key().empty() || request.idempotency_key().size() > kMaxKey) {
    return refuse("an idempotency_key of 1 to 200 characters is required", true);
  }
  if (!request.platform().empty() && request.platform() != "instagram") {
    return refuse("platform is empty (Messenger) or instagram", true);
  }
  auto message = MessageOf(request);
  if (message.index() == 1) return refuse(std::get<1>(message), true);
  if (window.opted_out_ms > 0) {
    return refuse(
        "opted_out: the person asked not to be messaged; only answers to their own messages go until they "
        "opt back in; nothing was sent",
        false);
  }
  if (auto why =
          TagRefusal({request.tag(), request.from_person(), request.platform() == "instagram", window}, now_ms)) {
    return refuse(*why + "; nothing was sent", false);
  }
  auto& out = check.message;
  out.set_id("api:" + request.page_id() + ":" + request.recipient_id() + ":" + request.idempotency_key());
  out.set_page_id(request.page_id());
  out.set_recipient_id(request.recipient_id());
  out.set_platform(request.platform());
  out.set_messaging_type(request.tag().empty() ? "RESPONSE" : "MESSAGE_TAG");
  out.set_tag(request.tag());
  out.set_message_json(std::get<0>(message));
  out.set_created_at_ms(now_ms);
  out.set_user_last_message_ms(window.last_user_ms);
  return check;
}

std::string ScopedIdempotencyKey(const std::string& page, const std::string& recipient, const std::string& key) {
  return Sha256Hex(page + "\n" + recipient + "\n" + key);
}

std::pair<std::string, std::string> ConversationOfOutboundId(const std::string& id) {
  if (!IsOutboundApiId(id)) return {};
  const size_t page_end = id.find(':', 4);
  if (page_end == std::string::npos) return {};
  const size_t recipient_end = id.find(':', page_end + 1);
  if (recipient_end == std::string::npos) return {};
  return {id.substr(4, page_end - 4), id.substr(page_end + 1, recipient_end - page_end - 1)};
}

OutboundService::OutboundService(KeySpace keys, const redis::Options& redis, std::string token,
                                 prometheus::Registry& registry, Clock now_ms, std::chrono::seconds key_ttl)
    : keys_(std::move(keys)),
      key_ttl_s_(key_ttl.count()),
      token_(std::move(token)),
      now_ms_(std::move(now_ms)),
      pool_(redis, 2),
      enqueue_(kEnqueueLua),
      requests_(prometheus::BuildCounter()
                    .Name("katy_outbound_requests_total")
                    .Help("Outbound API sends by result: queued, duplicate (a retried key), refused")
                    .Register(registry)) {}

grpc::Status OutboundService::Send(grpc::ServerContext* context, const katy::v1::OutboundSendRequest* request,
                                   katy::v1::OutboundSendResponse* response) {
  if (auto auth = grpcsvc::AuthorizeBearer(*context, token_); !auth.ok()) return auth;
  const int shard = ShardOf(request->page_id(), request->recipient_id(), keys_.shards());
  auto client = pool_.Acquire();
  auto window = client->Command(UserWindowRead(keys_.Conversation(shard, request->page_id(), request->recipient_id())));
  if (!window) return grpcsvc::ToGrpc(window.error());
  const OutboundCheck check = CheckOutbound(*request, UserWindowOfReply(*window), now_ms_());
  if (!check.refusal.empty()) {
    requests_.Add({{"result", "refused"}}).Increment();
    return {check.invalid_argument ? grpc::StatusCode::INVALID_ARGUMENT : grpc::StatusCode::FAILED_PRECONDITION,
            check.refusal};
  }
  auto queued = enqueue_.Run(*client,
                             {keys_.Outbound(shard, ScopedIdempotencyKey(request->page_id(), request->recipient_id(),
                                                                         request->idempotency_key())),
                              keys_.OutStream(shard), keys_.Outbound(shard, request->idempotency_key())},
                             {check.message.id(), check.message.SerializeAsString(), std::to_string(key_ttl_s_)});
  if (!queued) return grpcsvc::ToGrpc(queued.error());
  if (queued->elements.size() != 2) return {grpc::StatusCode::INTERNAL, "unexpected answer from the enqueue script"};
  response->set_duplicate(queued->elements[0].integer == 0);
  response->set_id(queued->elements[1].str);
  requests_.Add({{"result", response->duplicate() ? "duplicate" : "queued"}}).Increment();
  log::Info(response->duplicate() ? "outbound message already queued for this key" : "outbound message queued",
            {{"id", response->id()}, {"page", request->page_id()}, {"tag", request->tag()}});
  return grpc::Status::OK;
}

grpc::Status OutboundService::GetMessage(grpc::ServerContext* context,
                                         const katy::v1::GetOutboundMessageRequest* request,
                                         katy::v1::OutboundMessageStatus* response) {
  if (auto auth = grpcsvc::AuthorizeBearer(*context, token_); !auth.ok()) return auth;
  const auto [page, recipient] = ConversationOfOutboundId(request->id());
  if (page.empty()) return {grpc::StatusCode::INVALID_ARGUMENT, "not an outbound message id: " + request->id()};
  const int shard = ShardOf(page, recipient, keys_.shards());
  const std::string key = request->id().substr(4 + page.size() + 1 + recipient.size() + 1);
  response->set_id(request->id());
  auto client = pool_.Acquire();
  auto marks = client->Pipeline({{"GET", keys_.Sent(shard, request->id())},
                                 {"GET", keys_.Outbound(shard, ScopedIdempotencyKey(page, recipient, key))}});
  if (!marks) return grpcsvc::ToGrpc(marks.error());
  if (!(*marks)[0].IsNil()) {
    response->set_state("sent");
    response->set_message_id((*marks)[0].str);
    return grpc::Status::OK;
  }
  const std::string dlq = keys_.DeadLetters(shard);
  auto letters = client->Command({"XRANGE", dlq, "-", "+"});
  if (!letters) return grpcsvc::ToGrpc(letters.error());
  for (const auto& letter : redis::ParseEntries(dlq, *letters)) {
    katy::v1::OutboundMessage message;
    auto payload = letter.Field("pb");
    if (payload && message.ParseFromString(*payload) && message.id() == request->id()) {
      response->set_state("failed");
      response->set_reason(letter.Field("reason").value_or(""));
      return grpc::Status::OK;
    }
  }
  if ((*marks)[1].str != request->id()) return {grpc::StatusCode::NOT_FOUND, "no outbound message " + request->id()};
  response->set_state("queued");
  return grpc::Status::OK;
}

}  // namespace katy::sender
