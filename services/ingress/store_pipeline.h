#pragma once

#include <chrono>
#include <cstddef>
#include <deque>
#include <functional>
#include <memory>
#include <vector>

#include "common/metrics/metrics.h"
#include "services/ingress/event_store.h"
#include "services/ingress/http_connection.h"
#include "services/ingress/webhook_service.h"

namespace katy::ingress {

// Most events one loop keeps in Redis's hands at once. Requests beyond it wait in the loop,
// untimed, until earlier batches finish: the time a batch waits for Redis stays bounded by
// what is ahead of it (about a tenth of a second at this size), so a burst of big requests
// cannot push a small one past the store's timeout. At least one request is always let
// through, however big.
inline constexpr size_t kMaxEventsInFlight = 4096;

struct PipelineMetrics {
  prometheus::Histogram* requests = nullptr;  // requests per batch (per Redis round trip)
  prometheus::Histogram* seconds = nullptr;   // one batch's round trip
};

// The webhook requests of one event loop on their way to Redis. The requests added during a
// pass are sent, at its end, as one batch: one pipelined write of every event's enqueue
// calls. Each request is answered when its batch completes, 200 when all its events were
// stored, 503 when any of them failed, whatever happened to the other requests of its batch.
// Used by its loop's thread only.
class StorePipeline {
 public:
  // Answers `conn` (which may have closed meanwhile) with `reply`.
  using Respond = std::function<void(const ConnectionPtr& conn, const HttpReply& reply)>;

  StorePipeline(const StoreOptions& store, const WebhookService& service, PipelineMetrics metrics, Respond respond);

  // A request whose `events` are to be stored before it is answered. `stored_answer`, when
  // given, is the JSON answered with 200 once they are stored (a data deletion request's).
  void Add(ConnectionPtr conn, std::vector<katy::v1::InboundEvent> events, HttpConnection::Clock::time_point read_at,
           std::string stored_answer = {});

  // Sends what was added, as far as the in-flight limit allows. Call at the end of each pass,
  // then redis().Flush().
  void Dispatch();

  // Nothing waiting and nothing in flight.
  bool idle() const { return waiting_.empty() && in_flight_events_ == 0; }

  redis::AsyncRouter& redis() { return store_.redis(); }

 private:
  struct Request {
    ConnectionPtr conn;
    size_t first = 0;  // its events in the batch's
    size_t count = 0;
    HttpConnection::Clock::time_point read_at;
    std::string stored_answer;
  };
  struct Batch {
    std::vector<Request> requests;
    std::vector<katy::v1::InboundEvent> events;
    HttpConnection::Clock::time_point sent_at;
  };
  struct Waiting {
    ConnectionPtr conn;
    std::vector<katy::v1::InboundEvent> events;
    HttpConnection::Clock::time_point read_at;
    std::string stored_answer;
  };

  std::unique_ptr<Batch> NextBatch();
  void Finish(const Batch& batch, const StoreResult& result);

  RedisEventStore store_;
  const WebhookService& service_;
  PipelineMetrics metrics_;
  Respond respond_;
  std::deque<Waiting> waiting_;
  size_t in_flight_events_ = 0;
};

}  // namespace katy::ingress
