#pragma once

#include <chrono>
#include <functional>
#include <mutex>
#include <string>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "common/redis/client_pool.h"
#include "common/redis/queue_status.h"
#include "common/redis/script.h"
#include "common/shard.h"
#include "katy/v1/control.grpc.pb.h"

namespace katy::grpcsvc {

struct ControlOptions {
  std::string service;   // "ingress", "responder", "sender"
  std::string instance;  // this process's name
  std::string token;     // when non-empty, every RPC needs "authorization: Bearer <token>"
  KeySpace keys;         // the deployment's keys (KATY_KEY_PREFIX, KATY_SHARDS)
  redis::Options redis;
};

// What differs between services. An unset hook answers UNIMPLEMENTED (for example SetRateLimit
// on the responder). Hooks run on gRPC threads: they must be thread-safe.
struct ControlHooks {
  std::function<std::vector<int>()> owned_shards;
  std::function<std::vector<redis::HeldShard>()> held_shards;
  std::function<bool()> paused;  // the service as a whole
  std::function<grpc::Status(const std::string& page)> pause;
  std::function<grpc::Status(const std::string& page)> resume;
  std::function<grpc::Status(const std::string& page, double per_second)> set_rate;
  std::function<grpc::Status(int* rules)> reload_rules;
  std::function<void()> drain;
};

// katy.v1.Control for every service (control.proto): status of queues, leases and pages read
// from Redis, dead letters listed (decoded to JSON) and replayed, one conversation read and its
// thread paused or resumed (conversation_control.h), plus the service's hooks.
// Dead-letter replay moves each letter back to the end of its source stream and deletes it
// from the dead-letter stream in one script, oldest first, so a conversation keeps its order.
// Thread-safe.
class ControlService final : public katy::v1::Control::Service {
 public:
  ControlService(ControlOptions options, ControlHooks hooks);

  // Where GetStatus reads `serving` from (the health monitor, which exists only once the gRPC
  // server does). Until set, status says serving.
  void SetServingSource(std::function<bool()> serving);

  grpc::Status GetStatus(grpc::ServerContext* context, const katy::v1::GetStatusRequest* request,
                         katy::v1::Status* response) override;
  grpc::Status Pause(grpc::ServerContext* context, const katy::v1::PauseRequest* request,
                     katy::v1::PauseResponse* response) override;
  grpc::Status Resume(grpc::ServerContext* context, const katy::v1::PauseRequest* request,
                      katy::v1::PauseResponse* response) override;
  grpc::Status SetRateLimit(grpc::ServerContext* context, const katy::v1::SetRateLimitRequest* request,
                            katy::v1::SetRateLimitResponse* response) override;
  grpc::Status ListDeadLetters(grpc::ServerContext* context, const katy::v1::ListDeadLettersRequest* request,
                               katy::v1::ListDeadLettersResponse* response) override;
  grpc::Status ReplayDeadLetters(grpc::ServerContext* context, const katy::v1::ReplayDeadLettersRequest* request,
                                 katy::v1::ReplayDeadLettersResponse* response) override;
  grpc::Status ReloadRules(grpc::ServerContext* context, const katy::v1::ReloadRulesRequest* request,
                           katy::v1::ReloadRulesResponse* response) override;
  grpc::Status Drain(grpc::ServerContext* context, const katy::v1::DrainRequest* request,
                     katy::v1::DrainResponse* response) override;
  grpc::Status GetConversation(grpc::ServerContext* context, const katy::v1::GetConversationRequest* request,
                               katy::v1::Conversation* response) override;
  grpc::Status SetConversationOwner(grpc::ServerContext* context, const katy::v1::SetConversationOwnerRequest* request,
                                    katy::v1::SetConversationOwnerResponse* response) override;
  grpc::Status CancelReminder(grpc::ServerContext* context, const katy::v1::CancelReminderRequest* request,
                              katy::v1::CancelReminderResponse* response) override;
  grpc::Status Forget(grpc::ServerContext* context, const katy::v1::ForgetRequest* request,
                      katy::v1::ForgetResponse* response) override;

 private:
  grpc::Status Authorize(grpc::ServerContext* context) const;

  ControlOptions options_;
  ControlHooks hooks_;
  std::mutex serving_mutex_;
  std::function<bool()> serving_;
  std::chrono::steady_clock::time_point started_ = std::chrono::steady_clock::now();
  redis::ClientPool pool_;
  redis::Script replay_;
};

// OK when `token` is empty or the call carries "authorization: Bearer <token>" (compared in
// constant time); else UNAUTHENTICATED. Every Katy gRPC service checks calls with it.
grpc::Status AuthorizeBearer(const grpc::ServerContext& context, const std::string& token);

// Maps an Error from Katy's I/O to a gRPC status (UNAVAILABLE for Redis trouble).
grpc::Status ToGrpc(const Error& error);

}  // namespace katy::grpcsvc
