#include "common/redis/stream_worker.h"

#include <thread>

#include "common/log.h"

namespace katy::redis {
namespace {

// KEYS[1] the dead-letter stream, KEYS[2] the source stream.
// ARGV: group, entry id, stage, reason, attempts, then the entry's field/value pairs.
constexpr const char* kDeadLetterLua = R"lua(
local fields = {'stream', KEYS[2], 'id', ARGV[2], 'stage', ARGV[3], 'reason', ARGV[4],
                'attempts', ARGV[5]}
for i = 6, #ARGV do fields[#fields + 1] = ARGV[i] end
redis.call('XADD', KEYS[1], '*', unpack(fields))
return redis.call('XACK', KEYS[2], ARGV[1], ARGV[2])
)lua";

log::RateLimited g_redis_errors(std::chrono::seconds(5));

}  // namespace

StreamWorker::StreamWorker(Client client, StreamWorkerOptions options, EntryHandler handler)
    : client_(std::move(client)), options_(std::move(options)), handler_(std::move(handler)),
      dead_letter_script_(kDeadLetterLua) {}

void StreamWorker::Backoff(int attempt, const std::atomic<bool>& stop) {
  auto delay = std::chrono::milliseconds(100) * (1LL << std::min(attempt, 10));
  if (delay > options_.max_backoff) delay = options_.max_backoff;
  auto until = std::chrono::steady_clock::now() + delay;
  while (!stop && std::chrono::steady_clock::now() < until) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

void StreamWorker::EnsureGroups(const std::atomic<bool>& stop) {
  for (int attempt = 0; !stop; ++attempt) {
    bool all = true;
    for (const auto& stream : options_.streams) {
      if (auto created = EnsureGroup(client_, stream, options_.group); !created) {
        g_redis_errors.Write(log::Level::kError, "cannot create consumer group",
                             {{"stream", stream}, {"error", created.error().message}});
        all = false;
        break;
      }
    }
    if (all) return;
    Backoff(attempt, stop);
  }
}

Status StreamWorker::DeadLetter(const StreamEntry& entry, const std::string& reason, int attempts) {
  size_t index = 0;
  while (index < options_.streams.size() && options_.streams[index] != entry.stream) ++index;
  if (index >= options_.dead_letter_streams.size()) return Error{"config", "no dead-letter stream"};
  std::vector<std::string> args{options_.group, entry.id, options_.stage, reason, std::to_string(attempts)};
  for (const auto& [field, value] : entry.fields) {
    args.push_back(field);
    args.push_back(value);
  }
  auto reply = dead_letter_script_.Run(client_, {options_.dead_letter_streams[index], entry.stream}, args);
  if (!reply) return reply.error();
  log::Warn("dead-lettered", {{"stream", entry.stream}, {"id", entry.id}, {"reason", reason},
                              {"attempts", attempts}, {"stage", options_.stage}});
  return Ok{};
}

bool StreamWorker::HandleWithRetries(const StreamEntry& entry, const std::atomic<bool>& stop) {
  for (int attempt = 1; !stop; ++attempt) {
    HandleResult result = handler_(client_, entry);
    if (result.kind == HandleResult::Kind::kDone) return true;
    bool give_up = result.kind == HandleResult::Kind::kPoison || attempt >= options_.max_attempts;
    if (give_up) {
      // Dead-lettering needs Redis too; keep trying it (the entry stays pending meanwhile).
      for (int dl_attempt = 0; !stop; ++dl_attempt) {
        auto moved = DeadLetter(entry, result.reason, attempt);
        if (moved) return true;
        g_redis_errors.Write(log::Level::kError, "cannot dead-letter entry",
                             {{"id", entry.id}, {"error", moved.error().message}});
        Backoff(dl_attempt, stop);
      }
      return false;
    }
    log::Debug("entry will be retried", {{"stream", entry.stream}, {"id", entry.id},
                                         {"reason", result.reason}, {"attempt", attempt}});
    Backoff(attempt, stop);
  }
  return false;  // stopping: the entry stays pending and is handled after a restart
}

void StreamWorker::Reclaim(const std::atomic<bool>& stop) {
  for (const auto& stream : options_.streams) {
    std::string start = "0-0";
    do {
      auto claimed = XAutoClaim(client_, stream, options_.group, options_.consumer,
                                options_.reclaim_idle, start, options_.batch);
      if (!claimed) return;
      for (const auto& entry : claimed->entries) {
        if (!HandleWithRetries(entry, stop)) return;
      }
      start = claimed->next_start;
    } while (start != "0-0" && !stop);
  }
}

void StreamWorker::Run(const std::atomic<bool>& stop) {
  EnsureGroups(stop);
  // First this consumer's own pending entries (from before a restart with the same name),
  // then new ones.
  std::vector<std::string> ids(options_.streams.size(), "0");
  bool reading_pending = true;
  int failures = 0;
  while (!stop) {
    if (std::chrono::steady_clock::now() >= next_reclaim_) {
      Reclaim(stop);
      next_reclaim_ = std::chrono::steady_clock::now() + options_.reclaim_every;
    }
    auto entries = XReadGroup(client_, options_.group, options_.consumer, options_.streams, ids,
                              options_.batch, reading_pending ? std::chrono::milliseconds(0) : options_.block);
    if (!entries) {
      g_redis_errors.Write(log::Level::kError, "cannot read streams", {{"error", entries.error().message}});
      if (entries.error().message.find("NOGROUP") != std::string::npos) EnsureGroups(stop);
      Backoff(++failures, stop);
      continue;
    }
    failures = 0;
    if (reading_pending && entries->empty()) {
      reading_pending = false;
      ids.assign(options_.streams.size(), ">");
      continue;
    }
    for (const auto& entry : *entries) {
      if (!HandleWithRetries(entry, stop)) break;
    }
  }
}

}  // namespace katy::redis
