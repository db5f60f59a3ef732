// The whole promise under chaos (issue 14): 500 users x 20 messages through a full Katy of real
// processes (Redis with AOF, ingress, 3 responders, 2 senders, the emulator as Meta) while
// responders and senders are SIGKILLed and restarted every few seconds, Redis is SIGKILLed
// once and restarted from its AOF, and the Send API answers 5% of calls with code 1200, a
// burst of 613 and latency spikes. Webhooks are delivered as Meta does: the same body again
// until it gets a 200.
//
// At the end every message must have its reply, each user's replies in order, and every
// duplicate the Send API saw matched to a "possible duplicate" its sender logged for that very
// message (not compared as totals: a real duplicate must not hide behind a counted one). Some
// webhooks are posted again after their 200, as Meta does when the 200 reached it late: they
// must not be answered twice. The accounting is printed.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>
#include <vector>

#include "common/http/http_client.h"
#include "tests/support/katy_stack.h"
#include "tests/support/webhook_traffic.h"

namespace katy {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;
using Clock = std::chrono::steady_clock;

constexpr int kUsers = 500;
constexpr int kMessagesPerUser = 20;
constexpr int kSenderThreads = 8;
constexpr int kMessagesPerSecond = 250;  // about 40 s of traffic for the chaos to act on
constexpr const char* kPage = "104560000000001";
constexpr const char* kEchoRules = R"(
fallback:
  reply: "echo: {{text}}"
)";
// The steady faults: 5% transient errors (code 1200) and a little latency.
constexpr const char* kSteadyFaults =
    R"({"seed":14,"error":{"http_status":500,"code":1200,"message":"temporary"},"error_rate":0.05,"latency_ms":[0,3]})";
constexpr const char* kRateLimitBurst =
    R"({"seed":14,"error":{"http_status":400,"code":613,"message":"Calls to this api have exceeded the rate limit."},"fail_next":40})";
constexpr const char* kLatencySpike = R"({"seed":14,"latency_ms":[200,600]})";

// Every 97th webhook is delivered again after its 200: about 100 over the run.
const testing::TrafficPlan kPlan{kUsers, kMessagesPerUser, kSenderThreads, kMessagesPerSecond, kPage, "c", {}, 97};
std::string UserId(int user) { return testing::TrafficUserId(kPlan, user); }
std::string Text(int user, int n) { return testing::TrafficText(kPlan, user, n); }

// Every message the emulator's Send API accepted, by recipient, in the order accepted.
std::map<std::string, std::vector<std::string>> Received(testing::KatyStack& stack) {
  return testing::ReceivedTexts(stack.emulator_url());
}

// The Meta message ids the Send API gave, by recipient, in the order accepted (beside Received).
std::map<std::string, std::vector<std::string>> MetaIds(testing::KatyStack& stack) {
  http::Client http;
  std::map<std::string, std::vector<std::string>> out;
  auto all = http.Get(stack.emulator_url() + "/_emulator/messages");
  EXPECT_TRUE(all.ok() && all->status == 200);
  if (!all.ok() || all->status != 200) return out;
  for (const auto& message : nlohmann::json::parse(all->body)) {
    if (!message.contains("message") || !message["message"].contains("text")) continue;
    out[message["recipient"].get<std::string>()].push_back(message.value("message_id", ""));
  }
  return out;
}

// What every sender that ran logged: Katy's id of each message it recorded as delivered, by the
// id Meta gave it, and the "possible duplicate" lines by Katy's message id.
struct SenderLogs {
  std::map<std::string, std::string> katy_id_of_meta_id;
  std::map<std::string, int> possible_duplicates;
  size_t possible_total = 0;
};
SenderLogs ReadSenderLogs(const testing::KatyStack& stack, const std::vector<std::string>& senders) {
  SenderLogs logs;
  for (const auto& sender : senders) {
    std::ifstream log(stack.dir() + "/" + sender + ".log");
    for (std::string line; std::getline(log, line);) {
      const auto entry = nlohmann::json::parse(line, nullptr, false);
      if (!entry.is_object()) continue;
      const std::string msg = entry.value("msg", "");
      if (msg == "delivered") logs.katy_id_of_meta_id[entry.value("message_id", "")] = entry.value("id", "");
      if (msg == "possible duplicate") {
        ++logs.possible_duplicates[entry.value("id", "")];
        ++logs.possible_total;
      }
    }
  }
  return logs;
}

size_t DistinctReplies(const std::map<std::string, std::vector<std::string>>& received) {
  size_t distinct = 0;
  for (const auto& [user, texts] : received) distinct += std::set<std::string>(texts.begin(), texts.end()).size();
  return distinct;
}

void SetFaults(testing::KatyStack& stack, const std::string& faults) {
  http::Client http;
  auto set = http.Post(stack.emulator_url() + "/_emulator/faults", faults);
  ASSERT_TRUE(set.ok() && set->status == 200) << faults;
}

