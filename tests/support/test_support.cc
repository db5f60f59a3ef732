#include "tests/support/test_support.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <utime.h>
#include <csignal>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <deque>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <random>
#include <sstream>
#include <thread>

#include "common/hmac.h"
#include "common/http/http_client.h"

namespace katy::testing {

std::string FixturesDir() { return std::string(KATY_SOURCE_DIR) + "/tests/fixtures/webhooks"; }

std::string ReadFixture(const std::string& name) {
  std::ifstream in(FixturesDir() + "/" + name, std::ios::binary);
  if (!in) {
    ADD_FAILURE() << "missing fixture " << name;
  }
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

std::vector<std::string> FixtureNames() {
  std::vector<std::string> names;
  if (DIR* dir = opendir(FixturesDir().c_str())) {
    while (dirent* entry = readdir(dir)) {
      std::string name = entry->d_name;
      if (name.size() > 5 && name.substr(name.size() - 5) == ".json") names.push_back(name);
    }
    closedir(dir);
  }
  std::sort(names.begin(), names.end());
  return names;
}

redis::Options TestRedisOptions() {
  const char* url = std::getenv("KATY_TEST_REDIS_URL");
  if (url == nullptr || *url == '\0') {
    ADD_FAILURE() << "KATY_TEST_REDIS_URL is not set: run the suites through scripts/test.sh, "
                     "which starts a Redis for them";
    return {};
  }
  auto options = redis::ParseUrl(url);
  if (!options) {
    ADD_FAILURE() << options.error().message;
  }
  return options ? *options : redis::Options{};
}

std::string UniquePrefix(const std::string& test_name) {
  static std::atomic<int> counter{0};
  return "t" + std::to_string(getpid()) + "-" + std::to_string(++counter) + "-" + test_name;
}

namespace {

// Reserves `port` for this test run across every process (tests run in parallel): an exclusive
// file in /tmp/katy-test-ports; a reservation older than ten minutes is stale and reusable.
bool Reserve(int port) {
  const std::string dir = "/tmp/katy-test-ports";
  mkdir(dir.c_str(), 0777);
  const std::string path = dir + "/" + std::to_string(port);
  int fd = open(path.c_str(), O_CREAT | O_EXCL | O_WRONLY, 0666);
  if (fd >= 0) {
    close(fd);
    return true;
  }
  struct stat info {};
  if (stat(path.c_str(), &info) == 0 && time(nullptr) - info.st_mtime > 600) {
    return utime(path.c_str(), nullptr) == 0;  // stale: take it over
  }
  return false;
}

}  // namespace

bool PortIsFree(int port) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(port));
  const bool free = bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  close(fd);
  return free;
}

int FreePort() {
  // Below the kernel's ephemeral range (32768+): ports handed out for port 0 come from there,
  // and so do the local ports of every outgoing connection, which could take a port between
  // this check and the service binding it. Reserved so parallel tests never pick the same one.
  static std::mt19937 random{std::random_device{}()};
  std::uniform_int_distribution<int> pick(20000, 31999);
  for (int attempt = 0; attempt < 1000; ++attempt) {
    const int port = pick(random);
    if (Reserve(port) && PortIsFree(port)) return port;
  }
  ADD_FAILURE() << "no free port between 20000 and 31999";
  return 0;
}

bool WaitForPort(int port, std::chrono::milliseconds timeout) {
  return WaitFor(
      [port] {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        sockaddr_in addr{};
        addr.sin_family = AF_INET;
        addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        addr.sin_port = htons(static_cast<uint16_t>(port));
        bool ok = connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
        close(fd);
        return ok;
      },
      timeout);
}

