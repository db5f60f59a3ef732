#include "tools/emulator/load_runner.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>

#include "common/clock.h"
#include "common/config.h"
#include "tools/emulator/emulator_server.h"
#include "tools/emulator/webhook_builder.h"
#include "tools/emulator/webhook_delivery.h"

namespace katy::emulator {
namespace {

using Clock = std::chrono::steady_clock;

double Ms(Clock::duration duration) { return std::chrono::duration<double, std::milli>(duration).count(); }

// Finds "load <n>" in a reply's text; -1 when absent.
int64_t TokenIn(const std::string& text) {
  auto at = text.find("load ");
  if (at == std::string::npos) return -1;
  int64_t value = 0;
  size_t i = at + 5;
  if (i >= text.size() || !std::isdigit(static_cast<unsigned char>(text[i]))) return -1;
  while (i < text.size() && std::isdigit(static_cast<unsigned char>(text[i]))) value = value * 10 + (text[i++] - '0');
  return value;
}

// The bookkeeping of one run. Thread-safe.
class Tracker {
 public:
  Tracker(size_t capacity, int users, int pages)
      : sent_at_(capacity), answered_(capacity, 0), outstanding_(users), reply_ms_(pages), pages_(pages) {}

  void Sent(int64_t seq, int user, Clock::time_point at) {
    std::lock_guard lock(mutex_);
    sent_at_[seq] = at;
    outstanding_[user].push_back(seq);
  }

  void Reply(int user, const std::string& text, Clock::time_point at) {
    std::lock_guard lock(mutex_);
    int64_t seq = TokenIn(text);
    auto& queue = outstanding_[user];
    if (seq >= 0 && seq < static_cast<int64_t>(answered_.size())) {
      auto found = std::find(queue.begin(), queue.end(), seq);
      if (found == queue.end()) {
        ++duplicates_;
        return;
      }
      if (found != queue.begin()) ++out_of_order_;
      queue.erase(found);
    } else {
      if (queue.empty()) {
        ++duplicates_;
        return;
      }
      seq = queue.front();
      queue.pop_front();
    }
    answered_[seq] = 1;
    latencies_ms_.push_back(Ms(at - sent_at_[seq]));
    reply_ms_[user % pages_].push_back(Ms(at.time_since_epoch()));
    last_reply_ = at;
  }

  void Failed() { ++send_failures_; }

  int64_t received() {
    std::lock_guard lock(mutex_);
    return static_cast<int64_t>(latencies_ms_.size());
  }

  LoadReport Report(int64_t sent, Clock::time_point first_send, double send_seconds,
                    const std::vector<std::string>& page_ids) {
    std::lock_guard lock(mutex_);
    LoadReport report;
    report.sent = sent - send_failures_;
    report.received = static_cast<int64_t>(latencies_ms_.size());
    report.lost = std::max<int64_t>(0, report.sent - report.received);
    report.duplicates = duplicates_;
    report.out_of_order = out_of_order_;
    report.send_failures = send_failures_;
    report.send_rate = send_seconds > 0 ? static_cast<double>(sent) / send_seconds : 0;
    const double span = std::chrono::duration<double>(last_reply_ - first_send).count();
    report.throughput = span > 0 ? static_cast<double>(report.received) / span : 0;
    FillPercentiles(latencies_ms_, &report);
    for (int page = 0; page < pages_; ++page) report.pages.push_back(ReplyRateFigures(page_ids[page], reply_ms_[page]));
    return report;
  }

