#pragma once

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/redis/redis_client.h"

namespace katy::testing {

// The bytes of tests/fixtures/webhooks/<name>, exactly as stored.
std::string ReadFixture(const std::string& name);
// Every fixture file name (*.json) in tests/fixtures/webhooks.
std::vector<std::string> FixtureNames();
std::string FixturesDir();

// The Redis the test script started (KATY_TEST_REDIS_URL). Fails the calling test with a clear
// message when the variable is missing (run the suites through scripts/test.sh).
redis::Options TestRedisOptions();
// A key prefix no other test uses, so tests sharing one Redis never see each other's keys.
std::string UniquePrefix(const std::string& test_name);

// True when 127.0.0.1:port can be bound now.
bool PortIsFree(int port);
// A TCP port that was free a moment ago (bound to port 0, read back, closed).
int FreePort();
// True once something accepts TCP connections on 127.0.0.1:port, polling up to `timeout`.
bool WaitForPort(int port, std::chrono::milliseconds timeout);
// Polls `condition` every 20 ms until it holds or `timeout` passes; returns its last value.
bool WaitFor(const std::function<bool()>& condition, std::chrono::milliseconds timeout);

// The headers Meta signs a webhook with: Content-Type and X-Hub-Signature-256 (HMAC-SHA256 of
// `body` under the app secret).
std::vector<std::string> SignedWebhookHeaders(const std::string& app_secret, const std::string& body);

// The most events any 1-second window holds (a window (t - 1000 ms, t]), for times in
// milliseconds in any order: what a rate limit of N per second must keep at N or a little over.
size_t BusiestSecond(std::vector<double> times_ms);

// A real child process (fork + exec) with extra environment variables; stdout and stderr go
// to `log_path`. Terminated (SIGTERM, then SIGKILL after 5 s) when destroyed.
class Process {
 public:
  Process(const std::string& binary, const std::vector<std::string>& args,
          const std::map<std::string, std::string>& env, const std::string& log_path);
  ~Process();
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;

  pid_t pid() const { return pid_; }
  bool Running();
  // Sends `signal` and waits up to `timeout` for exit; returns the exit status (or -signal), or
  // nullopt-like -1000 when it did not exit in time.
  int Stop(int signal, std::chrono::milliseconds timeout);
  void Kill();  // SIGKILL, reaped

 private:
  pid_t pid_ = -1;
  bool reaped_ = false;
  int status_ = 0;
};

// A Python HTTP server of the repository (`script`, relative to its root, taking the port as
// its one argument) on a free port of 127.0.0.1, logging to a temporary directory. The calling
// test fails if it does not accept connections within 10 s.
class PythonHttpServer {
 public:
  explicit PythonHttpServer(const std::string& script);
  std::string Url(const std::string& path) const { return "http://127.0.0.1:" + std::to_string(port_) + path; }

 private:
  int port_;
  std::string dir_;
  std::unique_ptr<Process> process_;
};

// tests/skills/weather_skill.py (its paths: /weather, /broken, /slow, /echo?delay_ms=N,
// /agent, /bot).
class ExampleSkill : public PythonHttpServer {
 public:
  ExampleSkill() : PythonHttpServer("tests/skills/weather_skill.py") {}
};

// tests/support/late_http_server.py: answers /late?ms=N after N ms without a thread per
// request (asyncio), /close by hanging up mid-answer, /big?bytes=N; /stats counts calls in
// flight now and at most.
class LateHttpServer : public PythonHttpServer {
 public:
  LateHttpServer() : PythonHttpServer("tests/support/late_http_server.py") {}
  // {"in_flight", "most_in_flight", "connections"}; {} (and a test failure) when unreadable.
  nlohmann::json Stats() const;
};

// A throwaway redis-server on 127.0.0.1:port (no persistence, files in `dir`), for tests that
// stop, stall or reconfigure their Redis. `extra_args` are appended ("--requirepass", "x").
// Returns once it accepts connections (the calling test fails if it does not within 5 s).
std::unique_ptr<Process> StartPrivateRedis(int port, const std::string& dir,
                                           const std::vector<std::string>& extra_args = {});

// Runs a shell command to completion; returns its exit status and what it printed
// (stdout and stderr together).
struct CommandResult {
  int status = -1;
  std::string output;
};
CommandResult RunCommand(const std::string& command);

// Where the built binaries are (build/bin).
std::string BinaryPath(const std::string& name);
// A fresh temporary directory for a test's logs and files: removed when the process's tests
// have all passed, kept when one failed.
std::string MakeTempDir(const std::string& tag);

}  // namespace katy::testing
