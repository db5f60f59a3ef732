// katy-emulator load against a real Katy, with a known latency injected into its Send API: the
// figures it reports must reflect it (issue 7).
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "tests/support/katy_stack.h"

namespace katy {
namespace {

// Runs `katy-emulator load` against the stack (serving the Send API where the stack's emulator
// was) and returns its JSON report, the last line it prints.
nlohmann::json RunLoad(const testing::KatyStack& stack, const std::string& arguments) {
  const std::string listen = stack.emulator_url().substr(std::string("http://").size());
  auto run = testing::RunCommand(testing::BinaryPath("katy-emulator") + " load --ingress " + stack.ingress_url() +
                                 " --listen " + listen + " --app-secret " + testing::KatyStack::kAppSecret + " " +
                                 arguments + " --json");
  EXPECT_EQ(run.status, 0) << run.output;
  std::string last;
  std::istringstream lines(run.output);
  for (std::string line; std::getline(lines, line);) {
    if (!line.empty()) last = line;
  }
  return nlohmann::json::parse(last, nullptr, false);
}

TEST(LoadModeTest, ReportsWhatHappenedIncludingAnInjectedLatency) {
  testing::KatyStack stack({"fallback:\n  reply: \"echo: {{text}}\"\n", {}});
  ASSERT_TRUE(stack.ready());
  stack.process("emulator").Kill();
  auto report = RunLoad(stack, "--users 10 --rate 10 --duration 3 --drain 10 --faults '{\"latency_ms\":[300,300]}'");
  ASSERT_TRUE(report.is_object());
  std::set<std::string> keys;
  for (const auto& [key, value] : report.items()) keys.insert(key);
  EXPECT_EQ(keys, (std::set<std::string>{"sent", "received", "lost", "duplicates", "out_of_order", "throughput",
                                         "p50_ms", "p90_ms", "p99_ms", "max_ms", "pages"}));
  EXPECT_EQ(report["sent"], 30);
  EXPECT_EQ(report["received"], 30);
  EXPECT_EQ(report["lost"], 0);
  EXPECT_EQ(report["duplicates"], 0);
  EXPECT_EQ(report["out_of_order"], 0);
  ASSERT_EQ(report["pages"].size(), 1u);
  EXPECT_EQ(report["pages"][0]["received"], 30);
  // Every reply waited the injected 300 ms in the Send API, so no percentile can be below it
  // (how far above depends on the machine: measured in bench/, not asserted here).
  EXPECT_GE(report["p50_ms"].get<double>(), 300);
  EXPECT_GE(report["p90_ms"].get<double>(), report["p50_ms"].get<double>());
  EXPECT_GE(report["p99_ms"].get<double>(), report["p90_ms"].get<double>());
  EXPECT_GE(report["max_ms"].get<double>(), report["p99_ms"].get<double>());
  EXPECT_GT(report["throughput"].get<double>(), 0);

  // A second run against the same Redis: its messages are new ones, not retries of the first
  // run's (which ingress would rightly drop, and the report would count as lost). Its users
  // are spread over two pages, each answered as its own.
  auto again = RunLoad(stack, "--users 10 --pages 2 --page 7000 --rate 10 --duration 1 --drain 10");
  ASSERT_TRUE(again.is_object());
  EXPECT_EQ(again["sent"], 10);
  EXPECT_EQ(again["received"], 10);
  EXPECT_EQ(again["lost"], 0);
  ASSERT_EQ(again["pages"].size(), 2u);
  EXPECT_EQ(again["pages"][0]["page"], "7000");
  EXPECT_EQ(again["pages"][1]["page"], "7001");
  EXPECT_EQ(again["pages"][0]["received"], 5);
  EXPECT_EQ(again["pages"][1]["received"], 5);

  // A run sends rate × duration messages, however fast: at 50,000/s the last 0.2 ms before the
  // end is ten of them, which the generator used to drop.
  auto fast = RunLoad(stack, "--users 100 --rate 50000 --duration 0.2 --drain 0");
  ASSERT_TRUE(fast.is_object());
  EXPECT_EQ(fast["sent"], 10000);
}

TEST(LoadModeTest, RefusesBadArguments) {
  auto run = testing::RunCommand(testing::BinaryPath("katy-emulator") + " load --users 5");
  EXPECT_EQ(run.status, 2);
  EXPECT_NE(run.output.find("--ingress URL is required"), std::string::npos) << run.output;
}

}  // namespace
}  // namespace katy