// What the chaos did.
struct Chaos {
  int responder_kills = 0;
  int sender_kills = 0;
  int redis_kills = 0;
};

// How many "possible duplicate" lines a process's log holds: each sender writes one just
// before it counts one in katy_sender_possible_duplicates_total, so the logs keep the count of
// the senders that were killed.
size_t PossibleDuplicateLines(const testing::KatyStack& stack, const std::string& process) {
  std::ifstream log(stack.dir() + "/" + process + ".log");
  size_t lines = 0;
  for (std::string line; std::getline(log, line);) {
    lines += line.find(R"("msg":"possible duplicate")") != std::string::npos ? 1 : 0;
  }
  return lines;
}

TEST(ChaosTest, KillsRestartsAndGraphErrorsLoseNothingAndEveryDuplicateIsCounted) {
  testing::KatyStack stack({kEchoRules,
                            {{"KATY_LEASE_TTL_MS", "1500"},
                             // Debug: every "delivered" (sender) and "send api accepted"
                             // (emulator) line, so that a failure can be traced message by
                             // message (docs/reliability.md).
                             {"KATY_LOG_LEVEL", "debug"},
                             {"KATY_PAGE_RATE", "2000"},
                             {"KATY_EMULATOR_FAULTS", kSteadyFaults}}});
  ASSERT_TRUE(stack.ready());
  std::vector<std::string> responders = {"responder", "", ""};
  std::vector<std::string> senders = {"sender", ""};
  stack.StartExtra("responder", "katy-responder", &responders[1]);
  stack.StartExtra("responder", "katy-responder", &responders[2]);
  stack.StartExtra("sender", "katy-sender", &senders[1]);

  const auto started = Clock::now();
  testing::WebhookTraffic traffic(stack.ingress_url(), testing::KatyStack::kAppSecret, kPlan);
  traffic.Start();

  // The chaos, one step every 1.5 s while the traffic flows: responders and senders killed
  // in turn and replaced at once, Redis killed once, a 613 burst and a latency spike.
  Chaos chaos;
  std::vector<std::string> all_senders;  // every sender process that ran (a name may come twice)
  for (int step = 0; !traffic.done(); ++step) {
    std::this_thread::sleep_for(milliseconds(1500));
    if (step % 2 == 0) {
      std::string& victim = responders[static_cast<size_t>(step / 2) % responders.size()];
      stack.process(victim).Kill();
      ++chaos.responder_kills;
      stack.StartExtra("responder", "katy-responder", &victim);
    } else {
      std::string& victim = senders[static_cast<size_t>(step / 2) % senders.size()];
      all_senders.push_back(victim);
      stack.process(victim).Kill();
      ++chaos.sender_kills;
      stack.StartExtra("sender", "katy-sender", &victim);
    }
    if (step == 6) {
      stack.StopRedis();  // SIGKILL; the AOF (appendfsync everysec) brings the data back
      ++chaos.redis_kills;
      std::this_thread::sleep_for(milliseconds(1000));
      stack.StartRedis();
    }
    if (step == 10) SetFaults(stack, kRateLimitBurst);
    if (step == 12) SetFaults(stack, kLatencySpike);
    if (step == 14) SetFaults(stack, kSteadyFaults);
  }
  traffic.Join();
  SetFaults(stack, kSteadyFaults);
  const double traffic_seconds = std::chrono::duration<double>(Clock::now() - started).count();

  constexpr size_t kExpected = static_cast<size_t>(kUsers) * kMessagesPerUser;
  std::map<std::string, std::vector<std::string>> received;
  const bool all_replied = testing::WaitFor(
      [&] {
        received = Received(stack);
        return DistinctReplies(received) >= kExpected;
      },
      seconds(120));
  EXPECT_TRUE(stack.WaitUntilDrained(seconds(60))) << "entries left unhandled; logs in " << stack.dir();
  received = Received(stack);
  // The senders' count: every one's log lines; the live ones' metric must say the same.
  for (const auto& sender : senders) all_senders.push_back(sender);
  std::sort(all_senders.begin(), all_senders.end());
  all_senders.erase(std::unique(all_senders.begin(), all_senders.end()), all_senders.end());
  const SenderLogs logs = ReadSenderLogs(stack, all_senders);
  const auto counted = static_cast<double>(logs.possible_total);
  const auto meta_ids = MetaIds(stack);
  for (const auto& sender : senders) {
    EXPECT_EQ(stack.MetricSum(sender, "katy_sender_possible_duplicates_total"),
              static_cast<double>(PossibleDuplicateLines(stack, sender)))
        << sender << ": the metric and the log disagree";
  }

  // The accounting.
  size_t total = 0;
  size_t duplicates = 0;
  size_t unmatched = 0;  // duplicates with no "possible duplicate" logged for their message
  size_t lost = 0;
  size_t out_of_order_users = 0;
  std::map<std::string, int> duplicates_of;  // Katy's message id -> its duplicates at the Send API
  for (int user = 0; user < kUsers; ++user) {
    const auto& texts = received[UserId(user)];
    const auto& ids = meta_ids.at(UserId(user));
    ASSERT_EQ(ids.size(), texts.size());
    total += texts.size();
    std::vector<std::string> collapsed;  // a resend after a crash comes right after itself
    for (size_t i = 0; i < texts.size();) {
      size_t end = i + 1;
      while (end < texts.size() && texts[end] == texts[i]) ++end;
      collapsed.push_back(texts[i]);
      if (end - i > 1) {
        // The run's sends are one message: any of them its senders recorded names it.
        std::string katy_id;
        for (size_t k = i; k < end && katy_id.empty(); ++k) {
          auto found = logs.katy_id_of_meta_id.find(ids[k]);
          if (found != logs.katy_id_of_meta_id.end()) katy_id = found->second;
        }
        duplicates += end - i - 1;
        if (katy_id.empty()) {
          unmatched += end - i - 1;
          ADD_FAILURE() << UserId(user) << ": \"" << texts[i] << "\" sent " << end - i
                        << " times, and no sender recorded sending it";
        } else {
          duplicates_of[katy_id] += static_cast<int>(end - i - 1);
        }
      }
      i = end;
    }
    std::vector<std::string> expected;
    for (int n = 0; n < kMessagesPerUser; ++n) expected.push_back("echo: " + Text(user, n));
    const std::set<std::string> got(texts.begin(), texts.end());
    for (const auto& text : expected) lost += !got.contains(text) ? 1 : 0;
    if (collapsed != expected) ++out_of_order_users;
    EXPECT_EQ(collapsed, expected) << UserId(user) << ": replies lost, repeated out of place, or out of order";
  }
  for (const auto& [katy_id, count] : duplicates_of) {
    const auto logged = logs.possible_duplicates.find(katy_id);
    const int allowed = logged == logs.possible_duplicates.end() ? 0 : logged->second;
    if (count > allowed) {
      unmatched += static_cast<size_t>(count - allowed);
      ADD_FAILURE() << katy_id << " reached the Send API " << count << " extra times; its senders logged " << allowed
                    << " possible duplicates";
    }
  }
  // The 613 burst really happened (the emulator counts what it injected).
  http::Client http;
  auto faults = http.Get(stack.emulator_url() + "/_emulator/faults");
  ASSERT_TRUE(faults.ok() && faults->status == 200);
  const auto injected = nlohmann::json::parse(faults->body).value("injected", nlohmann::json::object());
  const int rate_limited = injected.value("613", 0);
  const int slow_calls = nlohmann::json::parse(faults->body).value("slow_calls", 0);
  std::printf(
      "chaos accounting: %d users x %d messages = %zu; webhooks delivered %d (retried %d times, %d delivered again "
      "after their 200); kills: %d responders, %d senders, %d Redis; 613s injected %d; calls slowed 200-600 ms %d; "
      "replies %zu, distinct %zu, "
      "lost %zu, users out of order %zu, duplicates at the Send API %zu, each matched to a possible duplicate "
      "logged for its message but %zu (logged %.0f); traffic %.1f s, total %.1f s\n",
      kUsers, kMessagesPerUser, kExpected, traffic.delivered(), traffic.retries(), traffic.redelivered(),
      chaos.responder_kills, chaos.sender_kills, chaos.redis_kills, rate_limited, slow_calls, total,
      DistinctReplies(received), lost, out_of_order_users, duplicates, unmatched, counted, traffic_seconds,
      std::chrono::duration<double>(Clock::now() - started).count());
  EXPECT_TRUE(all_replied) << "logs in " << stack.dir();
  EXPECT_EQ(traffic.delivered(), static_cast<int>(kExpected));
  EXPECT_EQ(lost, 0u);
  EXPECT_EQ(unmatched, 0u) << "a duplicate no sender logged for its message; logs in " << stack.dir();
  EXPECT_GT(traffic.redelivered(), 50) << "webhooks delivered again after their 200";
  EXPECT_GE(rate_limited, 1) << "the 613 burst never reached a sender";
  EXPECT_GE(slow_calls, 50) << "the latency spike never met the traffic";
  EXPECT_GT(chaos.responder_kills, 0);
  EXPECT_GT(chaos.sender_kills, 0);
  EXPECT_EQ(chaos.redis_kills, 1);
  RecordProperty("duplicates", static_cast<int>(duplicates));
  RecordProperty("counted", static_cast<int>(counted));
}

}  // namespace
}  // namespace katy
