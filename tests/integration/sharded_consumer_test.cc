#include "common/redis/sharded_consumer.h"

#include <gtest/gtest.h>

#include <optional>

#include <condition_variable>
#include <functional>
#include <map>
#include <random>
#include <set>
#include <sstream>
#include <thread>
#include <utility>

#include "common/redis/shard_leases.h"
#include "tests/support/test_support.h"

namespace katy::redis {
namespace {

constexpr int kShards = 8;

class LeasesTest : public ::testing::Test {
 protected:
  KeySpace keys_{testing::UniquePrefix("leases"), kShards};
  LeaseConfig Config(const std::string& name, std::chrono::milliseconds ttl = std::chrono::milliseconds(3000)) {
    return {"responder", name, ttl};
  }
};

TEST_F(LeasesTest, InstancesSplitTheShardsFairlyAndDisjointly) {
  ShardLeases a(Client(testing::TestRedisOptions()), keys_, Config("a"));
  ShardLeases b(Client(testing::TestRedisOptions()), keys_, Config("b"));
  ShardLeases c(Client(testing::TestRedisOptions()), keys_, Config("c"));
  EXPECT_EQ(a.Tick().size(), 8u);  // alone: everything
  // b and c join: a gives back its surplus, they take it (a few rounds, as in production).
  for (int round = 0; round < 3; ++round) {
    b.Tick();
    c.Tick();
    a.Tick();
  }
  std::set<int> all;
  for (auto* leases : {&a, &b, &c}) {
    EXPECT_LE(leases->owned().size(), 3u);  // ceil(8 / 3)
    EXPECT_EQ(leases->live_members(), 3);
    for (int shard : leases->owned()) EXPECT_TRUE(all.insert(shard).second) << "shard " << shard << " owned twice";
  }
  EXPECT_EQ(all.size(), 8u);
  // Redis agrees with what each believes.
  Client client(testing::TestRedisOptions());
  for (int shard : b.owned()) EXPECT_EQ(client.Command({"GET", b.LeaseKey(shard)})->str, "b");
}

TEST_F(LeasesTest, DeadInstancesShardsAreTakenOverAfterTheTtl) {
  ShardLeases dead(Client(testing::TestRedisOptions()), keys_, Config("dead", std::chrono::milliseconds(600)));
  ShardLeases alive(Client(testing::TestRedisOptions()), keys_, Config("alive", std::chrono::milliseconds(600)));
  dead.Tick();
  alive.Tick();
  dead.Tick();
  alive.Tick();
  ASSERT_EQ(dead.owned().size() + alive.owned().size(), 8u);
  ASSERT_FALSE(dead.owned().empty());
  // `dead` stops renewing (SIGKILL); its leases and its membership expire.
  EXPECT_TRUE(testing::WaitFor([&] { return alive.Tick().size() == 8u; }, std::chrono::seconds(5)));
}

TEST_F(LeasesTest, ReleaseAllHandsOverAtOnceAndLostLeasesAreDropped) {
  ShardLeases first(Client(testing::TestRedisOptions()), keys_, Config("first"));
  ShardLeases second(Client(testing::TestRedisOptions()), keys_, Config("second"));
  ASSERT_EQ(first.Tick().size(), 8u);
  first.ReleaseAll();
  EXPECT_EQ(second.Tick().size(), 8u);
  // Someone else overwrote a lease (an operator, or a split brain): the next renewal drops it.
  Client client(testing::TestRedisOptions());
  ASSERT_TRUE(client.Command({"SET", second.LeaseKey(3), "intruder", "PX", "10000"}).ok());
  auto owned = second.Tick();
  EXPECT_FALSE(owned.count(3));
  EXPECT_EQ(owned.size(), 7u);
  EXPECT_EQ(FairShare(16, 3), 6);
  EXPECT_EQ(FairShare(16, 0), 16);
  EXPECT_EQ(FairShare(16, 16), 1);
}

// Stands in for an event-loop HTTP client: runs each callback `after` from now, on one
// thread of its own, however many are waiting (as the loop answers thousands of calls).
class LateCalls {
 public:
  LateCalls() : thread_([this] { Run(); }) {}
  ~LateCalls() {
    {
      std::lock_guard lock(mutex_);
      stop_ = true;
    }
    changed_.notify_one();
    thread_.join();
  }
  void After(std::chrono::milliseconds after, std::function<void()> answer) {
    std::lock_guard lock(mutex_);
    due_.emplace(std::chrono::steady_clock::now() + after, std::move(answer));
    changed_.notify_one();
  }

 private:
  void Run() {
    std::unique_lock lock(mutex_);
    while (!stop_ || !due_.empty()) {
      if (due_.empty()) {
        changed_.wait(lock);
        continue;
      }
      const auto first = due_.begin()->first;
      if (std::chrono::steady_clock::now() < first && !stop_) {
        changed_.wait_until(lock, first);
        continue;
      }
      auto answer = std::move(due_.begin()->second);
      due_.erase(due_.begin());
      lock.unlock();
      answer();
      lock.lock();
    }
  }
  std::mutex mutex_;
  std::condition_variable changed_;
  std::multimap<std::chrono::steady_clock::time_point, std::function<void()>> due_;
  bool stop_ = false;
  std::thread thread_;
};

// A consumer over kShards test streams, with a handler the test controls.
class ConsumerTest : public ::testing::Test {
 protected:
  ConsumerTest() {
    options_.role = "responder";
    options_.group = "g";
    options_.instance = "consumer-1";
    options_.stream = [this](int shard) { return keys_.InStream(shard); };
    options_.dead_letters = [this](int shard) { return keys_.DeadLetters(shard); };
    options_.lease_ttl = std::chrono::milliseconds(900);
    options_.workers = 4;
    options_.block = std::chrono::milliseconds(100);
    options_.max_attempts = 3;
    options_.max_backoff = std::chrono::milliseconds(50);
  }

  // Adds one entry for conversation `user` to its shard: fields user, n.
  void Add(const std::string& user, int n) {
    int shard = ShardOf("p", user, kShards);
    ASSERT_TRUE(EnsureGroup(client_, keys_.InStream(shard), "g").ok());
    ASSERT_TRUE(XAdd(client_, keys_.InStream(shard), {{"user", user}, {"n", std::to_string(n)}}).ok());
  }

