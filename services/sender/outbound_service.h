#pragma once

#include <functional>
#include <string>

#include <prometheus/counter.h>
#include <prometheus/registry.h>

#include "common/message_tags.h"
#include "common/redis/client_pool.h"
#include "common/redis/script.h"
#include "common/shard.h"
#include "katy/v1/events.pb.h"
#include "katy/v1/outbound.grpc.pb.h"

namespace katy::sender {

// What the outbound API checks before it queues anything. Pure.
struct OutboundCheck {
  katy::v1::OutboundMessage message;  // what to queue when `refusal` is empty
  std::string refusal;                // why not, in one sentence
  bool invalid_argument = false;      // the request itself is wrong (else: not allowed now)
};
// `window` is what the conversation says of its windows (TagRefusal). Ids are
// "api:<page>:<recipient>:<idempotency key>".
OutboundCheck CheckOutbound(const katy::v1::OutboundSendRequest& request, const UserWindow& window, int64_t now_ms);

// The name of an idempotency key's mark: SHA-256 of page, recipient and the caller's key, so
// two callers' "order-1" for two people are two keys, and the mark's name is fixed-size. Pure.
std::string ScopedIdempotencyKey(const std::string& page, const std::string& recipient, const std::string& key);

// The page and recipient in an outbound id (empty when it is not one). Pure.
std::pair<std::string, std::string> ConversationOfOutboundId(const std::string& id);

// katy.v1.Outbound (outbound.proto) on the sender's gRPC port, behind its own token
// (KATY_OUTBOUND_TOKEN: integrations, not operators). Send queues onto the recipient's shard's
// outbound stream and remembers the idempotency key, scoped to page and recipient, in one
// script, so a retried call queues nothing more; the sender then handles the message like a
// reply (order per recipient, rate limits, retries, dead letters, the windows again at send
// time). GetMessage reads the delivered mark, the shard's dead letters, or the key. Thread-safe.
class OutboundService final : public katy::v1::Outbound::Service {
 public:
  using Clock = std::function<int64_t()>;  // epoch ms
  // An idempotency key is kept `key_ttl` (KATY_SENT_MARK_TTL_S, as long as the delivered mark
  // of its message): a retry within it is recognised.
  OutboundService(KeySpace keys, const redis::Options& redis, std::string token, prometheus::Registry& registry,
                  Clock now_ms, std::chrono::seconds key_ttl);

  grpc::Status Send(grpc::ServerContext* context, const katy::v1::OutboundSendRequest* request,
                    katy::v1::OutboundSendResponse* response) override;
  grpc::Status GetMessage(grpc::ServerContext* context, const katy::v1::GetOutboundMessageRequest* request,
                          katy::v1::OutboundMessageStatus* response) override;

 private:
  KeySpace keys_;
  int64_t key_ttl_s_;
  std::string token_;
  Clock now_ms_;
  redis::ClientPool pool_;
  redis::Script enqueue_;
  prometheus::Family<prometheus::Counter>& requests_;  // by result: queued, duplicate, refused
};

}  // namespace katy::sender
