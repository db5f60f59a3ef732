#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "common/http/http_client.h"

namespace katy::testing {

// Who says what: `users` users each sending `messages_per_user` texts to `page`, in order.
struct TrafficPlan {
  int users = 0;
  int messages_per_user = 0;
  int threads = 8;
  int messages_per_second = 250;  // over all threads
  std::string page = "104560000000001";
  std::string user_prefix = "c";
  // When set, only the users it accepts send (say, those whose shard lives on one master), each
  // in its slot of the full plan's pace.
  std::function<bool(int user)> only = {};
  // When above 0, every redeliver_every-th webhook is posted once more after its 200, as Meta
  // does when a 200 reached it late: ingress must store it once.
  int redeliver_every = 0;
};

std::string TrafficUserId(const TrafficPlan& plan, int user);
// "<user id> n<n>": the text of a user's n-th message (the echo rules answer "echo: <text>").
std::string TrafficText(const TrafficPlan& plan, int user, int n);
// A Meta-form webhook carrying that message, timestamped now.
std::string TrafficWebhookBody(const TrafficPlan& plan, int user, int n);

// Plays Meta's webhook delivery to ingress: each user's messages in order, each one posted
// again (after 200 ms) until ingress answers 200, signed with `app_secret`, paced to the plan's
// rate. A webhook not taken within 60 s fails the calling test.
class WebhookTraffic {
 public:
  using Clock = std::chrono::steady_clock;
  // Told of every webhook taken: user, n, when its first attempt began, when the 200 came.
  // From the traffic's threads, so it must be thread-safe.
  using OnDelivered = std::function<void(int user, int n, Clock::time_point first_try, Clock::time_point taken)>;

  WebhookTraffic(std::string ingress_url, std::string app_secret, TrafficPlan plan, OnDelivered on_delivered = {});
  ~WebhookTraffic();
  WebhookTraffic(const WebhookTraffic&) = delete;
  WebhookTraffic& operator=(const WebhookTraffic&) = delete;

  void Start();
  void Join();
  bool done() const { return finished_.load() == plan_.threads; }
  int delivered() const { return delivered_.load(); }
  int retries() const { return retries_.load(); }
  int redelivered() const { return redelivered_.load(); }

 private:
  void Run(int thread);
  bool PostUntilTaken(http::Client& client, const std::string& body);

  std::string url_;
  std::string app_secret_;
  TrafficPlan plan_;
  OnDelivered on_delivered_;
  std::vector<std::thread> threads_;
  std::atomic<int> finished_{0};
  std::atomic<int> delivered_{0};
  std::atomic<int> retries_{0};
  std::atomic<int> redelivered_{0};
};

// Every text the emulator's Send API accepted, by recipient, in the order accepted.
std::map<std::string, std::vector<std::string>> ReceivedTexts(const std::string& emulator_url);

// Each user's replies as the emulator received them, duplicates in place, against the echo
// ("echo: <text>") of every message the plan sent; returns the users whose replies are not
// exactly that.
std::vector<std::string> UsersNotAnsweredExactlyOnceInOrder(const TrafficPlan& plan, const std::string& emulator_url);

}  // namespace katy::testing
