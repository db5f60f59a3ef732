#include "common/metrics/queue_metrics.h"

#include <chrono>

#include "common/redis/queue_status.h"
#include "common/redis/replication_health.h"

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

// The sending state of every page the senders have state for: paused (by an operator or
// because Meta refused its token) and throttled (the time left of a throttle Meta imposed).
void AddPageFamilies(const katy::v1::Status& status, std::vector<MetricFamily>* families) {
  MetricFamily paused =
      GaugeFamily("katy_page_paused", "1 while the senders send nothing for the page (\"*\": every page)");
  MetricFamily throttled =
      GaugeFamily("katy_page_throttled_seconds", "Time left of a throttle Meta imposed on the page");
  for (const auto& page : status.pages()) {
    // reason: "operator" (katyctl pause) or what Meta answered (page_broken_190, ...); a few
    // fixed values, empty while the page sends.
    paused.metric.push_back(
        GaugeSample({{"page", page.page_id()}, {"reason", page.paused_reason()}}, page.paused() ? 1.0 : 0.0));
    throttled.metric.push_back(
        GaugeSample({{"page", page.page_id()}}, static_cast<double>(page.throttled_for_ms()) / 1000.0));
  }
  families->push_back(std::move(paused));
  families->push_back(std::move(throttled));
}

}  // namespace

QueueDepthCollector::QueueDepthCollector(const redis::Options& redis, KeySpace keys,
                                         std::chrono::milliseconds status_max_age)
    : client_(WithScrapeTimeout(redis)), keys_(std::move(keys)), status_max_age_(status_max_age) {}

std::vector<MetricFamily> QueueDepthCollector::Collect() const {
  katy::v1::Status status;
  bool up = false;
  {
    std::lock_guard lock(mutex_);
    up = redis::ReadSharedQueueStatus(client_, keys_, status_max_age_, &status).ok();
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
  AddPageFamilies(status, &families);
  MetricFamily owned = GaugeFamily("katy_conversations_with_others",
                                   "Conversations whose thread a person (the Page Inbox) or another app has");
  owned.metric.push_back(GaugeSample({}, static_cast<double>(status.conversations_with_others())));
  families.push_back(std::move(owned));
  return families;
}

std::vector<MetricFamily> ReplicationCollector::Collect() const {
  MetricFamily family = GaugeFamily("katy_redis_under_replicated",
                                    "1 while a master's writes are not confirmed by KATY_REDIS_WAIT_REPLICAS replicas");
  for (const auto& [node, under] : redis::ReplicationHealth::Process().UnderReplicated()) {
    family.metric.push_back(GaugeSample({{"node", node}}, under ? 1 : 0));
  }
  return {family};
}

}  // namespace katy::metrics
