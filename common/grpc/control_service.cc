#include "common/grpc/control_service.h"

#include <google/protobuf/util/json_util.h>

#include <algorithm>
#include <cstdlib>

#include "common/clock.h"
#include "common/events.h"
#include "common/forget.h"
#include "common/grpc/conversation_control.h"
#include "common/hmac.h"
#include "common/log.h"
#include "common/redis/queue_status.h"
#include "common/redis/streams.h"
#include "common/reminder_keys.h"
#include "katy/v1/events.pb.h"

namespace katy::grpcsvc {
namespace {

// KEYS[1] the dead-letter stream, KEYS[2] the source stream (same shard, same hash tag).
// ARGV[1] the dead letter's id. Returns 1 when moved, 0 when it is gone already.
constexpr const char* kReplayLua = R"lua(
local found = redis.call('XRANGE', KEYS[1], ARGV[1], ARGV[1])
if #found == 0 then return 0 end
local fields, original = found[1][2], {}
local bookkeeping = {stream = true, id = true, stage = true, reason = true, attempts = true}
for i = 1, #fields, 2 do
  if not bookkeeping[fields[i]] then
    original[#original + 1] = fields[i]
    original[#original + 1] = fields[i + 1]
  end
end
redis.call('XADD', KEYS[2], '*', unpack(original))
redis.call('XDEL', KEYS[1], ARGV[1])
return 1
)lua";

constexpr const char* kVersion = KATY_VERSION;

// The entry's payload as JSON, or "null" when it does not decode (a dead letter may hold
// anything) or cannot be printed.
std::string EntryJson(const std::string& stage, const std::string& pb) {
  google::protobuf::util::JsonPrintOptions print;
  print.preserve_proto_field_names = true;
  auto to_json = [&](const google::protobuf::Message& message) {
    std::string json;
    return google::protobuf::util::MessageToJsonString(message, &json, print).ok() ? json : std::string("null");
  };
  if (stage == "sender") {
    katy::v1::OutboundMessage message;
    return message.ParseFromString(pb) ? to_json(message) : "null";
  }
  katy::v1::InboundEvent event;
  return event.ParseFromString(pb) ? to_json(event) : "null";
}

void ToDeadLetter(const redis::StreamEntry& entry, katy::v1::DeadLetter* out) {
  out->set_dlq_stream(entry.stream);
  out->set_id(entry.id);
  out->set_source_stream(entry.Field("stream").value_or(""));
  out->set_source_id(entry.Field("id").value_or(""));
  out->set_stage(entry.Field("stage").value_or(""));
  out->set_reason(entry.Field("reason").value_or(""));
  out->set_attempts(std::atoi(entry.Field("attempts").value_or("0").c_str()));
  out->set_entry_json(EntryJson(out->stage(), entry.Field("pb").value_or("")));
}

grpc::Status Unimplemented(const std::string& service, const char* what) {
  return {grpc::StatusCode::UNIMPLEMENTED, std::string(what) + " is not something the " + service + " does"};
}

}  // namespace

grpc::Status ToGrpc(const Error& error) {
  if (error.code == ErrorCode::kIo || error.code == ErrorCode::kTimeout)
    return {grpc::StatusCode::UNAVAILABLE, "Redis: " + error.message};
  if (error.code == ErrorCode::kInvalid) return {grpc::StatusCode::INVALID_ARGUMENT, error.message};
  return {grpc::StatusCode::INTERNAL, error.message};
}

ControlService::ControlService(ControlOptions options, ControlHooks hooks)
    : options_(std::move(options)),
      hooks_(std::move(hooks)),
      pool_(options_.redis.WithoutWait(), 2),
      replay_(kReplayLua) {}

void ControlService::SetServingSource(std::function<bool()> serving) {
  std::lock_guard lock(serving_mutex_);
  serving_ = std::move(serving);
}

grpc::Status AuthorizeBearer(const grpc::ServerContext& context, const std::string& token) {
  if (token.empty()) return grpc::Status::OK;
  const auto& metadata = context.client_metadata();
  auto found = metadata.find("authorization");
  if (found != metadata.end()) {
    std::string value(found->second.data(), found->second.size());
    if (ConstantTimeEquals(value, "Bearer " + token)) return grpc::Status::OK;
  }
  return {grpc::StatusCode::UNAUTHENTICATED, "a valid 'authorization: Bearer <token>' is required"};
}

grpc::Status ControlService::Authorize(grpc::ServerContext* context) const {
  return AuthorizeBearer(*context, options_.token);
}

grpc::Status ControlService::GetStatus(grpc::ServerContext* context, const katy::v1::GetStatusRequest*,
                                       katy::v1::Status* response) {
  if (auto auth = Authorize(context); !auth.ok()) return auth;
  response->set_service(options_.service);
  response->set_instance(options_.instance);
  response->set_version(kVersion);
  response->set_uptime_s(
      std::chrono::duration_cast<std::chrono::seconds>(std::chrono::steady_clock::now() - started_).count());
  {
    std::lock_guard lock(serving_mutex_);
    response->set_serving(serving_ ? serving_() : true);
  }
  response->set_paused(hooks_.paused ? hooks_.paused() : false);
  if (hooks_.owned_shards) {
    for (int shard : hooks_.owned_shards()) response->add_owned_shards(shard);
  }
  if (hooks_.held_shards) {
    for (const auto& held : hooks_.held_shards()) {
      auto* out = response->add_held_shards();
      out->set_shard(held.shard);
      out->set_reason(held.reason);
      out->set_held_s(held.held_for.count());
    }
  }
  auto client = pool_.Acquire();
  if (auto read = redis::ReadQueueStatus(*client, options_.keys, response); !read) return ToGrpc(read.error());
  return grpc::Status::OK;
}

grpc::Status ControlService::Pause(grpc::ServerContext* context, const katy::v1::PauseRequest* request,
                                   katy::v1::PauseResponse*) {
  if (auto auth = Authorize(context); !auth.ok()) return auth;
  if (!hooks_.pause) return Unimplemented(options_.service, "Pause");
  log::Info("pause requested", {{"page", request->page_id()}});
  return hooks_.pause(request->page_id());
}

grpc::Status ControlService::Resume(grpc::ServerContext* context, const katy::v1::PauseRequest* request,
                                    katy::v1::PauseResponse*) {
  if (auto auth = Authorize(context); !auth.ok()) return auth;
  if (!hooks_.resume) return Unimplemented(options_.service, "Resume");
  log::Info("resume requested", {{"page", request->page_id()}});
  return hooks_.resume(request->page_id());
}

grpc::Status ControlService::SetRateLimit(grpc::ServerContext* context, const katy::v1::SetRateLimitRequest* request,
                                          katy::v1::SetRateLimitResponse*) {
  if (auto auth = Authorize(context); !auth.ok()) return auth;
  if (!hooks_.set_rate) return Unimplemented(options_.service, "SetRateLimit");
  log::Info("rate limit set", {{"page", request->page_id()}, {"per_second", request->per_second()}});
  return hooks_.set_rate(request->page_id().empty() ? "*" : request->page_id(), request->per_second());
}

grpc::Status ControlService::ListDeadLetters(grpc::ServerContext* context,
                                             const katy::v1::ListDeadLettersRequest* request,
                                             katy::v1::ListDeadLettersResponse* response) {
  if (auto auth = Authorize(context); !auth.ok()) return auth;
  const int limit = request->limit() > 0 ? request->limit() : 100;
  if (!request->all_shards() && (request->shard() < 0 || request->shard() >= options_.keys.shards())) {
    return {grpc::StatusCode::INVALID_ARGUMENT, "shard must be 0 to " + std::to_string(options_.keys.shards() - 1)};
  }
  auto client = pool_.Acquire();
  for (int shard = 0; shard < options_.keys.shards() && response->letters_size() < limit; ++shard) {
    if (!request->all_shards() && shard != request->shard()) continue;
    const std::string stream = options_.keys.DeadLetters(shard);
    auto range =
        client->Command({"XRANGE", stream, "-", "+", "COUNT", std::to_string(limit - response->letters_size())});
    if (!range) return ToGrpc(range.error());
    for (const auto& entry : redis::ParseEntries(stream, *range)) ToDeadLetter(entry, response->add_letters());
  }
  return grpc::Status::OK;
}

grpc::Status ControlService::ReplayDeadLetters(grpc::ServerContext* context,
                                               const katy::v1::ReplayDeadLettersRequest* request,
                                               katy::v1::ReplayDeadLettersResponse* response) {
  if (auto auth = Authorize(context); !auth.ok()) return auth;
  auto client = pool_.Acquire();
  // Which letters, with their source streams, oldest first within each dead-letter stream.
  std::vector<redis::StreamEntry> letters;
  for (int shard = 0; shard < options_.keys.shards(); ++shard) {
    const std::string stream = options_.keys.DeadLetters(shard);
    auto range = client->Command({"XRANGE", stream, "-", "+"});
    if (!range) return ToGrpc(range.error());
    for (auto& entry : redis::ParseEntries(stream, *range)) {
      bool wanted = request->all();
      for (const auto& ref : request->letters())
        wanted = wanted || (ref.dlq_stream() == stream && ref.id() == entry.id);
      if (wanted) letters.push_back(std::move(entry));
    }
  }
  if (!request->all() && static_cast<int>(letters.size()) != request->letters_size()) {
    return {grpc::StatusCode::NOT_FOUND,
            "some of the dead letters named do not exist (replayed already?); "
            "nothing was replayed"};
  }
  for (const auto& letter : letters) {
    auto source = letter.Field("stream");
    if (!source) continue;
    auto moved = replay_.Run(*client, {letter.stream, *source}, {letter.id});
    if (!moved) return ToGrpc(moved.error());
    response->set_replayed(response->replayed() + static_cast<int32_t>(moved->integer));
  }
  log::Info("dead letters replayed", {{"count", response->replayed()}});
  return grpc::Status::OK;
}

grpc::Status ControlService::ReloadRules(grpc::ServerContext* context, const katy::v1::ReloadRulesRequest*,
                                         katy::v1::ReloadRulesResponse* response) {
  if (auto auth = Authorize(context); !auth.ok()) return auth;
  if (!hooks_.reload_rules) return Unimplemented(options_.service, "ReloadRules");
  int rules = 0;
  auto status = hooks_.reload_rules(&rules);
  response->set_rules(rules);
  return status;
}

grpc::Status ControlService::Drain(grpc::ServerContext* context, const katy::v1::DrainRequest*,
                                   katy::v1::DrainResponse*) {
  if (auto auth = Authorize(context); !auth.ok()) return auth;
  if (!hooks_.drain) return Unimplemented(options_.service, "Drain");
  log::Info("drain requested");
  hooks_.drain();
  return grpc::Status::OK;
}

grpc::Status ControlService::GetConversation(grpc::ServerContext* context,
                                             const katy::v1::GetConversationRequest* request,
                                             katy::v1::Conversation* response) {
  if (auto auth = Authorize(context); !auth.ok()) return auth;
  if (request->page_id().empty() || request->user_id().empty()) {
    return {grpc::StatusCode::INVALID_ARGUMENT, "a conversation is named by its page and user (PSID)"};
  }
  auto client = pool_.Acquire();
  auto conversation = ReadConversationState(*client, options_.keys, request->page_id(), request->user_id(),
                                            request->events(), WallClockMs());
  if (!conversation) return ToGrpc(conversation.error());
  *response = std::move(*conversation);
  return grpc::Status::OK;
}

grpc::Status ControlService::SetConversationOwner(grpc::ServerContext* context,
                                                  const katy::v1::SetConversationOwnerRequest* request,
                                                  katy::v1::SetConversationOwnerResponse* response) {
  if (auto auth = Authorize(context); !auth.ok()) return auth;
  if (request->page_id().empty() || request->user_id().empty()) {
    return {grpc::StatusCode::INVALID_ARGUMENT, "a conversation is named by its page and user (PSID)"};
  }
  auto client = pool_.Acquire();
  auto id = AppendOwnerEvent(*client, options_.keys, *request, WallClockMs());
  if (!id) return ToGrpc(id.error());
  log::Info(request->pause() ? "conversation paused from the terminal" : "conversation resumed from the terminal",
            {{"page", request->page_id()}, {"entry", *id}});
  response->set_stream_id(*id);
  return grpc::Status::OK;
}

grpc::Status ControlService::CancelReminder(grpc::ServerContext* context,
                                            const katy::v1::CancelReminderRequest* request,
                                            katy::v1::CancelReminderResponse* response) {
  if (auto auth = Authorize(context); !auth.ok()) return auth;
  if (request->page_id().empty() || request->user_id().empty() || !IsReminderName(request->name())) {
    return {grpc::StatusCode::INVALID_ARGUMENT,
            "a reminder is named by its page, user (PSID) and name (1 to 64 of A-Z, a-z, 0-9, _ and -)"};
  }
  auto client = pool_.Acquire();
  auto cancelled = grpcsvc::CancelReminder(*client, options_.keys, *request);
  if (!cancelled) return ToGrpc(cancelled.error());
  if (*cancelled)
    log::Info("reminder cancelled from the terminal", {{"page", request->page_id()}, {"name", request->name()}});
  response->set_cancelled(*cancelled);
  return grpc::Status::OK;
}

grpc::Status ControlService::Forget(grpc::ServerContext* context, const katy::v1::ForgetRequest* request,
                                    katy::v1::ForgetResponse* response) {
  if (auto auth = Authorize(context); !auth.ok()) return auth;
  // Ids are digits (Meta's PSIDs and page ids are): they go into key patterns unescaped.
  constexpr size_t kMaxIdLength = 64;
  if (!IsNumericId(request->page_id(), kMaxIdLength) || !IsNumericId(request->user_id(), kMaxIdLength)) {
    return {grpc::StatusCode::INVALID_ARGUMENT, "a person is named by the page's id and their PSID, both digits"};
  }
  auto client = pool_.Acquire();
  auto erased = ForgetPerson(*client, options_.keys, request->page_id(), request->user_id());
  if (!erased) return ToGrpc(erased.error());
  log::Info("person forgotten from the terminal",
            {{"page", request->page_id()}, {"erased", std::to_string(erased->Total())}});
  response->set_conversations(erased->conversations);
  response->set_reminders(erased->reminders);
  response->set_ownership(erased->ownership);
  response->set_inbound_events(erased->inbound_events);
  response->set_outbound_messages(erased->outbound_messages);
  response->set_dead_letters(erased->dead_letters);
  response->set_outbound_records(erased->outbound_records);
  return grpc::Status::OK;
}

}  // namespace katy::grpcsvc
