#pragma once

#include <map>
#include <memory>
#include <string>

#include "tests/support/test_support.h"

namespace katy::testing {

// A whole Katy as real processes on free loopback ports: a private redis-server (AOF on), the
// emulator, ingress, responder and sender. Tests talk to it over HTTP like a user would.
class KatyStack {
 public:
  struct Options {
    std::string rules_yaml;                        // written to a file for KATY_RULES
    std::map<std::string, std::string> extra_env;  // added to every service's environment
  };
  explicit KatyStack(const Options& options);
  ~KatyStack();

  // True when every process started and is accepting connections.
  bool ready() const { return ready_; }
  std::string emulator_url() const { return "http://127.0.0.1:" + std::to_string(emulator_port_); }
  std::string ingress_url() const { return "http://127.0.0.1:" + std::to_string(ingress_port_) + "/webhook"; }
  std::string redis_url() const { return "redis://127.0.0.1:" + std::to_string(redis_port_) + "/0"; }
  const std::string& dir() const { return dir_; }
  Process& process(const std::string& name) { return *processes_.at(name); }
  // The environment the services were started with (for starting more instances).
  std::map<std::string, std::string> ServiceEnv(const std::string& name) const;
  // Starts one more process of a service (responder or sender) with its own ports; its name in
  // process() and AdminUrl() is "<name>-<n>" (also put in `started_name` when given).
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
  // The sum of every sample of `metric` (any labels) in a process's /metrics; 0 when absent.
  double MetricSum(const std::string& process_name, const std::string& metric) const;

  static constexpr const char* kAppSecret = "e2e-app-secret";
  static constexpr const char* kPageToken = "e2e-page-token";
  static constexpr const char* kVerifyToken = "e2e-verify-token";

 private:
  std::string dir_;
  int redis_port_ = 0;
  int emulator_port_ = 0;
  int ingress_port_ = 0;
  std::map<std::string, std::string> base_env_;
  std::map<std::string, std::unique_ptr<Process>> processes_;
  std::map<std::string, std::map<std::string, std::string>> envs_;  // process name -> its environment
  int extra_count_ = 0;
  bool ready_ = false;
};

}  // namespace katy::testing
