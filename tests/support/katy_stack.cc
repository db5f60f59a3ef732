#include "tests/support/katy_stack.h"

#include <gtest/gtest.h>

#include <deque>
#include <fstream>
#include <iostream>
#include <limits>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>

#include "common/http/http_client.h"
#include "common/redis/redis_client.h"
#include "common/redis/streams.h"
#include "common/shard.h"

namespace katy::testing {

namespace {

// The ports in a log's "listening" and "serving webhooks" lines; nullopt until all the ones a
// process of that kind logs are there.
std::optional<std::map<std::string, int>> LoggedPorts(const std::string& log_path, bool expects_http,
                                                      bool expects_grpc) {
  std::ifstream in(log_path);
  std::map<std::string, int> ports;
  for (std::string line; std::getline(in, line);) {
    auto entry = nlohmann::json::parse(line, nullptr, false);
    if (!entry.is_object() || !entry.contains("msg")) continue;
    const std::string msg = entry["msg"].is_string() ? entry["msg"].get<std::string>() : "";
    if (msg != "listening" && msg != "serving webhooks") continue;
    for (const char* key : {"grpc_port", "admin_port", "http_port", "port"}) {
      if (entry.contains(key) && entry[key].is_number_integer()) ports[key] = entry[key].get<int>();
    }
  }
  const bool has_http = ports.contains("http_port") || ports.contains("port");
  const bool has_grpc = ports.contains("grpc_port") && ports.contains("admin_port");
  if ((expects_http && !has_http) || (expects_grpc && !has_grpc)) return std::nullopt;
  return ports;
}

// The last lines of a process's log, for a failing test's output: CI keeps no stack directory,
// and a failure seen once must say what the services did.
void PrintLogTail(const std::string& name, const std::string& log_path) {
  constexpr size_t kLines = 30;
  constexpr size_t kWidth = 400;
  std::ifstream in(log_path);
  std::deque<std::string> tail;
  for (std::string line; std::getline(in, line);) {
    tail.push_back(line.size() > kWidth ? line.substr(0, kWidth) + "..." : line);
    if (tail.size() > kLines) tail.pop_front();
  }
  std::cerr << "--- the last " << tail.size() << " lines of " << name << "'s log\n";
  for (const auto& line : tail) std::cerr << line << "\n";
}

}  // namespace

KatyStack::KatyStack(const Options& options) {
  dir_ = MakeTempDir("stack");
  std::ofstream(dir_ + "/rules.yaml") << options.rules_yaml;
  redis_url_ = options.redis_url;
  if (redis_url_.empty()) {
    redis_port_ = FreePort();
    redis_password_ = options.redis_password;
    const std::string credentials = redis_password_.empty() ? "" : ":" + redis_password_ + "@";
    redis_url_ = "redis://" + credentials + "127.0.0.1:" + std::to_string(redis_port_) + "/0";
    StartRedis();
    if (!WaitForPort(redis_port_, std::chrono::seconds(10))) return;
  }

  base_env_ = {{"KATY_REDIS_URL", redis_url()},      {"KATY_APP_SECRET", kAppSecret},
               {"KATY_VERIFY_TOKEN", kVerifyToken},  {"KATY_PAGE_TOKEN", kPageToken},
               {"KATY_RULES", dir_ + "/rules.yaml"}, {"KATY_LOG_LEVEL", "debug"}};
  for (const auto& [key, value] : options.extra_env) base_env_[key] = value;

  // Ingress first (the emulator delivers to it), then the emulator (the others call it).
  auto env = ServiceEnv();
  env["KATY_HTTP_ADDR"] = "127.0.0.1:0";
  ready_ = Launch("ingress", "katy-ingress", env);
  if (ready_) {
    env = base_env_;
    env["KATY_EMULATOR_ADDR"] = "127.0.0.1:0";
    env["KATY_INGRESS_URL"] = ingress_url();
    env["KATY_EMULATOR_PAGE_TOKEN"] = kPageToken;
    ready_ = Launch("emulator", "katy-emulator", env);
  }
  if (ready_) base_env_["KATY_GRAPH_URL"] = emulator_url() + "/v25.0";
  for (const char* name : {"responder", "sender"}) {
    ready_ = ready_ && Launch(name, std::string("katy-") + name, ServiceEnv());
  }
  if (!ready_) ADD_FAILURE() << "the stack did not start; logs in " << dir_;
}

bool KatyStack::Launch(const std::string& name, const std::string& binary,
                       const std::map<std::string, std::string>& env) {
  const std::string log_path = dir_ + "/" + name + ".log";
  processes_[name] = std::make_unique<Process>(BinaryPath(binary), std::vector<std::string>{}, env, log_path);
  const bool is_emulator = name == "emulator";
  const bool serves_http = is_emulator || name == "ingress";
  std::optional<std::map<std::string, int>> logged;
  WaitFor(
      [&] {
        logged = LoggedPorts(log_path, serves_http, !is_emulator);
        return logged.has_value() || !processes_[name]->Running();
      },
      std::chrono::seconds(10));
  if (!logged) return false;
  Ports& ports = ports_[name];
  ports.grpc = (*logged)["grpc_port"];
  ports.admin = (*logged)["admin_port"];
  ports.http = is_emulator ? (*logged)["port"] : (*logged)["http_port"];
  return true;
}

KatyStack::~KatyStack() {
  if (::testing::Test::HasFailure()) {
    for (const auto& [name, process] : processes_) PrintLogTail(name, dir_ + "/" + name + ".log");
  }
  // Services first, Redis last.
  for (auto it = processes_.begin(); it != processes_.end();) {
    if (it->first != "redis")
      it = processes_.erase(it);
    else
      ++it;
  }
  processes_.clear();
}

std::map<std::string, std::string> KatyStack::ServiceEnv() const {
  auto env = base_env_;
  // Each process picks its own gRPC and admin ports, so several can run side by side.
  env["KATY_GRPC_ADDR"] = "127.0.0.1:0";
  env["KATY_ADMIN_ADDR"] = "127.0.0.1:0";
  // Tests wait on the queue gauges (WaitUntilDrained): every scrape reads them afresh, unless a
  // test sets its own (the shared read has its own tests).
  env.emplace("KATY_STATUS_MAX_AGE_MS", "0");
  return env;
}

Process& KatyStack::StartExtra(const std::string& name, const std::string& binary, std::string* started_name) {
  std::string key = name + "-" + std::to_string(++extra_count_);
  if (started_name != nullptr) *started_name = key;
  EXPECT_TRUE(Launch(key, binary, ServiceEnv())) << key << " did not start; logs in " << dir_;
  return *processes_[key];
}

void KatyStack::StartRedis() {
  std::vector<std::string> args{"--port",        std::to_string(redis_port_),
                                "--bind",        "127.0.0.1",
                                "--dir",         dir_,
                                "--appendonly",  "yes",
                                "--appendfsync", "everysec",
                                "--save",        ""};
  if (!redis_password_.empty()) args.insert(args.end(), {"--requirepass", redis_password_});
  processes_["redis"] = std::make_unique<Process>("/usr/bin/redis-server", args, std::map<std::string, std::string>{},
                                                  dir_ + "/redis.log");
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
  return "http://127.0.0.1:" + std::to_string(ports_.at(process_name).admin);
}

std::string KatyStack::GrpcAddress(const std::string& process_name) const {
  return "127.0.0.1:" + std::to_string(ports_.at(process_name).grpc);
}

std::optional<std::string> KatyStack::Scrape(const std::string& process_name) const {
  http::Client http;
  auto response = http.Get(AdminUrl(process_name) + "/metrics");
  if (!response || response->status != 200) {
    ADD_FAILURE() << "cannot scrape " << process_name << "'s /metrics";
    return std::nullopt;
  }
  return std::move(response->body);
}

double KatyStack::MetricSum(const std::string& process_name, const std::string& metric,
                            const std::string& label) const {
  return SumOf(Scrape(process_name), metric, label);
}

bool KatyStack::WaitUntilDrained(std::chrono::milliseconds timeout) const {
  return WaitFor([&] { return Drained(Scrape("ingress")); }, timeout);
}

double SumOf(const std::optional<std::string>& scrape, const std::string& metric, const std::string& label) {
  // NaN equals nothing: a check built on a scrape that failed must fail, not pass as a 0 would.
  if (!scrape) return std::numeric_limits<double>::quiet_NaN();
  double sum = 0;
  std::istringstream lines(*scrape);
  for (std::string line; std::getline(lines, line);) {
    if (line.rfind(metric, 0) != 0) continue;
    const char next = line.size() > metric.size() ? line[metric.size()] : '\0';
    if (next != '{' && next != ' ') continue;  // another metric sharing the prefix
    if (!label.empty() && line.find(label) == std::string::npos) continue;
    sum += std::atof(line.substr(line.rfind(' ') + 1).c_str());
  }
  return sum;
}

bool Drained(const std::optional<std::string>& scrape, const std::string& label) {
  // Only a scrape that read Redis says so: when the read fails, the queue families are left
  // out, and their absence would read as zero.
  return SumOf(scrape, "katy_redis_up") == 1 && SumOf(scrape, "katy_stream_lag", label) == 0 &&
         SumOf(scrape, "katy_stream_pending", label) == 0;
}

CommandResult Katyctl(const KatyStack& stack, const std::string& service, const std::string& args) {
  return RunCommand(BinaryPath("katyctl") + " --addr " + stack.GrpcAddress(service) + " " + args);
}

std::map<std::string, int> LeaseOwners(const KatyStack& stack, const std::string& role) {
  std::map<std::string, int> owners;
  const auto status = nlohmann::json::parse(Katyctl(stack, "ingress", "--json status").output, nullptr, false);
  if (!status.is_object()) {
    ADD_FAILURE() << "katyctl status gave no JSON";
    return owners;
  }
  for (const auto& lease : status.value("leases", nlohmann::json::array())) {
    if (lease.value("role", "") == role && lease.contains("owner")) ++owners[lease["owner"].get<std::string>()];
  }
  return owners;
}

void Say(const KatyStack& stack, const std::string& psid, const std::string& text) {
  SayWith(stack, {{"psid", psid}, {"text", text}});
}

void SayWith(const KatyStack& stack, nlohmann::json fields) {
  if (!fields.contains("page")) fields["page"] = "1045";
  http::Client http;
  auto said = http.Post(stack.emulator_url() + "/_emulator/say", fields.dump());
  ASSERT_TRUE(said.ok());
  ASSERT_EQ(said->status, 200) << said->body;
}

std::vector<std::string> TracesOf(redis::Client& redis, const std::string& needle) {
  std::vector<std::string> found;
  auto keys = redis.ScanKeys("*");
  if (!keys.ok()) keys = redis.ScanKeys("*");  // a connection from before a Redis restart
  if (!keys.ok()) return {"the scan failed: " + keys.error().message};
  auto holds = [&](const std::string& key, const redis::Reply& reply, const char* where) {
    std::vector<const redis::Reply*> todo{&reply};
    while (!todo.empty()) {
      const redis::Reply* one = todo.back();
      todo.pop_back();
      if (one->str.find(needle) != std::string::npos) found.push_back(key + ": " + where);
      for (const auto& element : one->elements) todo.push_back(&element);
    }
  };
  for (const auto& key : *keys) {
    if (key.find(needle) != std::string::npos) found.push_back(key + ": its name");
    const std::string type = redis.Command({"TYPE", key})->str;
    if (type == "string") holds(key, *redis.Command({"GET", key}), "value");
    if (type == "hash") holds(key, *redis.Command({"HGETALL", key}), "hash");
    if (type == "set") holds(key, *redis.Command({"SMEMBERS", key}), "set");
    if (type == "zset") holds(key, *redis.Command({"ZRANGE", key, "0", "-1"}), "sorted set");
    if (type == "list") holds(key, *redis.Command({"LRANGE", key, "0", "-1"}), "list");
    if (type == "stream") holds(key, *redis.Command({"XRANGE", key, "-", "+"}), "stream entry");
  }
  return found;
}

std::multiset<std::string> DeadLetterReasons(const KatyStack& stack) {
  constexpr int kShards = 16;
  redis::Client client(*redis::ParseUrl(stack.redis_url()));
  KeySpace keys("katy", kShards);
  std::multiset<std::string> reasons;
  for (int shard = 0; shard < kShards; ++shard) {
    auto range = client.Command({"XRANGE", keys.DeadLetters(shard), "-", "+"});
    if (!range) continue;
    for (const auto& entry : redis::ParseEntries(keys.DeadLetters(shard), *range)) {
      reasons.insert(entry.Field("reason").value_or(""));
    }
  }
  return reasons;
}

namespace {

// The emulator's record of what page 1045 sent `psid` and did about it (thread control
// included); the calling test fails when it cannot be read (an empty list would pass for
// "nothing was sent").
nlohmann::json RecordedFor(const KatyStack& stack, const std::string& psid) {
  http::Client http;
  auto response = http.Get(stack.emulator_url() + "/_emulator/messages?psid=" + psid);
  if (!response || response->status != 200) {
    ADD_FAILURE() << "cannot read the emulator's messages";
    return nlohmann::json::array();
  }
  return nlohmann::json::parse(response->body);
}

// What the Send API took for `psid`: messages and sender actions, not thread control.
nlohmann::json SentTo(const KatyStack& stack, const std::string& psid) {
  nlohmann::json sent = nlohmann::json::array();
  for (auto& record : RecordedFor(stack, psid)) {
    if (!record.contains("thread_control")) sent.push_back(std::move(record));
  }
  return sent;
}

}  // namespace

size_t RepliesTo(const KatyStack& stack, const std::string& psid) { return SentTo(stack, psid).size(); }

std::vector<std::string> ReplyTexts(const KatyStack& stack, const std::string& psid) {
  std::vector<std::string> texts;
  for (const auto& message : SentTo(stack, psid)) {
    texts.push_back(message["message"].value("text", ""));
  }
  return texts;
}

std::vector<std::string> CallsAbout(const KatyStack& stack, const std::string& psid) {
  std::vector<std::string> calls;
  for (const auto& record : RecordedFor(stack, psid)) {
    if (record.contains("thread_control")) {
      const std::string target = record.value("target_app_id", "");
      calls.push_back("<" + record["thread_control"].get<std::string>() + (target.empty() ? "" : " " + target) + ">");
    } else if (record.contains("sender_action")) {
      calls.push_back("<" + record["sender_action"].get<std::string>() + ">");
    } else {
      const std::string text = record.contains("message") ? record["message"].value("text", "") : "";
      calls.push_back(record.contains("app_id") ? "inbox: " + text : text);
    }
  }
  return calls;
}

}  // namespace katy::testing
