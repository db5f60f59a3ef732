#include "common/metrics/queue_metrics.h"

#include <chrono>

#include "common/redis/queue_status.h"

namespace katy::metrics {
namespace {

using prometheus::ClientMetric;
using prometheus::MetricFamily;
using prometheus::MetricType;

redis::Options WithScrapeTimeout(redis::Options options) {
  options.socket_timeout = std::chrono::milliseconds(1000);
  return options;
}

ClientMetric GaugeSample(std::vector<ClientMetric::Label> labels, double value) {
  ClientMetric sample;
  sample.label = std::move(labels);
  sample.gauge.value = value;
  return sample;
}

MetricFamily GaugeFamily(std::string name, std::string help) {
  return MetricFamily{std::move(name), std::move(help), MetricType::Gauge, {}};
}

}  // namespace

QueueDepthCollector::QueueDepthCollector(const redis::Options& redis, KeySpace keys)
    : client_(WithScrapeTimeout(redis)), keys_(std::move(keys)) {}

std::vector<MetricFamily> QueueDepthCollector::Collect() const {
  katy::v1::Status status;
  bool up = false;
  {
    std::lock_guard lock(mutex_);
    up = redis::ReadQueueStatus(client_, keys_, &status).ok();
  }
  std::vector<MetricFamily> families{GaugeFamily("katy_redis_up", "1 when Redis answered this scrape")};
  families[0].metric.push_back(GaugeSample({}, up ? 1.0 : 0.0));
  if (!up) return families;

  MetricFamily length = GaugeFamily("katy_stream_length", "Entries in each stream");
  MetricFamily pending = GaugeFamily("katy_stream_pending", "Entries delivered to a consumer and not yet acknowledged");
  MetricFamily lag = GaugeFamily("katy_stream_lag", "Entries not yet delivered to any consumer of the group");
  MetricFamily dead_letters = GaugeFamily("katy_dlq_length", "Entries in each dead-letter stream");
  for (const auto& stream : status.streams()) {
    std::vector<ClientMetric::Label> labels{{"group", stream.group()}, {"stream", stream.stream()}};
    length.metric.push_back(GaugeSample(labels, static_cast<double>(stream.length())));
    pending.metric.push_back(GaugeSample(labels, static_cast<double>(stream.pending())));
    lag.metric.push_back(GaugeSample(labels, static_cast<double>(stream.lag())));
  }
  for (const auto& dlq : status.dead_letters()) {
    dead_letters.metric.push_back(
        GaugeSample({{"group", ""}, {"stream", dlq.stream()}}, static_cast<double>(dlq.length())));
  }
  families.push_back(std::move(length));
  families.push_back(std::move(pending));
  families.push_back(std::move(lag));
  families.push_back(std::move(dead_letters));
  return families;
}

}  // namespace katy::metrics
