#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#include "common/metrics/metrics.h"
#include "common/result.h"
#include "services/ingress/event_sink.h"

namespace katy::ingress {

// Coalesces the events of concurrent webhook requests into shared sink calls: a Redis round
// trip stores everything queued while the previous ones were in flight. HTTP threads never wait
// on Redis; throughput grows with concurrency instead of being capped at threads / round-trip.
//
// `workers` threads each run round trips, so several can be in flight at once (the sink must
// be thread-safe). Order: a request's events stay together and in order. Two requests only
// share the queue when they were in flight together, which Meta's order never relied on (a
// sequential sender sends the next POST after this one was stored and answered).
//
// Each submission's `done` runs on the batcher thread, exactly once, after its events were
// stored (flags as EventSink::Enqueue gives them) or failed; it gets its events back.
// Thread-safe.
class EnqueueBatcher {
 public:
  using Done = std::function<void(const std::vector<katy::v1::InboundEvent>& events,
                                  const Result<std::vector<bool>>& stored)>;

  // At most `max_events` events go into one sink call (a submission is never split).
  // `metrics` may be null.
  EnqueueBatcher(EventSink& sink, size_t max_events, size_t workers = 1,
                 metrics::Registry* metrics = nullptr);
  // Stops (see Stop) and joins the threads.
  ~EnqueueBatcher();
  EnqueueBatcher(const EnqueueBatcher&) = delete;
  EnqueueBatcher& operator=(const EnqueueBatcher&) = delete;

  void Submit(std::vector<katy::v1::InboundEvent> events, Done done);

  // Stores what is already queued, answers it, then stops. Later submissions fail at once
  // with Error{"stopping"} (ingress answers 503: Meta retries elsewhere or later).
  void Stop();

 private:
  struct Pending {
    std::vector<katy::v1::InboundEvent> events;
    Done done;
  };
  void Loop();

  EventSink& sink_;
  size_t max_events_;
  metrics::Histogram* batch_requests_ = nullptr;  // requests per round trip
  metrics::Histogram* store_seconds_ = nullptr;   // one sink call
  std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<Pending> queue_;
  bool stopping_ = false;
  std::vector<std::thread> threads_;
};

}  // namespace katy::ingress
