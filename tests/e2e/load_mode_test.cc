// katy-emulator load against a real Katy, with a known latency injected into its Send API: the
// figures it reports must reflect it (issue 7).
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "tests/support/katy_stack.h"

namespace katy {
namespace {

TEST(LoadModeTest, ReportsWhatHappenedIncludingAnInjectedLatency) {
  testing::KatyStack stack({"fallback:\n  reply: \"echo: {{text}}\"\n", {}});
  ASSERT_TRUE(stack.ready());
  // The load run serves the Send API itself, where the stack's emulator was.
  const std::string listen = stack.emulator_url().substr(std::string("http://").size());
  stack.process("emulator").Kill();
  auto run = testing::RunCommand(testing::BinaryPath("katy-emulator") + " load --ingress " + stack.ingress_url() +
                                 " --listen " + listen + " --app-secret " + testing::KatyStack::kAppSecret +
                                 " --users 10 --rate 10 --duration 3 --drain 10 --json" +
                                 " --faults '{\"latency_ms\":[300,300]}'");
  ASSERT_EQ(run.status, 0) << run.output;
  std::string last;
  std::istringstream lines(run.output);
  for (std::string line; std::getline(lines, line);) {
    if (!line.empty()) last = line;
  }
  auto report = nlohmann::json::parse(last);
  std::set<std::string> keys;
  for (const auto& [key, value] : report.items()) keys.insert(key);
  EXPECT_EQ(keys, (std::set<std::string>{"sent", "received", "lost", "duplicates", "throughput", "p50_ms", "p90_ms",
                                         "p99_ms", "max_ms"}));
  EXPECT_EQ(report["sent"], 30);
  EXPECT_EQ(report["received"], 30);
  EXPECT_EQ(report["lost"], 0);
  EXPECT_EQ(report["duplicates"], 0);
  // Every reply waited the injected 300 ms in the Send API, so no percentile can be below it
  // (how far above depends on the machine: measured in bench/, not asserted here).
  EXPECT_GE(report["p50_ms"].get<double>(), 300);
  EXPECT_GE(report["p90_ms"].get<double>(), report["p50_ms"].get<double>());
  EXPECT_GE(report["p99_ms"].get<double>(), report["p90_ms"].get<double>());
  EXPECT_GE(report["max_ms"].get<double>(), report["p99_ms"].get<double>());
  EXPECT_GT(report["throughput"].get<double>(), 0);
}

TEST(LoadModeTest, RefusesBadArguments) {
  auto run = testing::RunCommand(testing::BinaryPath("katy-emulator") + " load --users 5");
  EXPECT_EQ(run.status, 2);
  EXPECT_NE(run.output.find("--ingress URL is required"), std::string::npos) << run.output;
}

}  // namespace
}  // namespace katy
