#include "common/metrics/metrics.h"

#include <gtest/gtest.h>

#include "common/metrics/bounded_label.h"

namespace katy::metrics {
namespace {

// A collector computed at scrape time, like the queue-depth gauges.
class OneGauge : public prometheus::Collectable {
 public:
  std::vector<prometheus::MetricFamily> Collect() const override {
    prometheus::ClientMetric sample;
    sample.label = {{"stream", "s"}};
    sample.gauge.value = 3;
    return {{"katy_stream_length", "Entries", prometheus::MetricType::Gauge, {sample}}};
  }
};

TEST(MetricsTest, RendersTheRegistryAndCollectorsAsPrometheusText) {
  prometheus::Registry registry;
  auto& requests = prometheus::BuildCounter().Name("katy_test_requests_total").Help("Requests").Register(registry);
  requests.Add({{"status", "200"}}).Increment();
  requests.Add({{"status", "200"}}).Increment(2);
  requests.Add({{"status", "4\"03"}}).Increment();
  prometheus::BuildGauge().Name("katy_test_depth").Help("Depth").Register(registry).Add({}).Set(7);
  auto& latency = prometheus::BuildHistogram()
                      .Name("katy_test_seconds")
                      .Help("Latency")
                      .Register(registry)
                      .Add({}, prometheus::Histogram::BucketBoundaries{0.1, 1});
  latency.Observe(0.05);
  latency.Observe(0.5);
  latency.Observe(5);
  OneGauge collector;

  const std::string text = Render({&registry, &collector});
  EXPECT_NE(text.find("# TYPE katy_test_requests_total counter\n"), std::string::npos) << text;
  EXPECT_NE(text.find("\nkaty_test_requests_total{status=\"200\"} 3\n"), std::string::npos) << text;
  EXPECT_NE(text.find("\nkaty_test_requests_total{status=\"4\\\"03\"} 1\n"), std::string::npos) << text;
  EXPECT_NE(text.find("\nkaty_test_depth 7\n"), std::string::npos) << text;
  EXPECT_NE(text.find("\nkaty_test_seconds_bucket{le=\"0.1\"} 1\n"), std::string::npos) << text;
  EXPECT_NE(text.find("\nkaty_test_seconds_bucket{le=\"1\"} 2\n"), std::string::npos) << text;
  EXPECT_NE(text.find("\nkaty_test_seconds_bucket{le=\"+Inf\"} 3\n"), std::string::npos) << text;
  EXPECT_NE(text.find("\nkaty_test_seconds_count 3\n"), std::string::npos) << text;
  EXPECT_NE(text.find("\nkaty_test_seconds_sum 5.55\n"), std::string::npos) << text;
  EXPECT_NE(text.find("\nkaty_stream_length{stream=\"s\"} 3\n"), std::string::npos) << text;
}

TEST(BoundedLabelTest, KeepsTheFirstValuesAndFoldsTheRestIntoOther) {
  BoundedLabel page(2);
  EXPECT_EQ(page("1045"), "1045");
  EXPECT_EQ(page("2077"), "2077");
  EXPECT_EQ(page("3000"), "other");  // a third page: no new series
  EXPECT_EQ(page("1045"), "1045");   // known ones keep their own
  EXPECT_EQ(page("4000"), "other");
}

}  // namespace
}  // namespace katy::metrics