  static std::string UserOf(const StreamEntry& entry) { return entry.Field("user").value_or(""); }

  // Runs a consumer with `handler` (an EntryHandler, or a BatchHandler whose entries may
  // finish later) until `done` holds (or `limit` passes), then stops it.
  template <typename Handler>
  void RunConsumerUntil(Handler handler, const std::function<bool()>& done, ShardedConsumerOptions options,
                        std::chrono::seconds limit) {
    ShardedConsumer consumer(
        testing::TestRedisOptions(), keys_, std::move(options), [&] { return handler; }, UserOf);
    std::atomic<bool> stop{false};
    std::thread thread([&] { consumer.Run(stop); });
    EXPECT_TRUE(testing::WaitFor(done, limit));
    stop = true;
    thread.join();
  }
  void RunUntil(EntryHandler handler, const std::function<bool()>& done, ShardedConsumerOptions options) {
    RunConsumerUntil(std::move(handler), done, std::move(options), std::chrono::seconds(20));
  }
  void RunUntil(EntryHandler handler, const std::function<bool()>& done) {
    RunUntil(std::move(handler), done, options_);
  }
  void RunBatchesUntil(BatchHandler handler, const std::function<bool()>& done, ShardedConsumerOptions options) {
    RunConsumerUntil(std::move(handler), done, std::move(options), std::chrono::seconds(30));
  }

  static HandleResult Ack(Client& client, const StreamEntry& entry) {
    if (auto acked = client.Command({"XACK", entry.stream, "g", entry.id}); !acked) {
      return HandleResult::Retry("redis_" + acked.error().Label());
    }
    return HandleResult::Done();
  }

  int64_t PendingTotal() {
    int64_t total = 0;
    for (int shard = 0; shard < kShards; ++shard) {
      auto reply = client_.Command({"XPENDING", keys_.InStream(shard), "g"});
      if (reply) total += reply->elements[0].integer;
    }
    return total;
  }

