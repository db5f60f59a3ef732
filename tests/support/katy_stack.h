#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "common/redis/redis_client.h"
#include "tests/support/test_support.h"

namespace katy::testing {

// A whole Katy as real processes on loopback: a private redis-server (AOF on), ingress, the
// emulator, responder and sender. Every Katy process binds port 0 and the stack reads the
// ports it chose from its log ("listening"), so no port is picked early and lost to a race;
// a process counts as started once it has logged them. Redis alone gets a port picked
// beforehand: it cannot bind port 0, and it must come back on the same port after StopRedis.
// Tests talk to the stack over HTTP and gRPC like a user would.
class KatyStack {
 public:
  struct Options {
    std::string rules_yaml;                        // written to a file for KATY_RULES
    std::map<std::string, std::string> extra_env;  // added to every service's environment
    std::string redis_url = {};       // a Redis (or Redis Cluster) the test runs itself; empty: a private one
    std::string redis_password = {};  // the private Redis's requirepass (in the URL the services get)
  };
  explicit KatyStack(const Options& options);
  ~KatyStack();

  // True when every process started and is accepting connections.
  bool ready() const { return ready_; }
  std::string emulator_url() const { return "http://127.0.0.1:" + std::to_string(ports_.at("emulator").http); }
  std::string ingress_url() const {
    return "http://127.0.0.1:" + std::to_string(ports_.at("ingress").http) + "/webhook";
  }
  const std::string& redis_url() const { return redis_url_; }
  const std::string& dir() const { return dir_; }
  Process& process(const std::string& name) { return *processes_.at(name); }
  // The environment a service is started with: the stack's settings, port 0 for gRPC and admin.
  std::map<std::string, std::string> ServiceEnv() const;
  // Starts one more process of a service (responder or sender) and waits until it listens;
  // its name in process() and AdminUrl() is "<name>-<n>" (also put in `started_name`). The
  // calling test fails if it does not start.
  Process& StartExtra(const std::string& name, const std::string& binary, std::string* started_name = nullptr);
  // Stops Redis (SIGKILL) or starts it again on the same port and data directory (its AOF
  // brings the data back).
  void StopRedis();
  void StartRedis();
  // Every log line the stack's processes wrote so far.
  std::string AllLogs() const;
  // http://127.0.0.1:<admin port> of a started service process ("ingress", "sender-1", ...).
  std::string AdminUrl(const std::string& process_name) const;
  std::string GrpcAddress(const std::string& process_name) const;
  // The sum of the samples of `metric` in a process's /metrics whose labels include
  // `label` (say `outcome="wait"`; empty: every sample); 0 when there is no such sample
  // (prometheus-cpp leaves out a labelled family until its first sample, so absence cannot be
  // told from zero). When the scrape fails, the calling test fails and the answer is NaN, so no
  // comparison with it holds.
  double MetricSum(const std::string& process_name, const std::string& metric, const std::string& label = "") const;
  // One scrape of a process's /metrics, for checks that read several samples at one instant;
  // nullopt (and the calling test fails) when it cannot be scraped.
  std::optional<std::string> Scrape(const std::string& process_name) const;
  // Waits until nothing is left to handle or send: no entry undelivered or unacknowledged in any
  // stream (Drained, on ingress's scrapes). A duplicate or a late reply would have reached the
  // Send API by then. False on timeout.
  bool WaitUntilDrained(std::chrono::milliseconds timeout) const;

  static constexpr const char* kAppSecret = "e2e-app-secret-5d81c2";
  static constexpr const char* kPageToken = "e2e-page-token";
  static constexpr const char* kVerifyToken = "e2e-verify-token";

 private:
  // The ports a process logged: grpc and admin (services), http (ingress's webhook port,
  // the emulator's port).
  struct Ports {
    int grpc = 0;
    int admin = 0;
    int http = 0;
  };
  // Starts `binary` as process `name` and waits until its log names its ports (false when it
  // exits or 10 s pass first).
  bool Launch(const std::string& name, const std::string& binary, const std::map<std::string, std::string>& env);

  std::string dir_;
  int redis_port_ = 0;  // 0 when the test gave a Redis of its own
  std::string redis_password_;
  std::string redis_url_;
  std::map<std::string, Ports> ports_;  // process name -> the ports it chose
  std::map<std::string, std::string> base_env_;
  std::map<std::string, std::unique_ptr<Process>> processes_;
  int extra_count_ = 0;
  bool ready_ = false;
};

// Runs the real katyctl against a service process of the stack ("ingress", "sender-1", ...).
CommandResult Katyctl(const KatyStack& stack, const std::string& service, const std::string& args);
// The sum of the samples of `metric` in one scrape (KatyStack::Scrape) whose labels include
// `label`, as KatyStack::MetricSum; NaN when the scrape failed.
double SumOf(const std::optional<std::string>& scrape, const std::string& metric, const std::string& label = "");
// Whether a scrape says no entry waits undelivered or unacknowledged in any stream (of the
// streams whose labels include `label`): katy_stream_lag and katy_stream_pending at 0, in a
// scrape that did read Redis (katy_redis_up 1). One scrape for both: between two, an entry can
// move from a stream where it was pending to one where it waits, and neither read would see it.
bool Drained(const std::optional<std::string>& scrape, const std::string& label = "");
// Who holds the shards of `role` ("responder" or "sender"), as `katyctl status` on ingress
// reports the leases: owner -> how many shards.
std::map<std::string, int> LeaseOwners(const KatyStack& stack, const std::string& role);
// User `psid` writes `text` to page 1045 through the emulator (a signed webhook to ingress);
// the calling test fails unless the emulator answers 200.
void Say(const KatyStack& stack, const std::string& psid, const std::string& text);
// The same with any of /_emulator/say's fields (tools/emulator/README.md); page 1045 unless
// `fields` names one.
void SayWith(const KatyStack& stack, nlohmann::json fields);
// The reasons of every dead letter in the stack's Redis (16 shards, prefix katy), in no order.
std::multiset<std::string> DeadLetterReasons(const KatyStack& stack);
// Every place in a Redis (or Redis Cluster) that holds `needle`: key names, and every string,
// hash field and value, set and sorted-set member, list item and stream entry field, as
// "<key>: <where>" (privacy tests: "no trace of the person"). A failed scan is one such line,
// so an empty answer always means a scan that found nothing.
std::vector<std::string> TracesOf(redis::Client& redis, const std::string& needle);
// What page 1045 has sent `psid` so far, as the emulator's Send API recorded it: how many
// messages, and their texts in order ("" for a message without text).
size_t RepliesTo(const KatyStack& stack, const std::string& psid);
std::vector<std::string> ReplyTexts(const KatyStack& stack, const std::string& psid);
// Every call page 1045 made to Meta about `psid`, in the order the emulator took them: a
// message's text, "<typing_on>" for a sender action, "<pass_thread_control TARGET>" and
// "<take_thread_control>" for the Handover Protocol's calls, "inbox: TEXT" for a person's
// answer from the Page Inbox.
std::vector<std::string> CallsAbout(const KatyStack& stack, const std::string& psid);

}  // namespace katy::testing