 private:
  std::mutex mutex_;
  std::vector<Clock::time_point> sent_at_;
  std::vector<char> answered_;
  std::vector<std::deque<int64_t>> outstanding_;  // per user, oldest first
  std::vector<double> latencies_ms_;
  std::vector<std::vector<double>> reply_ms_;  // per page: when each reply arrived
  int pages_;
  int64_t duplicates_ = 0;
  int64_t out_of_order_ = 0;
  std::atomic<int64_t> send_failures_{0};
  Clock::time_point last_reply_{};
};

}  // namespace

void FillPercentiles(std::vector<double>& samples_ms, LoadReport* report) {
  if (samples_ms.empty()) return;
  std::sort(samples_ms.begin(), samples_ms.end());
  auto rank = [&](double percentile) {
    auto index = static_cast<size_t>(std::ceil(percentile / 100.0 * static_cast<double>(samples_ms.size())));
    return samples_ms[std::min(samples_ms.size() - 1, index == 0 ? 0 : index - 1)];
  };
  report->p50_ms = rank(50);
  report->p90_ms = rank(90);
  report->p99_ms = rank(99);
  report->max_ms = samples_ms.back();
}

PageReplyFigures ReplyRateFigures(const std::string& page, std::vector<double>& reply_ms) {
  PageReplyFigures figures;
  figures.page = page;
  figures.received = static_cast<int64_t>(reply_ms.size());
  if (reply_ms.empty()) return figures;
  std::sort(reply_ms.begin(), reply_ms.end());
  const double span_s = (reply_ms.back() - reply_ms.front()) / 1000;
  if (span_s > 0) figures.reply_rate = static_cast<double>(reply_ms.size() - 1) / span_s;
  // Two pointers: for each reply as a window's last, the replies less than 1 s before it.
  size_t first = 0;
  for (size_t last = 0; last < reply_ms.size(); ++last) {
    while (reply_ms[last] - reply_ms[first] >= 1000) ++first;
    figures.max_in_1s = std::max<int64_t>(figures.max_in_1s, static_cast<int64_t>(last - first + 1));
  }
  return figures;
}

std::string LoadReportJson(const LoadReport& report) {
  auto round2 = [](double value) { return std::round(value * 100) / 100; };
  nlohmann::json pages = nlohmann::json::array();
  for (const auto& page : report.pages) {
    pages.push_back({{"page", page.page},
                     {"received", page.received},
                     {"reply_rate", round2(page.reply_rate)},
                     {"max_in_1s", page.max_in_1s}});
  }
  nlohmann::json json{{"sent", report.sent},
                      {"received", report.received},
                      {"lost", report.lost},
                      {"duplicates", report.duplicates},
                      {"out_of_order", report.out_of_order},
                      {"throughput", round2(report.throughput)},
                      {"p50_ms", round2(report.p50_ms)},
                      {"p90_ms", round2(report.p90_ms)},
                      {"p99_ms", round2(report.p99_ms)},
                      {"max_ms", round2(report.max_ms)},
                      {"pages", std::move(pages)}};
  return json.dump();
}

Result<LoadOptions> ParseLoadArgs(const std::vector<std::string>& args) {
  LoadOptions options;
  if (const char* secret = std::getenv("KATY_APP_SECRET")) options.app_secret = secret;
  if (const char* listen = std::getenv("KATY_EMULATOR_ADDR")) options.listen = listen;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (arg == "--json") {
      options.json = true;
      continue;
    }
    if (i + 1 >= args.size()) return Error{ErrorCode::kInvalid, arg + " needs a value"};
    const std::string& value = args[++i];
    try {
      if (arg == "--ingress")
        options.ingress_url = value;
      else if (arg == "--listen")
        options.listen = value;
      else if (arg == "--app-secret")
        options.app_secret = value;
      else if (arg == "--page")
        options.page_id = value;
      else if (arg == "--pages")
        options.pages = std::stoi(value);
      else if (arg == "--users")
        options.users = std::stoi(value);
      else if (arg == "--rate")
        options.rate = std::stod(value);
      else if (arg == "--duration")
        options.duration_s = std::stod(value);
      else if (arg == "--drain")
        options.drain_s = std::stod(value);
      else if (arg == "--batch")
        options.batch = static_cast<size_t>(std::stoul(value));
      else if (arg == "--faults")
        options.faults_json = value;
      else
        return Error{ErrorCode::kInvalid, "unknown option " + arg};
    } catch (const std::exception&) {
      return Error{ErrorCode::kInvalid, arg + ": not a number: " + value};
    }
  }
  if (options.ingress_url.empty()) return Error{ErrorCode::kInvalid, "--ingress URL is required (ingress's /webhook)"};
  if (options.app_secret.empty()) return Error{ErrorCode::kInvalid, "--app-secret (or KATY_APP_SECRET) is required"};
  if (options.users < 1 || options.rate <= 0 || options.duration_s <= 0 || options.batch < 1 || options.pages < 1) {
    return Error{ErrorCode::kInvalid, "--users, --pages, --rate, --duration and --batch must be above 0"};
  }
  if (options.pages > options.users) return Error{ErrorCode::kInvalid, "--pages cannot exceed --users"};
  if (options.page_id.empty() || options.page_id.find_first_not_of("0123456789") != std::string::npos ||
      options.page_id.size() > 17) {
    return Error{ErrorCode::kInvalid, "--page must be a numeric page id"};
  }
  if (!config::ParseHostPort(options.listen)) return Error{ErrorCode::kInvalid, "--listen must be host:port"};
  return options;
}