  Client client_{testing::TestRedisOptions()};
  KeySpace keys_{testing::UniquePrefix("consumer"), kShards};
  ShardedConsumerOptions options_;
};

TEST_F(ConsumerTest, EachConversationInOrderWhileConversationsRunConcurrently) {
  constexpr int kUsers = 20;
  constexpr int kPerUser = 10;
  for (int n = 0; n < kPerUser; ++n) {
    for (int u = 0; u < kUsers; ++u) Add("user" + std::to_string(u), n);
  }
  std::mutex mutex;
  std::map<std::string, std::vector<int>> seen;
  std::atomic<int> running{0};
  std::atomic<int> most_running{0};
  std::atomic<int> total{0};
  RunUntil(
      [&](Client& client, const StreamEntry& entry, const Fence&) {
        int now = ++running;
        int expected = most_running.load();
        while (now > expected && !most_running.compare_exchange_weak(expected, now)) {
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
        {
          std::lock_guard lock(mutex);
          seen[UserOf(entry)].push_back(std::stoi(*entry.Field("n")));
        }
        --running;
        ++total;
        return Ack(client, entry);
      },
      [&] { return total == kUsers * kPerUser; });
  ASSERT_EQ(seen.size(), static_cast<size_t>(kUsers));
  for (const auto& [user, order] : seen) {
    std::vector<int> expected(kPerUser);
    for (int n = 0; n < kPerUser; ++n) expected[n] = n;
    EXPECT_EQ(order, expected) << user;
  }
  EXPECT_GT(most_running.load(), 1) << "conversations never ran concurrently";
  EXPECT_EQ(PendingTotal(), 0);
}

// With handle_batch, a worker takes several ready conversations at once and hands their first
// entries to the batch handler together: never two entries of one conversation in a batch,
// each conversation still in order, and each entry's result acted on (here: every third
// entry's first attempt is retried, and it comes back in a later batch).
TEST_F(ConsumerTest, BatchesHoldOneEntryPerConversationAndKeepEachInOrder) {
  constexpr int kUsers = 12;
  constexpr int kPerUser = 6;
  for (int n = 0; n < kPerUser; ++n) {
    for (int u = 0; u < kUsers; ++u) Add("user" + std::to_string(u), n);
  }
  ShardedConsumerOptions options = options_;
  options.workers = 1;  // no idle worker to share with: batches as large as handle_batch
  options.handle_batch = 8;
  std::mutex mutex;
  std::map<std::string, std::vector<int>> seen;
  std::set<std::string> retried;
  size_t largest = 0;
  bool one_conversation_twice = false;
  std::atomic<int> total{0};
  BatchHandler handler = [&](Client& client, const std::vector<BatchEntry>& batch, const Resume&) {
    std::vector<HandleResult> results;
    std::set<std::string> users;
    std::lock_guard lock(mutex);
    largest = std::max(largest, batch.size());
    for (const auto& one : batch) {
      const std::string user = UserOf(*one.entry);
      one_conversation_twice |= !users.insert(user).second;
      const int n = std::stoi(*one.entry->Field("n"));
      if (n % 3 == 0 && retried.insert(one.entry->id).second) {
        results.push_back(HandleResult::Retry("first_try"));
        continue;
      }
      seen[user].push_back(n);
      ++total;
      results.push_back(Ack(client, *one.entry));
    }
    return results;
  };
  ShardedConsumer consumer(
      testing::TestRedisOptions(), keys_, options, [&] { return handler; }, UserOf);
  std::atomic<bool> stop{false};
  std::thread thread([&] { consumer.Run(stop); });
  EXPECT_TRUE(testing::WaitFor([&] { return total == kUsers * kPerUser; }, std::chrono::seconds(20)));
  stop = true;
  thread.join();
  EXPECT_GT(largest, 1u) << "no batch held more than one entry";
  EXPECT_LE(largest, 8u);
  EXPECT_FALSE(one_conversation_twice);
  for (const auto& [user, order] : seen) {
    std::vector<int> expected(kPerUser);
    for (int n = 0; n < kPerUser; ++n) expected[n] = n;
    EXPECT_EQ(order, expected) << user;
  }
  EXPECT_EQ(PendingTotal(), 0);
}

// A conversation its page's limit paces (its entry waited for a slot) is not sent to the back
// of the queue once that entry is done: behind conversations with no limit it would miss its
// next slot, and a busy instance would hold the page under its rate.
TEST_F(ConsumerTest, APacedConversationsNextEntryGoesBeforeTheQueue) {
  Add("paced", 0);
  Add("paced", 1);
  constexpr int kOthers = 10;
  for (int u = 0; u < kOthers; ++u) Add("other" + std::to_string(u), 0);
  ShardedConsumerOptions options = options_;
  options.workers = 1;
  std::mutex mutex;
  std::vector<std::string> log;
  std::optional<std::chrono::steady_clock::time_point> slot_due;  // paced0's, once it waited
  RunUntil(
      [&](Client& client, const StreamEntry& entry, const Fence&) {
        const std::string item = UserOf(entry) + *entry.Field("n");
        std::optional<std::chrono::steady_clock::time_point> hold_until;
        {
          std::lock_guard lock(mutex);
          if (item == "paced0" && !slot_due) {
            slot_due = std::chrono::steady_clock::now() + std::chrono::milliseconds(5);
            return HandleResult::Wait("rate_limited", std::chrono::milliseconds(5));
          }
          log.push_back(item);
          if (item.rfind("other", 0) == 0) hold_until = slot_due;
        }
        // The one worker is busy with another conversation when the paced slot falls due (and
        // a little after): the order below depends on that, not on how long a sleep takes.
        if (hold_until) std::this_thread::sleep_until(*hold_until + std::chrono::milliseconds(2));
        return Ack(client, entry);
      },
      [&] {
        std::lock_guard lock(mutex);
        return log.size() == kOthers + 2;
      },
      options);
  const auto paced1 = std::find(log.begin(), log.end(), "paced1");
  ASSERT_NE(paced1, log.end());
  EXPECT_EQ(*(paced1 - 1), "paced0") << "its next entry did not follow it";
  EXPECT_GE(log.end() - paced1 - 1, 3) << "the paced conversation waited behind the queue";
}

// Each entry's fence carries the local bound until which the shard's lease is surely this
// instance's: set, in the future while the lease is held, and within one lease TTL of now.
TEST_F(ConsumerTest, AFenceSaysUntilWhenItsLeaseIsSurelyHeld) {
  for (int n = 0; n < 3; ++n) Add("sure", n);
  std::mutex mutex;
  std::vector<std::chrono::steady_clock::duration> left;
  RunUntil(
      [&](Client& client, const StreamEntry& entry, const Fence& fence) {
        std::lock_guard lock(mutex);
        left.push_back(fence.surely_ours_until - std::chrono::steady_clock::now());
        return Ack(client, entry);
      },
      [&] {
        std::lock_guard lock(mutex);
        return left.size() == 3;
      });
  for (const auto& one : left) {
    EXPECT_GT(one, std::chrono::milliseconds(0)) << "the lease is held, yet not surely";
    EXPECT_LE(one, options_.lease_ttl) << "surer than the lease's own TTL";
  }
}

TEST_F(ConsumerTest, ARetryHoldsBackItsConversationOnly) {
  Add("slow", 0);
  Add("slow", 1);
  Add("fast", 0);
  Add("fast", 1);
  std::mutex mutex;
  std::vector<std::string> log;
  int slow_failures = 0;
  RunUntil(
      [&](Client& client, const StreamEntry& entry, const Fence&) {
        std::lock_guard lock(mutex);
        std::string item = UserOf(entry) + *entry.Field("n");
        if (item == "slow0" && slow_failures < 2) {
          ++slow_failures;
          log.push_back("fail:" + item);
          return HandleResult::Retry("flaky");
        }
        log.push_back(item);
        return Ack(client, entry);
      },
      [&] {
        std::lock_guard lock(mutex);
        return std::count(log.begin(), log.end(), "slow1") == 1 && std::count(log.begin(), log.end(), "fast1") == 1;
      });
  auto position = [&](const std::string& item) { return std::find(log.begin(), log.end(), item) - log.begin(); };
  EXPECT_LT(position("slow0"), position("slow1"));
  EXPECT_LT(position("fast1"), position("slow0")) << "the fast conversation waited for the slow one";
  EXPECT_EQ(slow_failures, 2);
}

// A handler that finds the shard's lease gone (Redis restarted and the lease had expired)
// abandons its entry, which stays pending. If the lease loop takes the shard back before it
// noticed the loss, the conversation's next entries must not overtake the abandoned one: the
// chaos test saw n6, n7, n8 sent before n5 this way.
TEST_F(ConsumerTest, AnEntryAbandonedForALostLeaseIsNotOvertakenByItsConversation) {
  for (int n = 0; n < 4; ++n) Add("u", n);
  std::mutex mutex;
  std::vector<int> handled;
  bool abandoned_once = false;
  RunUntil(
      [&](Client& client, const StreamEntry& entry, const Fence&) {
        std::lock_guard lock(mutex);
        const int n = std::stoi(*entry.Field("n"));
        if (n == 1 && !abandoned_once) {
          abandoned_once = true;
          return HandleResult::Abandon("lost_lease");
        }
        handled.push_back(n);
        return Ack(client, entry);
      },
      [&] {
        std::lock_guard lock(mutex);
        return std::count(handled.begin(), handled.end(), 3) == 1 && PendingTotal() == 0;
      });
  EXPECT_TRUE(abandoned_once);
  EXPECT_EQ(handled, (std::vector<int>{0, 1, 2, 3}));
}

// Redis can hand entries to a consumer and lose the connection before the answer arrives (it was
// killed, or the network broke): the entries sit in the consumer's pending list, unseen. Reading
// on with ">" would hand out the conversation's later entries first, and the lost ones only to
// the shard's next owner (the chaos test saw n6 sent before n5 after Redis was killed). After a
// failed read the consumer claims its pending entries again before reading new ones.
TEST_F(ConsumerTest, EntriesALostReadTookAreHandledBeforeTheirConversationsNextOnes) {
  // A database of its own: CLIENT LIST tells this test's connections (db=9) from those of the
  // tests running beside it on the same Redis.
  Options redis = testing::TestRedisOptions();
  redis.db = 9;
  Client client(redis);
  const int shard = ShardOf("p", "u", kShards);
  const std::string stream = keys_.InStream(shard);
  auto add = [&](int n) {
    ASSERT_TRUE(EnsureGroup(client, stream, "g").ok());
    ASSERT_TRUE(XAdd(client, stream, {{"user", "u"}, {"n", std::to_string(n)}}).ok());
  };
  add(0);
  std::mutex mutex;
  std::vector<int> handled;
  ShardedConsumer consumer(
      redis, keys_, options_,
      [&]() -> EntryHandler {
        return [&](Client& own, const StreamEntry& entry, const Fence&) {
          std::lock_guard lock(mutex);
          handled.push_back(std::stoi(*entry.Field("n")));
          return Ack(own, entry);
        };
      },
      UserOf);
  std::atomic<bool> stop{false};
  std::thread thread([&] { consumer.Run(stop); });
  struct Joined {
    std::atomic<bool>& stop;
    std::thread& thread;
    ~Joined() {
      stop = true;
      thread.join();
    }
  } joined{stop, thread};
  const auto handled_count = [&] {
    std::lock_guard lock(mutex);
    return handled.size();
  };
  ASSERT_TRUE(testing::WaitFor([&] { return handled_count() == 1; }, std::chrono::seconds(10)));

  // What the lost answer did: u1 handed to the consumer, which never sees it. In one
  // transaction, so that the consumer's blocked read cannot take u1 first.
  auto handed = client.Pipeline({{"MULTI"},
                                 {"XADD", stream, "*", "user", "u", "n", "1"},
                                 {"XREADGROUP", "GROUP", "g", "consumer-1", "COUNT", "10", "STREAMS", stream, ">"},
                                 {"EXEC"}});
  ASSERT_TRUE(handed.ok());
  ASSERT_EQ(client.Command({"XPENDING", stream, "g"})->elements[0].integer, 1);
  // Then the read breaks, as when Redis went away before answering.
  std::string blocked_read;
  ASSERT_TRUE(testing::WaitFor(
      [&] {
        auto clients = client.Command({"CLIENT", "LIST", "TYPE", "normal"});
        if (!clients) return false;
        std::istringstream lines(clients->str);
        for (std::string line; std::getline(lines, line);) {
          if (line.find(" db=9 ") != std::string::npos && line.find(" cmd=xreadgroup") != std::string::npos &&
              line.find(" flags=b ") != std::string::npos) {
            blocked_read = line.substr(3, line.find(' ') - 3);  // "id=N ..."
            return true;
          }
        }
        return false;
      },
      std::chrono::seconds(5)));
  ASSERT_TRUE(client.Command({"CLIENT", "KILL", "ID", blocked_read}).ok());
  add(2);

  EXPECT_TRUE(testing::WaitFor([&] { return handled_count() == 3; }, std::chrono::seconds(10)));
  std::lock_guard lock(mutex);
  EXPECT_EQ(handled, (std::vector<int>{0, 1, 2}));
  EXPECT_EQ(client.Command({"XPENDING", stream, "g"})->elements[0].integer, 0);
}

TEST_F(ConsumerTest, PoisonAndExhaustedRetriesAreDeadLetteredWithoutBlocking) {
  Add("u", 0);  // poison
  Add("u", 1);  // always fails
  Add("u", 2);  // fine
  std::atomic<int> attempts_on_1{0};
  std::atomic<bool> fine{false};
  RunUntil(
      [&](Client& client, const StreamEntry& entry, const Fence&) {
        int n = std::stoi(*entry.Field("n"));
        if (n == 0) return HandleResult::Poison("undecodable");
        if (n == 1) {
          ++attempts_on_1;
          return HandleResult::Retry("downstream_down");
        }
        fine = true;
        return Ack(client, entry);
      },
      [&] { return fine.load(); });
  EXPECT_EQ(attempts_on_1.load(), 3);
  const int shard = ShardOf("p", "u", kShards);
  auto letters = ParseEntries("", *client_.Command({"XRANGE", keys_.DeadLetters(shard), "-", "+"}));
  ASSERT_EQ(letters.size(), 2u);
  EXPECT_EQ(letters[0].Field("reason"), "undecodable");
  EXPECT_EQ(letters[0].Field("attempts"), "1");
  EXPECT_EQ(letters[0].Field("stage"), "responder");
  EXPECT_EQ(letters[0].Field("n"), "0");
  EXPECT_EQ(letters[0].Field("stream"), keys_.InStream(shard));
  EXPECT_EQ(letters[1].Field("reason"), "downstream_down");
  EXPECT_EQ(letters[1].Field("attempts"), "3");
  EXPECT_EQ(PendingTotal(), 0);
}

// A dead-letter stream stops at its cap: the newest letters are kept, and every dropped one is
// counted (katy_dlq_dropped_total), so a flood of poison cannot fill Redis unseen.
TEST_F(ConsumerTest, DeadLettersBeyondTheCapDropTheOldestAndAreCounted) {
  for (int n = 0; n < 5; ++n) Add("u", n);
  auto options = options_;
  options.dead_letter_max_length = 3;
  prometheus::Registry registry;
  const int shard = ShardOf("p", "u", kShards);
  const std::string dlq = keys_.DeadLetters(shard);
  {
    ShardedConsumer consumer(
        testing::TestRedisOptions(), keys_, options,
        [] { return [](Client&, const StreamEntry&, const Fence&) { return HandleResult::Poison("undecodable"); }; },
        UserOf, &registry);
    std::atomic<bool> stop{false};
    std::thread thread([&] { consumer.Run(stop); });
    EXPECT_TRUE(testing::WaitFor(
        [&] {
          return PendingTotal() == 0 && client_.Command({"XLEN", dlq})->integer == 3;
        },
        std::chrono::seconds(20)));
    stop = true;
    thread.join();
  }
  auto letters = ParseEntries("", *client_.Command({"XRANGE", dlq, "-", "+"}));
  ASSERT_EQ(letters.size(), 3u);
  EXPECT_EQ(letters[0].Field("n"), "2");
  EXPECT_EQ(letters[2].Field("n"), "4");
  double dropped = 0;
  for (const auto& family : registry.Collect()) {
    if (family.name == "katy_dlq_dropped_total") dropped = family.metric.at(0).counter.value;
  }
  EXPECT_EQ(dropped, 2);
}

// Dead letters hold what a person wrote or was sent: past KATY_DLQ_RETENTION_D they go, with
// the finished entries' trim; younger ones stay (docs/privacy.md).
TEST_F(ConsumerTest, DeadLettersPastTheirRetentionAreDropped) {
  const int shard = ShardOf("p", "u", kShards);
  const std::string dlq = keys_.DeadLetters(shard);
  const int64_t now_ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
          .count();
  const int64_t day_ms = 24LL * 3600 * 1000;
  ASSERT_TRUE(client_.Command({"XADD", dlq, std::to_string(now_ms - 3 * day_ms) + "-0", "reason", "old"}).ok());
  ASSERT_TRUE(client_.Command({"XADD", dlq, std::to_string(now_ms - day_ms / 2) + "-0", "reason", "young"}).ok());
  Add("u", 0);
  options_.trim_every = std::chrono::milliseconds(100);
  options_.dead_letter_retention = std::chrono::hours(48);
  RunUntil([&](Client& client, const StreamEntry& entry, const Fence&) { return Ack(client, entry); },
           [&] {
             return client_.Command({"XLEN", dlq})->integer == 1;
           });
  auto letters = ParseEntries(dlq, *client_.Command({"XRANGE", dlq, "-", "+"}));
  ASSERT_EQ(letters.size(), 1u);
  EXPECT_EQ(letters[0].Field("reason"), "young");
}

// Redis that cannot serve a shard (down, failing over, a master short of replicas) is not the
// entries' failure: the shard is held — no attempt counted, no dead letter, however many retry
// budgets the outage lasts — one entry at a time probes it, the other shards go on, and the
// shard resumes in order by itself (issue 35).
TEST_F(ConsumerTest, AShardRedisCannotServeIsHeldWithoutDeadLettersWhileOthersGoOn) {
  const int down_shard = ShardOf("p", "down", kShards);
  std::string up = "up";
  for (int i = 0; ShardOf("p", up, kShards) == down_shard; ++i) up = "up" + std::to_string(i);
  std::string down_too = "other";  // a second conversation on the held shard
  for (int i = 0; ShardOf("p", down_too, kShards) != down_shard; ++i) down_too = "other" + std::to_string(i);
  for (int n = 0; n < 3; ++n) Add("down", n);
  Add(down_too, 0);
  Add(up, 0);
  Add(up, 1);

  std::atomic<bool> outage{true};
  std::atomic<int> probing{0};
  std::atomic<int> most_probing_at_once{0};
  std::mutex mutex;
  std::vector<std::string> handled;
  prometheus::Registry registry;
  ShardedConsumer consumer(
      testing::TestRedisOptions(), keys_, options_,
      [&] {
        return [&](Client& client, const StreamEntry& entry, const Fence&) {
          if (ShardOf("p", UserOf(entry), kShards) == down_shard && outage) {
            const int now = ++probing;
            most_probing_at_once = std::max(most_probing_at_once.load(), now);
            std::this_thread::sleep_for(std::chrono::milliseconds(20));  // a timeout takes time
            --probing;
            return HandleResult::RedisFailed(Error{ErrorCode::kIo, "connection refused"});
          }
          std::lock_guard lock(mutex);
          handled.push_back(UserOf(entry) + *entry.Field("n"));
          return Ack(client, entry);
        };
      },
      UserOf, &registry);
  std::atomic<bool> stop{false};
  std::thread thread([&] { consumer.Run(stop); });
  auto handled_count = [&](const std::string& item) {
    std::lock_guard lock(mutex);
    return std::count(handled.begin(), handled.end(), item);
  };
  EXPECT_TRUE(testing::WaitFor([&] { return handled_count(up + "1") == 1; }, std::chrono::seconds(20)))
      << "a held shard held back another";
  // Before the first failure, workers may have taken both of its conversations at once; once the
  // shard is held and those first attempts are over, one entry at a time probes it.
  EXPECT_TRUE(testing::WaitFor([&] { return !consumer.HeldShards().empty(); }, std::chrono::seconds(5)));
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  most_probing_at_once = probing.load();
  // max_attempts is 3 and max_backoff 50 ms: one second is many retry budgets.
  std::this_thread::sleep_for(std::chrono::seconds(1));
  // EXPECT, not ASSERT: returning now would leave the consumer's thread running.
  const auto held = consumer.HeldShards();
  EXPECT_EQ(held.size(), 1u);
  if (!held.empty()) {
    EXPECT_EQ(held[0].shard, down_shard);
    EXPECT_EQ(held[0].reason, "redis_io");
  }
  EXPECT_EQ(most_probing_at_once.load(), 1) << "a held shard is probed by one entry at a time";
  EXPECT_EQ(client_.Command({"XLEN", keys_.DeadLetters(down_shard)})->integer, 0);
  double held_gauge = -1;
  for (const auto& family : registry.Collect()) {
    if (family.name == "katy_shards_held") held_gauge = family.metric.at(0).gauge.value;
  }
  EXPECT_EQ(held_gauge, 1);

  outage = false;
  EXPECT_TRUE(
      testing::WaitFor([&] { return PendingTotal() == 0 && consumer.HeldShards().empty(); }, std::chrono::seconds(20)));
  stop = true;
  thread.join();
  EXPECT_EQ(client_.Command({"XLEN", keys_.DeadLetters(down_shard)})->integer, 0);
  std::vector<std::string> down_order;
  for (const auto& item : handled) {
    if (item.rfind("down", 0) == 0) down_order.push_back(item);
  }
  EXPECT_EQ(down_order, (std::vector<std::string>{"down0", "down1", "down2"}));
  EXPECT_EQ(handled_count(down_too + "0"), 1);
}

TEST_F(ConsumerTest, ANewOwnerFinishesTheDeadOwnersPendingEntriesFirstInOrder) {
  // A previous owner read three entries of one conversation, handled none, and was SIGKILLed
  // while holding the shard's lease.
  for (int n = 0; n < 3; ++n) Add("u", n);
  const int shard = ShardOf("p", "u", kShards);
  ASSERT_EQ(
      XReadGroup(client_, "g", "dead-owner", {keys_.InStream(shard)}, {">"}, 10, std::chrono::milliseconds(0))->size(),
      3u);
  ASSERT_TRUE(client_.Command({"SET", keys_.Lease(shard, "responder"), "dead-owner", "PX", "1500"}).ok());
  Add("u", 3);  // arrives after the crash
  std::mutex mutex;
  std::vector<int> order;
  const auto started = std::chrono::steady_clock::now();
  RunUntil(
      [&](Client& client, const StreamEntry& entry, const Fence& fence) {
        EXPECT_EQ(client.Command({"GET", fence.lease_key})->str, "consumer-1");
        std::lock_guard lock(mutex);
        order.push_back(std::stoi(*entry.Field("n")));
        return Ack(client, entry);
      },
      [&] {
        std::lock_guard lock(mutex);
        return order.size() == 4;
      });
  EXPECT_EQ(order, (std::vector<int>{0, 1, 2, 3}));
  // Not before the dead owner's lease expired (1.5 s), and soon after.
  EXPECT_GE(std::chrono::steady_clock::now() - started, std::chrono::milliseconds(1400));
  EXPECT_EQ(PendingTotal(), 0);
}

// How long the consumer has held an entry reaches its handler (the sender checks a message
// held a while for a person forgotten meanwhile): a wait shows in the next attempt, and an
// entry taken over from a dead owner's pending list counts as held since long ago.
TEST_F(ConsumerTest, TheHandlerLearnsHowLongItsEntryHasBeenHeld) {
  Add("claimed", 0);
  const int shard = ShardOf("p", "claimed", kShards);
  ASSERT_EQ(
      XReadGroup(client_, "g", "dead-owner", {keys_.InStream(shard)}, {">"}, 10, std::chrono::milliseconds(0))->size(),
      1u);
  Add("fresh", 0);
  std::mutex mutex;
  std::map<std::string, std::vector<std::chrono::milliseconds>> held;
  BatchHandler handler = [&](Client& client, const std::vector<BatchEntry>& batch, const Resume&) {
    std::vector<HandleResult> results;
    for (const auto& one : batch) {
      std::lock_guard lock(mutex);
      auto& attempts = held[UserOf(*one.entry)];
      attempts.push_back(one.in_hand);
      results.push_back(attempts.size() == 1 ? HandleResult::Wait("test", std::chrono::milliseconds(300))
                                             : Ack(client, *one.entry));
    }
    return results;
  };
  RunBatchesUntil(
      handler,
      [&] {
        std::lock_guard lock(mutex);
        return held["claimed"].size() == 2 && held["fresh"].size() == 2;
      },
      options_);
  EXPECT_EQ(held["claimed"][0], kHeldSinceLongAgo);
  EXPECT_LT(held["fresh"][0], std::chrono::seconds(5));
  EXPECT_GE(held["fresh"][1], std::chrono::milliseconds(300));
  EXPECT_EQ(PendingTotal(), 0);
}

TEST_F(ConsumerTest, StoppingReleasesTheLeases) {
  Add("u", 0);
  std::atomic<bool> handled{false};
  RunUntil(
      [&](Client& client, const StreamEntry& entry, const Fence&) {
        handled = true;
        return Ack(client, entry);
      },
      [&] { return handled.load(); });
  for (int shard = 0; shard < kShards; ++shard) {
    EXPECT_TRUE(client_.Command({"GET", keys_.Lease(shard, "responder")})->IsNil()) << shard;
  }
}

TEST_F(ConsumerTest, FinishedEntriesAreTrimmedAndUnfinishedOnesKept) {
  // Two conversations on one shard: "done" is acknowledged at once; "held" waits (a paused
  // page, say), so its entries stay pending.
  const std::string done = "done";
  const int shard = ShardOf("p", done, kShards);
  std::string held;
  for (int i = 0; held.empty(); ++i) {
    if (ShardOf("p", "held" + std::to_string(i), kShards) == shard) held = "held" + std::to_string(i);
  }
  for (int n = 0; n < 10; ++n) Add(done, n);
  Add(held, 0);
  for (int n = 10; n < 20; ++n) Add(done, n);
  Add(held, 1);
  // And a shard where everything is finished: it ends empty.
  std::string alone;
  for (int i = 0; alone.empty(); ++i) {
    if (ShardOf("p", "alone" + std::to_string(i), kShards) != shard) alone = "alone" + std::to_string(i);
  }
  for (int n = 0; n < 5; ++n) Add(alone, n);
  const std::string alone_stream = keys_.InStream(ShardOf("p", alone, kShards));
  const std::string stream = keys_.InStream(shard);
  const std::string held_first_id = ParseEntries(stream, *client_.Command({"XRANGE", stream, "-", "+"}))[10].id;

  options_.trim_every = std::chrono::milliseconds(100);
  std::atomic<int> finished{0};
  RunUntil(
      [&](Client& client, const StreamEntry& entry, const Fence&) {
        if (UserOf(entry) == held) return HandleResult::Wait("page paused", std::chrono::seconds(60));
        ++finished;
        return Ack(client, entry);
      },
      // The ten finished entries before held's first are removed; held's two and the ten
      // finished after it are kept.
      [&] {
        return finished == 25 && client_.Command({"XLEN", stream})->integer == 12 &&
               client_.Command({"XLEN", alone_stream})->integer == 0;
      });
  const auto kept = ParseEntries(stream, *client_.Command({"XRANGE", stream, "-", "+"}));
  ASSERT_EQ(kept.size(), 12u);
  EXPECT_EQ(kept.front().id, held_first_id);
  EXPECT_EQ(PendingTotal(), 2);
  // The emptied stream still counts what was delivered to the group: its lag stays known.
  auto groups = client_.Command({"XINFO", "GROUPS", alone_stream});
  ASSERT_TRUE(groups.ok() && groups->elements.size() == 1);
  const auto& group = groups->elements[0].elements;
  for (size_t i = 0; i + 1 < group.size(); i += 2) {
    if (group[i].str == "lag") {
      EXPECT_EQ(group[i + 1].type, Reply::Type::kInteger) << "lag unknown after the trim";
      EXPECT_EQ(group[i + 1].integer, 0);
    }
  }
}

}  // namespace
}  // namespace katy::redis

namespace katy::redis {
namespace {

// The completion path (kLater): entries wait on "calls" answered 300 ms later by another
// thread, as an event-loop client answers. Two workers keep 1,500 conversations' entries in
// flight at once, each conversation still strictly in order: a worker that waited for each
// call would hold at most two.
TEST_F(ConsumerTest, ThousandsOfEntriesWaitOnCallsWithTwoWorkersEachConversationInOrder) {
  constexpr int kUsers = 1500;
  for (int n = 0; n < 2; ++n) {
    for (int u = 0; u < kUsers; ++u) Add("user" + std::to_string(u), n);
  }
  ShardedConsumerOptions options = options_;
  options.workers = 2;
  options.max_in_flight = 4096;
  options.batch = 512;
  options.lease_ttl = std::chrono::milliseconds(5000);
  LateCalls calls;
  std::mutex mutex;
  std::map<std::string, std::vector<int>> seen;
  std::atomic<int> waiting{0};
  std::atomic<int> most_waiting{0};
  std::atomic<int> finished{0};
  BatchHandler handler = [&](Client&, const std::vector<BatchEntry>& batch, const Resume& resume) {
    auto entries = std::make_shared<std::vector<StreamEntry>>();
    for (const auto& one : batch) entries->push_back(*one.entry);
    const int now_waiting = waiting += static_cast<int>(batch.size());
    for (int most = most_waiting; now_waiting > most && !most_waiting.compare_exchange_weak(most, now_waiting);) {
    }
    calls.After(std::chrono::milliseconds(300), [&, entries, resume] {
      resume([&, entries](Client& client, const Resume&) {
        std::vector<HandleResult> results;
        for (const auto& entry : *entries) {
          {
            std::lock_guard lock(mutex);
            seen[UserOf(entry)].push_back(std::stoi(*entry.Field("n")));
          }
          --waiting;
          ++finished;
          results.push_back(Ack(client, entry));
        }
        return results;
      });
    });
    return std::vector<HandleResult>(batch.size(), HandleResult::Later());
  };
  RunBatchesUntil(
      handler, [&] { return finished == 2 * kUsers; }, options);
  EXPECT_EQ(finished, 2 * kUsers);
  EXPECT_GE(most_waiting, 1000) << "entries waited on their calls a worker each";
  for (const auto& [user, order] : seen) EXPECT_EQ(order, (std::vector<int>{0, 1})) << user;
  EXPECT_EQ(static_cast<int>(seen.size()), kUsers);
  EXPECT_EQ(PendingTotal(), 0);
}

// A batch whose calls answer one by one (the sender's) is resumed once per answer: each
// continuation finishes the entry whose call answered and leaves the rest kLater, so no entry
// waits for the slowest call of its batch, and every entry finishes once.
TEST_F(ConsumerTest, ABatchResumedOncePerAnswerFinishesEachEntryWhenItsOwnCallAnswers) {
  constexpr int kUsers = 24;
  for (int u = 0; u < kUsers; ++u) Add("user" + std::to_string(u), 0);
  ShardedConsumerOptions options = options_;
  options.workers = 1;
  options.handle_batch = 8;
  LateCalls calls;
  std::mutex mutex;
  std::map<std::string, std::chrono::steady_clock::duration> waited;  // from its answer to its finish
  std::atomic<int> finished{0};
  std::atomic<size_t> largest_batch{0};
  struct Batch {
    std::vector<StreamEntry> entries;
    std::vector<bool> done;  // touched by continuations only, which run one at a time
  };
  BatchHandler handler = [&](Client&, const std::vector<BatchEntry>& batch, const Resume& resume) {
    auto open = std::make_shared<Batch>();
    for (const auto& one : batch) open->entries.push_back(*one.entry);
    open->done.assign(batch.size(), false);
    largest_batch = std::max(largest_batch.load(), batch.size());
    // Entry i's answer: its Resume, with a continuation that finishes entry i alone.
    auto answer = [&, open, resume](size_t i) {
      const auto answered = std::chrono::steady_clock::now();
      resume([&, open, i, answered](Client& client, const Resume&) {
        std::vector<HandleResult> results;  // one per entry still kLater, in the batch's order
        for (size_t j = 0; j < open->entries.size(); ++j) {
          if (open->done[j]) continue;
          if (j != i) {
            results.push_back(HandleResult::Later());
            continue;
          }
          open->done[j] = true;
          {
            std::lock_guard lock(mutex);
            waited[UserOf(open->entries[j])] = std::chrono::steady_clock::now() - answered;
          }
          ++finished;
          results.push_back(Ack(client, open->entries[j]));
        }
        return results;
      });
    };
    // The batch's first call is slow; the others answer in one turn of the "loop", their
    // Resumes coming while a continuation of the batch is queued or running.
    calls.After(std::chrono::milliseconds(1500), [answer] { answer(0); });
    calls.After(std::chrono::milliseconds(100), [answer, n = batch.size()] {
      for (size_t i = 1; i < n; ++i) answer(i);
    });
    return std::vector<HandleResult>(batch.size(), HandleResult::Later());
  };
  RunBatchesUntil(
      handler, [&] { return finished == kUsers; }, options);
  EXPECT_EQ(finished, kUsers);
  EXPECT_GE(largest_batch, 2U) << "no batch held more than one entry: nothing was shown";
  EXPECT_EQ(static_cast<int>(waited.size()), kUsers);
  for (const auto& [user, wait] : waited) {
    EXPECT_LT(wait, std::chrono::milliseconds(1000)) << user << " waited for another entry's call";
  }
  EXPECT_EQ(PendingTotal(), 0);
}

// Stopping while entries wait on their calls: Run returns only once each has been resumed
// and finished, so nothing in hand is left to a new owner's retry (and its duplicate).
TEST_F(ConsumerTest, StoppingWaitsForTheEntriesWaitingOnCalls) {
  constexpr int kUsers = 40;
  for (int u = 0; u < kUsers; ++u) Add("user" + std::to_string(u), 0);
  LateCalls calls;
  std::atomic<int> started{0};
  std::atomic<int> finished{0};
  BatchHandler handler = [&](Client&, const std::vector<BatchEntry>& batch, const Resume& resume) {
    auto entries = std::make_shared<std::vector<StreamEntry>>();
    for (const auto& one : batch) entries->push_back(*one.entry);
    started += static_cast<int>(batch.size());
    calls.After(std::chrono::milliseconds(800), [&, entries, resume] {
      resume([&, entries](Client& client, const Resume&) {
        std::vector<HandleResult> results;
        for (const auto& entry : *entries) {
          results.push_back(Ack(client, entry));
          ++finished;
        }
        return results;
      });
    });
    return std::vector<HandleResult>(batch.size(), HandleResult::Later());
  };
  const auto stopped_at = std::chrono::steady_clock::now();
  RunBatchesUntil(
      handler, [&] { return started == kUsers; }, options_);
  EXPECT_EQ(finished, kUsers) << "Run returned with entries still waiting on their calls";
  EXPECT_GE(std::chrono::steady_clock::now() - stopped_at, std::chrono::milliseconds(800));
  EXPECT_EQ(PendingTotal(), 0);
}

// The lease is lost while calls are in flight: each continuation's fenced commit finds the
// lease another's and commits nothing; the entries stay pending for the new owner.
TEST_F(ConsumerTest, ALeaseLostWhileCallsAreInFlightFencesTheirCommits) {
  constexpr int kUsers = 30;
  for (int u = 0; u < kUsers; ++u) Add("user" + std::to_string(u), 0);
  // XACK only while the lease is ours: a commit script's fence, in miniature.
  const Script fenced_ack(R"lua(
if redis.call('GET', KEYS[2]) ~= ARGV[1] then return -1 end
return redis.call('XACK', KEYS[1], 'g', ARGV[2])
)lua");
  LateCalls calls;
  std::atomic<int> started{0};
  std::atomic<int> refused{0};
  std::atomic<bool> lease_taken{false};
  BatchHandler handler = [&](Client&, const std::vector<BatchEntry>& batch, const Resume& resume) {
    auto entries = std::make_shared<std::vector<BatchEntry>>();
    auto copies = std::make_shared<std::vector<StreamEntry>>();
    for (const auto& one : batch) copies->push_back(*one.entry);
    for (size_t i = 0; i < batch.size(); ++i) entries->push_back({&(*copies)[i], batch[i].fence});
    started += static_cast<int>(batch.size());
    calls.After(std::chrono::milliseconds(100), [&, entries, copies, resume] {
      // Answered only once the lease has gone to another instance.
      while (!lease_taken) std::this_thread::sleep_for(std::chrono::milliseconds(10));
      resume([&, entries, copies](Client& client, const Resume&) {
        std::vector<HandleResult> results;
        for (const auto& one : *entries) {
          auto acked =
              fenced_ack.Run(client, {one.entry->stream, one.fence.lease_key}, {one.fence.owner, one.entry->id});
          if (acked && acked->integer == -1) {
            ++refused;
            results.push_back(HandleResult::Abandon("lost_lease"));
          } else {
            results.push_back(HandleResult::Done());
          }
        }
        return results;
      });
    });
    return std::vector<HandleResult>(batch.size(), HandleResult::Later());
  };
  ShardedConsumerOptions options = options_;
  options.lease_ttl = std::chrono::milliseconds(60000);  // the lease loop renews, never loses it itself
  RunBatchesUntil(
      handler,
      [&] {
        if (started == kUsers && !lease_taken) {
          for (int shard = 0; shard < kShards; ++shard) {
            EXPECT_TRUE(client_.Command({"SET", keys_.Lease(shard, "responder"), "consumer-2"}).ok());
          }
          lease_taken = true;
        }
        return refused == kUsers;
      },
      options);
  EXPECT_EQ(refused, kUsers);
  EXPECT_EQ(PendingTotal(), kUsers) << "a commit went through after the lease was lost";
}

// An answer that outlived its lease and found Redis out (the cluster failover test saw it: a
// write the master applied but no replica confirmed) must not hold the shard as owned again:
// nothing of it was queued to lift such a hold, and a held shard with entries queued reads
// nothing more, so the shard stalled for good.
TEST_F(ConsumerTest, AnAnswerFromALostLeaseFindingRedisOutHoldsNothingBack) {
  Add("first", 0);
  const int shard = ShardOf("p", "first", kShards);
  std::string second = "second";
  while (ShardOf("p", second, kShards) != shard) second += "+";
  LateCalls calls;
  std::atomic<int> started{0};
  std::atomic<bool> answer{false};
  std::atomic<bool> answered{false};
  std::atomic<bool> second_done{false};
  BatchHandler handler = [&](Client& client, const std::vector<BatchEntry>& batch, const Resume& resume) {
    std::vector<HandleResult> results;
    for (const auto& one : batch) {
      if (UserOf(*one.entry) == second) {
        results.push_back(Ack(client, *one.entry));
        second_done = results.back().kind == HandleResult::Kind::kDone;
        continue;
      }
      ++started;
      calls.After(std::chrono::milliseconds(0), [&, resume] {
        while (!answer) std::this_thread::sleep_for(std::chrono::milliseconds(10));
        resume([&](Client&, const Resume&) {
          answered = true;
          return std::vector<HandleResult>{HandleResult::RedisFailed(Error{ErrorCode::kIo, "redis_io"})};
        });
      });
      results.push_back(HandleResult::Later());
    }
    return results;
  };
  enum class Step { kCalling, kLeaseTaken, kLeaseFree, kAnswered };
  Step step = Step::kCalling;
  auto since = std::chrono::steady_clock::now();
  RunBatchesUntil(
      handler,
      [&] {
        const auto now = std::chrono::steady_clock::now();
        if (step == Step::kCalling && started == 1) {
          // Another instance takes the lease; the entry's write went through all the same.
          for (int s = 0; s < kShards; ++s) {
            EXPECT_TRUE(client_.Command({"SET", keys_.Lease(s, "responder"), "consumer-2"}).ok());
          }
          auto pending = client_.Command({"XPENDING", keys_.InStream(shard), "g", "-", "+", "10"});
          for (const auto& entry : pending->elements) {
            EXPECT_TRUE(client_.Command({"XACK", keys_.InStream(shard), "g", entry.elements[0].str}).ok());
          }
          step = Step::kLeaseTaken;
          since = now;
        } else if (step == Step::kLeaseTaken && now - since > 4 * options_.lease_ttl) {
          // Long enough for the lease loop (every ttl/3) to have dropped the shard. It is free
          // again, but taken anew only once nothing of the old generation is in hand: so the
          // answer concludes first, and the shard is owned again right after.
          for (int s = 0; s < kShards; ++s) EXPECT_TRUE(client_.Command({"DEL", keys_.Lease(s, "responder")}).ok());
          answer = true;
          step = Step::kLeaseFree;
        } else if (step == Step::kLeaseFree && answered &&
                   client_.Command({"GET", keys_.Lease(shard, "responder")})->str == "consumer-1") {
          Add(second, 0);  // a conversation of the same shard
          step = Step::kAnswered;
        }
        return second_done.load();
      },
      options_);
  EXPECT_TRUE(second_done) << "the shard stayed held with nothing queued to lift the hold";
}

}  // namespace
}  // namespace katy::redis
