#pragma once

#include <chrono>
#include <ostream>
#include <string>
#include <vector>

#include "common/defaults.h"
#include "common/result.h"

namespace katy::emulator {

struct LoadOptions {
  std::string ingress_url;                                // --ingress
  std::string listen = std::string(defaults::kEmulator);  // --listen: this run's Send API (the bot's KATY_GRAPH_URL)
  std::string app_secret;                                 // --app-secret or KATY_APP_SECRET: signs the webhooks
  std::string page_id = "104560000000001";                // --page: the first page's id
  int pages = 1;                                          // --pages: users spread over this many
                                                          // pages, ids page_id, page_id + 1, ...
  int users = 100;                                        // --users
  double rate = 100;                                      // --rate: messages per second, all users together
  double duration_s = 10;                                 // --duration
  double drain_s = 10;                                    // --drain: how long to wait for the last replies
  size_t batch = 50;                                      // --batch: messaging items per webhook POST at most
  int webhook_workers = 4;                                // POSTs in flight at once (lanes of users)
  std::string faults_json;                                // --faults: injected into this run's Send API
  bool json = false;                                      // --json
};

// When one page's replies arrived: the rate a page limit is checked against.
struct PageReplyFigures {
  std::string page;
  int64_t received = 0;
  double reply_rate = 0;  // replies per second from the page's first reply to its last
  int64_t max_in_1s = 0;  // most replies within any one second (a sliding window, not clock seconds)
};

// What one load run measured.
struct LoadReport {
  int64_t sent = 0;                                       // messages delivered to ingress (200)
  int64_t received = 0;                                   // replies matched to a message
  int64_t lost = 0;                                       // sent but never answered within the drain time
  int64_t duplicates = 0;                                 // replies beyond one per message
  int64_t out_of_order = 0;                               // replies that overtook an earlier message of the same user
  double throughput = 0;                                  // replies per second over the run
  double p50_ms = 0, p90_ms = 0, p99_ms = 0, max_ms = 0;  // webhook sent -> reply received
  double send_rate = 0;                 // messages per second actually sent (the generator's own pace)
  int64_t send_failures = 0;            // messages ingress never accepted
  std::vector<PageReplyFigures> pages;  // one per page, in page order
};

// The latency figures of `samples_ms` (sorted in place): nearest-rank percentiles. Pure.
void FillPercentiles(std::vector<double>& samples_ms, LoadReport* report);

// A page's reply rate and busiest second from its replies' arrival times in ms (sorted in
// place); `page` and `received` are filled too. Pure.
PageReplyFigures ReplyRateFigures(const std::string& page, std::vector<double>& reply_ms);

// The report's last line for --json: exactly sent, received, lost, duplicates, out_of_order,
// throughput, p50_ms, p90_ms, p99_ms, max_ms, and pages: [{page, received, reply_rate,
// max_in_1s}]. Pure.
std::string LoadReportJson(const LoadReport& report);

// Parses `katy-emulator load ...` arguments (after "load"). Error "usage" says what is wrong.
Result<LoadOptions> ParseLoadArgs(const std::vector<std::string>& args);

// Plays `users` users (spread over `pages` pages) sending `rate` messages/s in total for
// `duration` (open loop: sending never waits for replies), receives the bot's replies on its own Send API at `listen`,
// and reports. Expects one text reply per message (a reply that contains "load <n>" is matched to message n exactly,
// and counted out of order when an earlier message of the user is still unanswered; others to the user's oldest
// unanswered message). Prints progress to `log`.
Result<LoadReport> RunLoad(const LoadOptions& options, std::ostream& log);

}  // namespace katy::emulator
