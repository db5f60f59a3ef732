#include "tests/support/katy_stack.h"

#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "common/http/http_client.h"

namespace katy::testing {

KatyStack::KatyStack(const Options& options) {
  dir_ = MakeTempDir("stack");
  redis_port_ = FreePort();
  emulator_port_ = FreePort();
  ingress_port_ = FreePort();
  std::ofstream(dir_ + "/rules.yaml") << options.rules_yaml;

  StartRedis();
  if (!WaitForPort(redis_port_, std::chrono::seconds(10))) return;

  base_env_ = {{"KATY_REDIS_URL", redis_url()},      {"KATY_APP_SECRET", kAppSecret},
               {"KATY_VERIFY_TOKEN", kVerifyToken},  {"KATY_PAGE_TOKEN", kPageToken},
               {"KATY_RULES", dir_ + "/rules.yaml"}, {"KATY_GRAPH_URL", emulator_url() + "/v25.0"},
               {"KATY_LOG_LEVEL", "debug"}};
  for (const auto& [key, value] : options.extra_env) base_env_[key] = value;

  auto env = ServiceEnv("emulator");
  env["KATY_EMULATOR_ADDR"] = "127.0.0.1:" + std::to_string(emulator_port_);
  env["KATY_INGRESS_URL"] = ingress_url();
  env["KATY_EMULATOR_PAGE_TOKEN"] = kPageToken;
  processes_["emulator"] =
      std::make_unique<Process>(BinaryPath("katy-emulator"), std::vector<std::string>{}, env, dir_ + "/emulator.log");
  env = ServiceEnv("ingress");
  env["KATY_HTTP_ADDR"] = "127.0.0.1:" + std::to_string(ingress_port_);
  envs_["ingress"] = env;
  processes_["ingress"] =
      std::make_unique<Process>(BinaryPath("katy-ingress"), std::vector<std::string>{}, env, dir_ + "/ingress.log");
  for (const char* name : {"responder", "sender"}) {
    envs_[name] = ServiceEnv(name);
    processes_[name] = std::make_unique<Process>(BinaryPath(std::string("katy-") + name), std::vector<std::string>{},
                                                 envs_[name], dir_ + "/" + name + ".log");
  }
  ready_ =
      WaitForPort(emulator_port_, std::chrono::seconds(10)) && WaitForPort(ingress_port_, std::chrono::seconds(10));
  for (const char* name : {"responder", "sender"}) ready_ = ready_ && processes_[name]->Running();
  if (!ready_) {
    ADD_FAILURE() << "the stack did not start; logs in " << dir_;
  }
}

KatyStack::~KatyStack() {
  // Services first, Redis last.
  for (auto it = processes_.begin(); it != processes_.end();) {
    if (it->first != "redis")
      it = processes_.erase(it);
    else
      ++it;
  }
  processes_.clear();
}

std::map<std::string, std::string> KatyStack::ServiceEnv(const std::string& name) const {
  auto env = base_env_;
  // Each process gets its own gRPC and admin ports so several can run side by side.
  env["KATY_GRPC_ADDR"] = "127.0.0.1:" + std::to_string(FreePort());
  env["KATY_ADMIN_ADDR"] = "127.0.0.1:" + std::to_string(FreePort());
  return env;
}

Process& KatyStack::StartExtra(const std::string& name, const std::string& binary, std::string* started_name) {
  std::string key = name + "-" + std::to_string(++extra_count_);
  if (started_name != nullptr) *started_name = key;
  envs_[key] = ServiceEnv(name);
  processes_[key] =
      std::make_unique<Process>(BinaryPath(binary), std::vector<std::string>{}, envs_[key], dir_ + "/" + key + ".log");
  return *processes_[key];
}

void KatyStack::StartRedis() {
  processes_["redis"] = std::make_unique<Process>(
      "/usr/bin/redis-server",
      std::vector<std::string>{"--port", std::to_string(redis_port_), "--bind", "127.0.0.1", "--dir", dir_,
                               "--appendonly", "yes", "--appendfsync", "everysec", "--save", ""},
      std::map<std::string, std::string>{}, dir_ + "/redis.log");
  WaitForPort(redis_port_, std::chrono::seconds(10));
}

void KatyStack::StopRedis() { processes_.at("redis")->Kill(); }

std::string KatyStack::AllLogs() const {
  std::string all;
  for (const auto& [name, process] : processes_) {
    std::ifstream in(dir_ + "/" + name + ".log");
    std::stringstream text;
    text << in.rdbuf();
    all += text.str();
  }
  return all;
}

std::string KatyStack::AdminUrl(const std::string& process_name) const {
  return "http://" + envs_.at(process_name).at("KATY_ADMIN_ADDR");
}

std::string KatyStack::GrpcAddress(const std::string& process_name) const {
  return envs_.at(process_name).at("KATY_GRPC_ADDR");
}

double KatyStack::MetricSum(const std::string& process_name, const std::string& metric) const {
  http::Client http;
  auto response = http.Get(AdminUrl(process_name) + "/metrics");
  if (!response || response->status != 200) return 0;
  double sum = 0;
  std::istringstream lines(response->body);
  for (std::string line; std::getline(lines, line);) {
    if (line.rfind(metric, 0) != 0) continue;
    const char next = line.size() > metric.size() ? line[metric.size()] : '\0';
    if (next != '{' && next != ' ') continue;  // another metric sharing the prefix
    sum += std::atof(line.substr(line.rfind(' ') + 1).c_str());
  }
  return sum;
}

}  // namespace katy::testing
