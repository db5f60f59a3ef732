#include "common/metrics/metrics.h"
#include "common/metrics/bounded_label.h"

#include <gtest/gtest.h>

namespace katy::metrics {
namespace {

TEST(MetricsTest, RendersPrometheusText) {
  Registry registry;
  auto& requests = registry.AddCounter("katy_test_requests_total", "Requests");
  requests.WithLabels({{"status", "200"}}).Inc();
  requests.WithLabels({{"status", "200"}}).Inc(2);
  requests.WithLabels({{"status", "4\"03"}}).Inc();
  registry.AddGauge("katy_test_depth", "Depth").WithLabels({}).Set(7);
  auto& latency = registry.AddHistogram("katy_test_seconds", "Latency", {0.1, 1});
  latency.WithLabels({}).Observe(0.05);
  latency.WithLabels({}).Observe(0.5);
  latency.WithLabels({}).Observe(5);
  registry.AddCollector([] {
    return std::vector<CollectedFamily>{{"katy_stream_length", "Entries", "gauge", {{{{"stream", "s"}}, 3}}}};
  });
  std::string text = registry.Render();
  EXPECT_NE(text.find("# TYPE katy_test_requests_total counter\n"), std::string::npos) << text;
  EXPECT_NE(text.find("katy_test_requests_total{status=\"200\"} 3\n"), std::string::npos) << text;
  EXPECT_NE(text.find("katy_test_requests_total{status=\"4\\\"03\"} 1\n"), std::string::npos) << text;
  EXPECT_NE(text.find("katy_test_depth 7\n"), std::string::npos) << text;
  EXPECT_NE(text.find("katy_test_seconds_bucket{le=\"0.1\"} 1\n"), std::string::npos) << text;
  EXPECT_NE(text.find("katy_test_seconds_bucket{le=\"1\"} 2\n"), std::string::npos) << text;
  EXPECT_NE(text.find("katy_test_seconds_bucket{le=\"+Inf\"} 3\n"), std::string::npos) << text;
  EXPECT_NE(text.find("katy_test_seconds_count 3\n"), std::string::npos) << text;
  EXPECT_NE(text.find("katy_test_seconds_sum 5.55\n"), std::string::npos) << text;
  EXPECT_NE(text.find("katy_stream_length{stream=\"s\"} 3\n"), std::string::npos) << text;
}

}  // namespace
}  // namespace katy::metrics

namespace katy::metrics {
namespace {

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