Result<LoadReport> RunLoad(const LoadOptions& options, std::ostream& log) {
  const size_t capacity = static_cast<size_t>(options.rate * options.duration_s) + 1;
  Tracker tracker(capacity, options.users, options.pages);
  std::vector<std::string> page_ids;
  for (int page = 0; page < options.pages; ++page)
    page_ids.push_back(std::to_string(std::stoll(options.page_id) + page));
  const std::string user_prefix = "load-user-";

  EmulatorOptions emulator;
  emulator.address = *config::ParseHostPort(options.listen);
  emulator.app_secret = options.app_secret;
  emulator.ingress_url = options.ingress_url;
  emulator.faults_json = options.faults_json;
  emulator.threads = 8;
  emulator.on_message = [&](const RecordedMessage& message) {
    if (message.message_json.empty() || message.recipient.rfind(user_prefix, 0) != 0) return;
    auto body = nlohmann::json::parse(message.message_json, nullptr, false);
    const std::string text = body.is_object() ? body.value("text", "") : "";
    tracker.Reply(std::atoi(message.recipient.c_str() + user_prefix.size()), text, Clock::now());
  };
  auto server = EmulatorServer::Start(emulator);
  if (!server) return server.error();
  // Lanes of one POST at a time each, a user always on the same lane: a user's messages reach
  // ingress in the order sent (as Meta delivers them), so a reply out of order is the bot's.
  std::vector<std::unique_ptr<WebhookDelivery>> lanes;
  for (int lane = 0; lane < options.webhook_workers; ++lane) {
    lanes.push_back(std::make_unique<WebhookDelivery>(DeliveryOptions{
        .ingress_url = options.ingress_url, .app_secret = options.app_secret, .max_batch = options.batch}));
  }

  log << "load: " << options.users << " users, " << options.rate << " messages/s for " << options.duration_s << " s -> "
      << options.ingress_url << "; replies on http://" << options.listen << "\n";
  const auto start = Clock::now();
  const auto end =
      start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(options.duration_s));
  int64_t sent = 0;
  const int64_t total = static_cast<int64_t>(capacity) - 1;
  // Message ids unique to this run: ingress rightly drops a mid it has already taken, so a
  // second run against the same Redis must not reuse the first one's.
  const std::string mid_prefix = "m_load_" + std::to_string(WallClockMs()) + "_";
  // Open loop: at every moment, send what the rate says should have gone by now.
  while (sent < total) {
    const auto now = Clock::now();
    // Once the duration is over, whatever is left goes at once: a run sends rate × duration
    // messages (the last tick before the end used to be dropped, ~10 of a million).
    const int64_t due =
        now >= end
            ? total
            : std::min<int64_t>(
                  total, static_cast<int64_t>(std::chrono::duration<double>(now - start).count() * options.rate) + 1);
    for (; sent < due; ++sent) {
      const int user = static_cast<int>(sent % options.users);
      UserEvent event;
      event.page_id = page_ids[user % options.pages];
      event.psid = user_prefix + std::to_string(user);
      event.mid = mid_prefix + std::to_string(sent);
      event.timestamp_ms = WallClockMs();
      event.text = "load " + std::to_string(sent);
      tracker.Sent(sent, user, Clock::now());
      lanes[user % lanes.size()]->Enqueue(event.page_id, UserEventItem(event), [&tracker](int status) {
        if (status != 200) tracker.Failed();
      });
    }
    std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
  const double send_seconds = std::chrono::duration<double>(Clock::now() - start).count();
  log << "load: sent " << sent << " in " << send_seconds << " s; waiting up to " << options.drain_s
      << " s for the last replies\n";
  const auto drain_until =
      Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(options.drain_s));
  while (Clock::now() < drain_until && tracker.received() < sent)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  for (auto& lane : lanes) lane->Stop();
  (*server)->Shutdown();
  return tracker.Report(sent, start, send_seconds, page_ids);
}

}  // namespace katy::emulator
