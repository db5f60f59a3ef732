// The cluster client's redirection logic against fake nodes whose every answer the test
// chooses: MOVED, ASK, TRYAGAIN, a redirection loop, a node that is gone. (The real cluster's
// tests are in tests/cluster/.)
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "common/redis/cluster_slots.h"
#include "common/redis/redis_client.h"

namespace katy::redis {
namespace {

std::string Bulk(const std::string& text) { return "$" + std::to_string(text.size()) + "\r\n" + text + "\r\n"; }

// A Redis node on 127.0.0.1 (port 0) that answers each command with what `answer` returns (raw
// RESP) and records the commands it received, arguments joined by spaces. One thread.
class FakeNode {
 public:
  using Answer = std::function<std::string(const std::vector<std::string>&)>;

  explicit FakeNode(Answer answer) : answer_(std::move(answer)) {
    listen_fd_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    EXPECT_EQ(listen(listen_fd_, 16), 0);
    socklen_t len = sizeof addr;
    getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    thread_ = std::thread([this] { Serve(); });
  }
  ~FakeNode() { Stop(); }

  // Gone: every connection closed, new ones refused.
  void Stop() {
    if (stop_.exchange(true)) return;
    thread_.join();
    for (const Peer& peer : peers_) {
      if (peer.fd >= 0) close(peer.fd);
    }
    close(listen_fd_);
  }
  FakeNode(const FakeNode&) = delete;
  FakeNode& operator=(const FakeNode&) = delete;

  int port() const { return port_; }
  std::vector<std::string> received() {
    std::lock_guard lock(mutex_);
    return received_;
  }

 private:
  struct Peer {
    int fd;
    std::string in;
  };

  void Serve() {
    while (!stop_) {
      std::vector<pollfd> fds{{listen_fd_, POLLIN, 0}};
      for (const Peer& peer : peers_) fds.push_back({peer.fd, POLLIN, 0});
      if (poll(fds.data(), fds.size(), 20) <= 0) continue;
      if ((fds[0].revents & POLLIN) != 0) peers_.push_back({accept(listen_fd_, nullptr, nullptr), ""});
      for (size_t i = 1; i < fds.size(); ++i) {
        if ((fds[i].revents & (POLLIN | POLLHUP)) != 0) Read(peers_[i - 1]);
      }
    }
  }

  void Read(Peer& peer) {
    char buffer[4096];
    const ssize_t n = recv(peer.fd, buffer, sizeof buffer, 0);
    if (n <= 0) {  // the client left; poll() skips a negative fd
      close(peer.fd);
      peer.fd = -1;
      return;
    }
    peer.in.append(buffer, static_cast<size_t>(n));
    std::vector<std::string> argv;
    while (Parse(peer.in, argv)) {
      {
        std::lock_guard lock(mutex_);
        std::string joined;
        for (const auto& arg : argv) joined += (joined.empty() ? "" : " ") + arg;
        received_.push_back(joined);
      }
      const std::string reply = answer_(argv);
      send(peer.fd, reply.data(), reply.size(), MSG_NOSIGNAL);
    }
  }

  // Takes one whole RESP array of bulk strings off the front of `in`.
  static bool Parse(std::string& in, std::vector<std::string>& argv) {
    argv.clear();
    size_t at = 0;
    auto line = [&](std::string& out) {
      const size_t end = in.find("\r\n", at);
      if (end == std::string::npos) return false;
      out = in.substr(at, end - at);
      at = end + 2;
      return true;
    };
    std::string header;
    if (!line(header) || header.empty() || header[0] != '*') return false;
    const int count = std::stoi(header.substr(1));
    for (int i = 0; i < count; ++i) {
      std::string length;
      if (!line(length)) return false;
      const size_t size = std::stoul(length.substr(1));
      if (in.size() < at + size + 2) return false;
      argv.push_back(in.substr(at, size));
      at += size + 2;
    }
    in.erase(0, at);
    return true;
  }

  Answer answer_;
  int listen_fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::thread thread_;
  std::vector<Peer> peers_;
  std::mutex mutex_;
  std::vector<std::string> received_;
};

// Two fake masters: `low` serves slots 0-8191, `high` 8192-16383. Each answers INFO cluster and
// CLUSTER SLOTS itself and hands every other command to the test's `answer`.
struct FakeCluster {
  explicit FakeCluster(const FakeNode::Answer& low_answer, const FakeNode::Answer& high_answer)
      : low(Wrap(low_answer)), high(Wrap(high_answer)) {}

  FakeNode::Answer Wrap(const FakeNode::Answer& answer) {
    return [this, answer](const std::vector<std::string>& argv) -> std::string {
      if (argv[0] == "INFO") return Bulk("# Cluster\r\ncluster_enabled:1");
      if (argv[0] == "CLUSTER") return Slots();
      return answer(argv);
    };
  }
  std::string Slots() const {
    auto range = [](int start, int end, int port) {
      return "*3\r\n:" + std::to_string(start) + "\r\n:" + std::to_string(end) + "\r\n*2\r\n" + Bulk("127.0.0.1") +
             ":" + std::to_string(port) + "\r\n";
    };
    return "*2\r\n" + range(0, 8191, low.port()) + range(8192, 16383, high.port());
  }
  Options ClientOptions() const { return *ParseUrl("redis://127.0.0.1:" + std::to_string(low.port()) + "/0"); }

