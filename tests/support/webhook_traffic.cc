#include "tests/support/webhook_traffic.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "common/clock.h"
#include "common/http/http_client.h"
#include "tests/support/test_support.h"

namespace katy::testing {

std::string TrafficUserId(const TrafficPlan& plan, int user) { return plan.user_prefix + std::to_string(user); }

std::string TrafficText(const TrafficPlan& plan, int user, int n) {
  return TrafficUserId(plan, user) + " n" + std::to_string(n);
}

std::string TrafficWebhookBody(const TrafficPlan& plan, int user, int n) {
  // Now, as Meta stamps it (an old time would be outside the 24 h window and never answered).
  const int64_t at = WallClockMs();
  const std::string id = TrafficUserId(plan, user);
  nlohmann::json item{
      {"sender", {{"id", id}}},
      {"recipient", {{"id", plan.page}}},
      {"timestamp", at},
      {"message", {{"mid", "m_" + id + "_" + std::to_string(n)}, {"text", TrafficText(plan, user, n)}}}};
  nlohmann::json body{{"object", "page"}, {"entry", {{{"id", plan.page}, {"time", at}, {"messaging", {item}}}}}};
  return body.dump();
}

WebhookTraffic::WebhookTraffic(std::string ingress_url, std::string app_secret, TrafficPlan plan,
                               OnDelivered on_delivered)
    : url_(std::move(ingress_url)),
      app_secret_(std::move(app_secret)),
      plan_(std::move(plan)),
      on_delivered_(std::move(on_delivered)) {}

WebhookTraffic::~WebhookTraffic() { Join(); }

void WebhookTraffic::Start() {
  for (int t = 0; t < plan_.threads; ++t) threads_.emplace_back([this, t] { Run(t); });
}

void WebhookTraffic::Join() {
  for (auto& thread : threads_) {
    if (thread.joinable()) thread.join();
  }
}

// Posts `body` until ingress answers 200 (Meta retries a failed delivery), at most 60 s; true
// when it did. Counts the retries.
bool WebhookTraffic::PostUntilTaken(http::Client& client, const std::string& body) {
  const std::vector<std::string> headers = SignedWebhookHeaders(app_secret_, body);
  const auto give_up = Clock::now() + std::chrono::seconds(60);
  while (Clock::now() < give_up) {
    auto answer = client.Post(url_, body, headers);
    if (answer.ok() && answer->status == 200) return true;
    ++retries_;
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  ADD_FAILURE() << "ingress never took a webhook in 60 s";
  return false;
}

void WebhookTraffic::Run(int thread) {
  http::Client client;
  const auto interval = std::chrono::milliseconds(1000 * plan_.threads / plan_.messages_per_second);
  auto next = Clock::now();
  for (int n = 0; n < plan_.messages_per_user; ++n) {
    for (int user = thread; user < plan_.users; user += plan_.threads) {
      std::this_thread::sleep_until(next);
      next += interval;
      // A user left out keeps its slot: the others go at the pace they would in the full plan.
      if (plan_.only && !plan_.only(user)) continue;
      const std::string body = TrafficWebhookBody(plan_, user, n);
      const auto first_try = Clock::now();
      if (!PostUntilTaken(client, body)) continue;
      ++delivered_;
      if (on_delivered_) on_delivered_(user, n, first_try, Clock::now());
      const int sequence = n * plan_.users + user;
      if (plan_.redeliver_every > 0 && sequence % plan_.redeliver_every == 0 && PostUntilTaken(client, body)) {
        ++redelivered_;
      }
    }
  }
  ++finished_;
}

std::map<std::string, std::vector<std::string>> ReceivedTexts(const std::string& emulator_url) {
  http::Client http;
  std::map<std::string, std::vector<std::string>> out;
  auto all = http.Get(emulator_url + "/_emulator/messages");
  if (!all.ok() || all->status != 200) {
    ADD_FAILURE() << "cannot read the emulator's messages";  // not "nothing received"
    return out;
  }
  for (const auto& message : nlohmann::json::parse(all->body)) {
    if (!message.contains("message") || !message["message"].contains("text")) continue;
    out[message["recipient"].get<std::string>()].push_back(message["message"]["text"].get<std::string>());
  }
  return out;
}

std::vector<std::string> UsersNotAnsweredExactlyOnceInOrder(const TrafficPlan& plan, const std::string& emulator_url) {
  auto received = ReceivedTexts(emulator_url);
  std::vector<std::string> wrong;
  for (int user = 0; user < plan.users; ++user) {
    std::vector<std::string> expected;
    for (int n = 0; n < plan.messages_per_user; ++n) expected.push_back("echo: " + TrafficText(plan, user, n));
    if (received[TrafficUserId(plan, user)] != expected) wrong.push_back(TrafficUserId(plan, user));
  }
  return wrong;
}

}  // namespace katy::testing
