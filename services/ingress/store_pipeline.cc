#include "services/ingress/store_pipeline.h"

#include <span>

namespace katy::ingress {
namespace {

double SecondsBetween(HttpConnection::Clock::time_point from, HttpConnection::Clock::time_point to) {
  return std::chrono::duration<double>(to - from).count();
}

}  // namespace

StorePipeline::StorePipeline(const StoreOptions& store, const WebhookService& service, PipelineMetrics metrics,
                             Respond respond)
    : store_(store), service_(service), metrics_(metrics), respond_(std::move(respond)) {}

void StorePipeline::Add(ConnectionPtr conn, std::vector<katy::v1::InboundEvent> events,
                        HttpConnection::Clock::time_point read_at, std::string stored_answer) {
  waiting_.push_back({std::move(conn), std::move(events), read_at, std::move(stored_answer)});
}

void StorePipeline::Dispatch() {
  while (std::shared_ptr<Batch> batch = NextBatch()) {
    in_flight_events_ += batch->events.size();
    batch->sent_at = HttpConnection::Clock::now();
    store_.Store(batch->events, [this, batch](const StoreResult& result) {
      in_flight_events_ -= batch->events.size();
      Finish(*batch, result);
    });
  }
}

// The waiting requests that fit under the in-flight limit, oldest first, as one batch; null
// when none fits.
std::unique_ptr<StorePipeline::Batch> StorePipeline::NextBatch() {
  if (waiting_.empty()) return nullptr;
  auto batch = std::make_unique<Batch>();
  while (!waiting_.empty()) {
    Waiting& next = waiting_.front();
    const size_t total = in_flight_events_ + batch->events.size() + next.events.size();
    const bool nothing_else_in_flight = in_flight_events_ == 0 && batch->requests.empty();
    if (total > kMaxEventsInFlight && !nothing_else_in_flight) break;
    batch->requests.push_back(
        {std::move(next.conn), batch->events.size(), next.events.size(), next.read_at, std::move(next.stored_answer)});
    for (auto& event : next.events) batch->events.push_back(std::move(event));
    waiting_.pop_front();
  }
  if (batch->requests.empty()) return nullptr;
  return batch;
}

void StorePipeline::Finish(const Batch& batch, const StoreResult& result) {
  const auto now = HttpConnection::Clock::now();
  if (metrics_.seconds != nullptr) {
    metrics_.seconds->Observe(SecondsBetween(batch.sent_at, now));
    metrics_.requests->Observe(static_cast<double>(batch.requests.size()));
  }
  const std::span<const katy::v1::InboundEvent> events(batch.events);
  const std::span<const Stored> stored(result.events);
  for (const Request& request : batch.requests) {
    HttpReply reply = service_.FinishPost(events.subspan(request.first, request.count),
                                          stored.subspan(request.first, request.count), result.error);
    if (reply.status == 200 && !request.stored_answer.empty()) {
      reply.body = request.stored_answer;
      reply.content_type = "application/json";
    }
    service_.RecordRequest(reply.status, SecondsBetween(request.read_at, now));
    respond_(request.conn, reply);
  }
}

}  // namespace katy::ingress
