#include "common/metrics/queue_metrics.h"

#include <memory>
#include <mutex>

#include "common/redis/queue_status.h"

namespace katy::metrics {

void AddQueueDepthCollector(Registry& registry, const redis::Options& redis, const KeySpace& keys) {
  struct State {
    State(redis::Options options, KeySpace key_space) : client(std::move(options)), keys(std::move(key_space)) {}
    std::mutex mutex;
    redis::Client client;
    KeySpace keys;
  };
  redis::Options options = redis;
  options.socket_timeout = std::chrono::milliseconds(1000);  // a scrape must not hang on Redis
  auto state = std::make_shared<State>(options, keys);
  registry.AddCollector([state] {
    katy::v1::Status status;
    bool up;
    {
      std::lock_guard lock(state->mutex);
      up = redis::ReadQueueStatus(state->client, state->keys, &status).ok();
    }
    std::vector<CollectedFamily> families{
        {"katy_redis_up", "1 when Redis answered this scrape", "gauge", {{{}, up ? 1.0 : 0.0}}},
        {"katy_stream_length", "Entries in each stream", "gauge", {}},
        {"katy_stream_pending", "Entries delivered to a consumer and not yet acknowledged", "gauge", {}},
        {"katy_stream_lag", "Entries not yet delivered to any consumer of the group", "gauge", {}},
        {"katy_dlq_length", "Entries in each dead-letter stream", "gauge", {}},
    };
    if (!up) return std::vector<CollectedFamily>{families[0]};
    for (const auto& stream : status.streams()) {
      Labels labels{{"stream", stream.stream()}, {"group", stream.group()}};
      families[1].samples.push_back({labels, static_cast<double>(stream.length())});
      families[2].samples.push_back({labels, static_cast<double>(stream.pending())});
      families[3].samples.push_back({labels, static_cast<double>(stream.lag())});
    }
    for (const auto& dlq : status.dead_letters()) {
      families[4].samples.push_back({{{"stream", dlq.stream()}, {"group", ""}}, static_cast<double>(dlq.length())});
    }
    return families;
  });
}

}  // namespace katy::metrics