  FakeNode low;
  FakeNode high;
};

// A key whose slot is below 8192 (served by `low`) or above it.
std::string KeyIn(bool low_half) {
  for (int i = 0;; ++i) {
    std::string key = "k" + std::to_string(i);
    if ((KeySlot(key) < 8192) == low_half) return key;
  }
}

std::string Moved(const std::string& key, int port) {
  return "-MOVED " + std::to_string(KeySlot(key)) + " 127.0.0.1:" + std::to_string(port) + "\r\n";
}

TEST(ClusterRoutingTest, MovedIsFollowedAndTheMapReadAgain) {
  const std::string key = KeyIn(true);
  int high_port = 0;
  FakeCluster cluster([&](const auto&) { return Moved(key, high_port); },
                      [](const auto& argv) { return argv[0] == "GET" ? Bulk("moved here") : "+OK\r\n"; });
  high_port = cluster.high.port();
  Client client(cluster.ClientOptions());
  auto got = client.Command({"GET", key});
  ASSERT_TRUE(got.ok()) << got.error().message;
  EXPECT_EQ(got->str, "moved here");
  EXPECT_EQ(cluster.high.received(), std::vector<std::string>{"GET " + key});
  // The next call reads the whole map again before it sends anything.
  ASSERT_TRUE(client.Command({"GET", key}).ok());
  const auto low = cluster.low.received();
  EXPECT_EQ(std::count(low.begin(), low.end(), "CLUSTER SLOTS"), 2) << ::testing::PrintToString(low);
}

TEST(ClusterRoutingTest, AskSendsAskingOnceAndKeepsTheMap) {
  const std::string key = KeyIn(true);
  int high_port = 0;
  FakeCluster cluster(
      [&](const auto& argv) {
        return argv[0] == "GET"
                   ? "-ASK " + std::to_string(KeySlot(key)) + " 127.0.0.1:" + std::to_string(high_port) + "\r\n"
                   : std::string("+OK\r\n");
      },
      [](const auto& argv) { return argv[0] == "GET" ? Bulk("asked") : std::string("+OK\r\n"); });
  high_port = cluster.high.port();
  Client client(cluster.ClientOptions());
  auto got = client.Command({"GET", key});
  ASSERT_TRUE(got.ok()) << got.error().message;
  EXPECT_EQ(got->str, "asked");
  EXPECT_EQ(cluster.high.received(), (std::vector<std::string>{"ASKING", "GET " + key}));
  // ASK is for one command: the next one goes to the slot's master again.
  ASSERT_TRUE(client.Command({"GET", key}).ok());
  const auto low = cluster.low.received();
  EXPECT_EQ(std::count(low.begin(), low.end(), "GET " + key), 2) << ::testing::PrintToString(low);
}

TEST(ClusterRoutingTest, TryAgainIsRetriedAndARedirectionLoopEnds) {
  const std::string key = KeyIn(true);
  std::atomic<int> tries{0};
  int low_port = 0;
  int high_port = 0;
  FakeCluster cluster(
      [&](const auto& argv) {
        if (argv[1] == key) return ++tries < 3 ? std::string("-TRYAGAIN migrating\r\n") : Bulk("at last");
        return Moved(argv[1], high_port);  // the loop: each sends it to the other
      },
      [&](const auto& argv) { return Moved(argv[1], low_port); });
  low_port = cluster.low.port();
  high_port = cluster.high.port();
  Client client(cluster.ClientOptions());
  auto got = client.Command({"GET", key});
  ASSERT_TRUE(got.ok()) << got.error().message;
  EXPECT_EQ(got->str, "at last");
  EXPECT_EQ(tries, 3);

  const std::string looping = KeyIn(true) + "x";
  auto loop = client.Command({"GET", looping});
  ASSERT_FALSE(loop.ok());
  EXPECT_EQ(loop.error().message.rfind("MOVED", 0), 0u) << loop.error().message;
  const auto sent = cluster.low.received().size() + cluster.high.received().size();
  EXPECT_LT(sent, 40u) << "a redirection loop must end after Client::kMaxRedirections";
}

TEST(ClusterRoutingTest, AMasterThatIsGoneFailsOnlyItsOwnCommands) {
  const std::string low_key = KeyIn(true);
  const std::string high_key = KeyIn(false);
  FakeCluster cluster([](const auto&) { return Bulk("low"); }, [](const auto&) { return Bulk("high"); });
  Client client(cluster.ClientOptions());
  ASSERT_TRUE(client.Pipeline({{"GET", low_key}, {"GET", high_key}}).ok());

  cluster.high.Stop();
  auto both = client.Pipeline({{"GET", low_key}, {"GET", high_key}});
  ASSERT_TRUE(both.ok()) << both.error().message;
  EXPECT_EQ((*both)[0].str, "low");
  ASSERT_TRUE((*both)[1].IsError());
  EXPECT_EQ((*both)[1].str.rfind("IOERR", 0), 0u) << (*both)[1].str;
  // Nothing answered at all: the call itself fails, as on one Redis.
  auto alone = client.Pipeline({{"GET", high_key}});
  ASSERT_FALSE(alone.ok());
  EXPECT_EQ(alone.error().code, ErrorCode::kIo);
}

}  // namespace
}  // namespace katy::redis
