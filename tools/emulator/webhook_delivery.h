#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

namespace katy::emulator {

struct DeliveryOptions {
  std::string ingress_url;  // where webhooks go
  std::string app_secret;   // signs them (X-Hub-Signature-256)
  size_t max_batch = 1;     // messaging items per POST at most (Meta batches under load)
  int workers = 1;          // POSTs in flight at once (1 keeps every item in order)
  int max_attempts = 8;     // a POST not answered 200 is retried with backoff this many times
  std::chrono::milliseconds max_backoff{2000};
};

// Delivers messaging items to the bot the way Meta does: queued, batched (up to max_batch
// items, grouped into one entry per page), escaped like Meta (\uXXXX, \/), signed, retried on
// anything but 200 with exponential backoff. Thread-safe.
class WebhookDelivery {
 public:
  // Called once per item with the final HTTP status (0 when ingress was unreachable to the end).
  using Done = std::function<void(int status)>;

  explicit WebhookDelivery(DeliveryOptions options);
  ~WebhookDelivery();  // Stop()
  WebhookDelivery(const WebhookDelivery&) = delete;
  WebhookDelivery& operator=(const WebhookDelivery&) = delete;

  // `object` is the webhook's: "page", or "instagram" for an Instagram account's item. Items of
  // different objects never share a POST, as Meta sends each object its own webhooks.
  // `standby`: the item goes in the entry's standby[] (another app has the thread).
  void Enqueue(std::string page_id, nlohmann::json item, Done done = {}, std::string object = "page",
               bool standby = false);
  // A change ({"field","value"}) for the entry's changes[] (comments: docs/comments.md).
  void EnqueueChange(std::string page_id, nlohmann::json change, Done done, std::string object);
  // Delivers what is queued (each batch once, without retries), then stops the workers.
  void Stop();

  int64_t posts() const { return posts_; }
  int64_t retries() const { return retries_; }

 private:
  struct Item {
    std::string page_id;
    nlohmann::json item;
    Done done;
    std::string object;
    bool standby = false;
    bool change = false;
  };
  void Push(Item item);
  void Work();
  int Post(const std::string& body);

  DeliveryOptions options_;
  std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<Item> queue_;
  bool stopping_ = false;
  std::vector<std::thread> workers_;
  std::atomic<int64_t> posts_{0};
  std::atomic<int64_t> retries_{0};
};

// One item of a webhook: its page, the item, and whether it goes in standby[].
struct BatchItem {
  std::string page_id;
  nlohmann::json item;
  bool standby = false;
  bool change = false;  // the item goes in the entry's changes[]
};

// The webhook body for `items`, one entry per page and list (messaging[], standby[] or
// changes[]) in first-seen order, in Meta's escaped wire form; `object` is "page" or "instagram". Pure.
std::string BuildBatchBody(const std::vector<BatchItem>& items, int64_t time_ms, const std::string& object = "page");

}  // namespace katy::emulator