bool WaitFor(const std::function<bool()>& condition, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (true) {
    if (condition()) return true;
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

Process::Process(const std::string& binary, const std::vector<std::string>& args,
                 const std::map<std::string, std::string>& env, const std::string& log_path) {
  pid_ = fork();
  if (pid_ == 0) {
    int log_fd = open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (log_fd >= 0) {
      dup2(log_fd, STDOUT_FILENO);
      dup2(log_fd, STDERR_FILENO);
    }
    // The test may have blocked signals; the child starts with a clean mask.
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    for (const auto& [key, value] : env) setenv(key.c_str(), value.c_str(), 1);
    std::vector<char*> argv;
    argv.push_back(const_cast<char*>(binary.c_str()));
    for (const auto& arg : args) argv.push_back(const_cast<char*>(arg.c_str()));
    argv.push_back(nullptr);
    execv(binary.c_str(), argv.data());
    _exit(127);
  }
}

Process::~Process() {
  if (pid_ > 0 && !reaped_) {
    if (Stop(SIGTERM, std::chrono::milliseconds(5000)) == -1000) Kill();
  }
}

bool Process::Running() {
  if (reaped_) return false;
  pid_t done = waitpid(pid_, &status_, WNOHANG);
  if (done == pid_) reaped_ = true;
  return !reaped_;
}

int Process::Stop(int signal, std::chrono::milliseconds timeout) {
  if (!reaped_) kill(pid_, signal);
  WaitFor([this] { return !Running(); }, timeout);
  if (!reaped_) return -1000;
  if (WIFEXITED(status_)) return WEXITSTATUS(status_);
  return -WTERMSIG(status_);
}

void Process::Kill() {
  if (reaped_) return;
  kill(pid_, SIGKILL);
  waitpid(pid_, &status_, 0);
  reaped_ = true;
}

CommandResult RunCommand(const std::string& command) {
  CommandResult result;
  FILE* pipe = popen((command + " 2>&1").c_str(), "r");
  if (pipe == nullptr) return result;
  char buffer[4096];
  size_t n;
  while ((n = fread(buffer, 1, sizeof buffer, pipe)) > 0) result.output.append(buffer, n);
  int status = pclose(pipe);
  result.status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return result;
}

std::vector<std::string> SignedWebhookHeaders(const std::string& app_secret, const std::string& body) {
  return {"Content-Type: application/json", "X-Hub-Signature-256: sha256=" + HmacSha256Hex(app_secret, body)};
}

size_t BusiestSecond(std::vector<double> times_ms) {
  std::sort(times_ms.begin(), times_ms.end());
  size_t most = 0;
  std::deque<double> window;
  for (double t : times_ms) {
    window.push_back(t);
    while (window.front() <= t - 1000) window.pop_front();
    most = std::max(most, window.size());
  }
  return most;
}

PythonHttpServer::PythonHttpServer(const std::string& script) : port_(FreePort()), dir_(MakeTempDir("py-server")) {
  process_ = std::make_unique<Process>(
      "/usr/bin/env",
      std::vector<std::string>{"python3", std::string(KATY_SOURCE_DIR) + "/" + script, std::to_string(port_)},
      std::map<std::string, std::string>{}, dir_ + "/server.log");
  EXPECT_TRUE(WaitForPort(port_, std::chrono::seconds(10))) << script << " did not start";
}

nlohmann::json LateHttpServer::Stats() const {
  http::Client http;
  auto stats = http.Get(Url("/stats"));
  EXPECT_TRUE(stats.ok() && stats->status == 200) << "cannot read the late server's stats";
  return stats.ok() && stats->status == 200 ? nlohmann::json::parse(stats->body) : nlohmann::json::object();
}

std::string BinaryPath(const std::string& name) { return std::string(KATY_BIN_DIR) + "/" + name; }

namespace {

// The directories the tests of this process made, removed when they all passed: a failed
// test's logs stay for a look (its output names the directory), and passing runs leave nothing
// behind (a full suite made ~100 of them, a megabyte each, every run).
class TempDirsOfPassingTests : public ::testing::Environment {
 public:
  static TempDirsOfPassingTests& Instance() {
    // Owned by googletest once added; added on first use, before the process's tests end.
    static auto* instance =
        static_cast<TempDirsOfPassingTests*>(::testing::AddGlobalTestEnvironment(new TempDirsOfPassingTests));
    return *instance;
  }
  void Add(std::string dir) {
    std::lock_guard lock(mutex_);
    dirs_.push_back(std::move(dir));
  }
  // Runs after every test of the process, once their stacks and servers have stopped.
  void TearDown() override {
    if (!::testing::UnitTest::GetInstance()->Passed()) return;
    std::lock_guard lock(mutex_);
    for (const auto& dir : dirs_) {
      std::error_code ignored;
      std::filesystem::remove_all(dir, ignored);
    }
    dirs_.clear();
  }

 private:
  std::mutex mutex_;
  std::vector<std::string> dirs_;
};

}  // namespace

std::string MakeTempDir(const std::string& tag) {
  std::string pattern = "/tmp/katy-test-" + tag + "-XXXXXX";
  std::vector<char> buffer(pattern.begin(), pattern.end());
  buffer.push_back('\0');
  char* dir = mkdtemp(buffer.data());
  if (dir != nullptr) TempDirsOfPassingTests::Instance().Add(dir);
  return dir != nullptr ? dir : "/tmp";
}

std::unique_ptr<Process> StartPrivateRedis(int port, const std::string& dir,
                                           const std::vector<std::string>& extra_args) {
  std::vector<std::string> args = {"--port", std::to_string(port), "--bind", "127.0.0.1", "--save",
                                   "",       "--appendonly",       "no",     "--dir",     dir};
  args.insert(args.end(), extra_args.begin(), extra_args.end());
  auto redis = std::make_unique<Process>("/usr/bin/redis-server", args, std::map<std::string, std::string>{},
                                         dir + "/redis.log");
  EXPECT_TRUE(WaitForPort(port, std::chrono::seconds(5))) << "redis-server did not start on " << port;
  return redis;
}

}  // namespace katy::testing
