#include "tools/emulator/webhook_delivery.h"

#include <map>

#include "common/clock.h"
#include "common/http/http_client.h"
#include "common/json_escape.h"
#include "tools/emulator/webhook_builder.h"

namespace katy::emulator {
std::string BuildBatchBody(const std::vector<BatchItem>& items, int64_t time_ms, const std::string& object) {
  nlohmann::json entries = nlohmann::json::array();
  std::map<std::pair<std::string, std::string>, size_t> entry_of;
  for (const auto& [page, item, standby, change] : items) {
    const std::string list = change ? "changes" : standby ? "standby" : "messaging";
    auto found = entry_of.find({page, list});
    if (found == entry_of.end()) {
      found = entry_of.emplace(std::pair{page, list}, entries.size()).first;
      entries.push_back({{"id", page}, {"time", time_ms}, {list, nlohmann::json::array()}});
    }
    entries[found->second][list].push_back(item);
  }
  return EscapeJsonLikeMeta(nlohmann::json{{"object", object}, {"entry", entries}}.dump());
}

WebhookDelivery::WebhookDelivery(DeliveryOptions options) : options_(std::move(options)) {
  for (int i = 0; i < std::max(1, options_.workers); ++i) workers_.emplace_back([this] { Work(); });
}

WebhookDelivery::~WebhookDelivery() { Stop(); }

void WebhookDelivery::Enqueue(std::string page_id, nlohmann::json item, Done done, std::string object, bool standby) {
  Push({std::move(page_id), std::move(item), std::move(done), std::move(object), standby, false});
}

void WebhookDelivery::EnqueueChange(std::string page_id, nlohmann::json change, Done done, std::string object) {
  Push({std::move(page_id), std::move(change), std::move(done), std::move(object), false, true});
}

void WebhookDelivery::Push(Item item) {
  {
    std::lock_guard lock(mutex_);
    queue_.push_back(std::move(item));
  }
  wake_.notify_one();
}

void WebhookDelivery::Stop() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  for (auto& worker : workers_) {
    if (worker.joinable()) worker.join();
  }
}

int WebhookDelivery::Post(const std::string& body) {
  thread_local http::Client client(std::chrono::milliseconds(10000), std::chrono::milliseconds(2000));
  auto response =
      client.Post(options_.ingress_url, body,
                  {"Content-Type: application/json", "X-Hub-Signature-256: " + SignBody(options_.app_secret, body)});
  ++posts_;
  return response ? static_cast<int>(response->status) : 0;
}

void WebhookDelivery::Work() {
  while (true) {
    std::vector<Item> batch;
    {
      std::unique_lock lock(mutex_);
      wake_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) return;
      while (!queue_.empty() && batch.size() < std::max<size_t>(1, options_.max_batch) &&
             (batch.empty() || queue_.front().object == batch.front().object)) {
        batch.push_back(std::move(queue_.front()));
        queue_.pop_front();
      }
    }
    std::vector<BatchItem> items;
    items.reserve(batch.size());
    for (const auto& item : batch) items.push_back({item.page_id, item.item, item.standby, item.change});
    // Meta re-sends the same items (with a new entry time) until it gets a 200.
    int status = 0;
    for (int attempt = 0; attempt < options_.max_attempts; ++attempt) {
      status = Post(BuildBatchBody(items, WallClockMs(), batch.front().object));
      if (status == 200) break;
      bool stopping;
      {
        std::lock_guard lock(mutex_);
        stopping = stopping_;
      }
      if (stopping) break;
      ++retries_;
      auto backoff = std::min(options_.max_backoff, std::chrono::milliseconds(50LL << std::min(attempt, 10)));
      std::this_thread::sleep_for(backoff);
    }
    for (auto& item : batch) {
      if (item.done) item.done(status);
    }
  }
}

}  // namespace katy::emulator
