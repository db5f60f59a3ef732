#include "services/ingress/enqueue_batcher.h"

#include <algorithm>
#include <chrono>

namespace katy::ingress {

EnqueueBatcher::EnqueueBatcher(EventSink& sink, size_t max_events, size_t workers,
                               metrics::Registry* metrics)
    : sink_(sink), max_events_(max_events) {
  if (metrics != nullptr) {
    batch_requests_ = &metrics->AddHistogram("katy_ingress_batch_requests",
                                             "Webhook requests stored per Redis round trip",
                                             {1, 2, 4, 8, 16, 32, 64, 128, 256})
                           .WithLabels({});
    store_seconds_ = &metrics->AddHistogram("katy_ingress_store_seconds",
                                            "Time of one Redis round trip storing a batch",
                                            metrics::LatencyBuckets())
                          .WithLabels({});
  }
  for (size_t i = 0; i < std::max<size_t>(workers, 1); ++i) threads_.emplace_back([this] { Loop(); });
}

EnqueueBatcher::~EnqueueBatcher() { Stop(); }

void EnqueueBatcher::Submit(std::vector<katy::v1::InboundEvent> events, Done done) {
  {
    std::lock_guard lock(mutex_);
    if (!stopping_) {
      queue_.push_back({std::move(events), std::move(done)});
      wake_.notify_one();
      return;
    }
  }
  done(events, Error{"stopping", "ingress is shutting down"});
}

void EnqueueBatcher::Stop() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  for (auto& thread : threads_) {
    if (thread.joinable() && thread.get_id() != std::this_thread::get_id()) thread.join();
  }
}

void EnqueueBatcher::Loop() {
  std::vector<Pending> batch;
  std::vector<katy::v1::InboundEvent> events;
  while (true) {
    batch.clear();
    {
      std::unique_lock lock(mutex_);
      wake_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stopping, and everything queued was answered
      size_t count = 0;
      // Always take at least one submission, however large, then fill up to max_events_.
      while (!queue_.empty() && (batch.empty() || count + queue_.front().events.size() <= max_events_)) {
        count += queue_.front().events.size();
        batch.push_back(std::move(queue_.front()));
        queue_.pop_front();
      }
    }
    // One sink call for the whole batch; each submission's events are moved in and back out.
    events.clear();
    for (auto& pending : batch) {
      for (auto& event : pending.events) events.push_back(std::move(event));
    }
    const auto started = std::chrono::steady_clock::now();
    auto stored = sink_.Enqueue(events);
    if (store_seconds_ != nullptr) {
      store_seconds_->Observe(std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
      batch_requests_->Observe(static_cast<double>(batch.size()));
    }
    size_t offset = 0;
    for (auto& pending : batch) {
      const size_t n = pending.events.size();
      for (size_t i = 0; i < n; ++i) pending.events[i] = std::move(events[offset + i]);
      if (stored) {
        std::vector<bool> mine(stored->begin() + static_cast<long>(offset),
                               stored->begin() + static_cast<long>(offset + n));
        pending.done(pending.events, mine);
      } else {
        pending.done(pending.events, stored.error());
      }
      offset += n;
    }
  }
}

}  // namespace katy::ingress
