// katy-emulator: stands in for Meta (Send API + webhooks) on a machine with no Facebook account.
#include <csignal>
#include <cstdio>
#include <iostream>
#include <string>
#include <vector>

#include "common/log.h"
#include "common/runtime/service_main.h"
#include "common/runtime/signals.h"
#include "tools/emulator/emulator_config.h"
#include "tools/emulator/emulator_server.h"
#include "tools/emulator/load_runner.h"

namespace {

int Run(int argc, char** argv) {
  using namespace katy;
  config::Settings settings;
  emulator::EmulatorOptions options = emulator::LoadEmulatorOptions(argc, argv, &settings);
  if (!runtime::BeginService("katy-emulator", "emulator", settings)) return 0;  // --help
  auto server = emulator::EmulatorServer::Start(options);
  if (!server) throw std::runtime_error(server.error().message);
  log::Info("listening", {{"port", (*server)->port()}});
  while (runtime::WaitForSignal() == SIGHUP) {
  }
  (*server)->Shutdown();
  log::Info("stopped");
  return 0;
}

}  // namespace

// katy-emulator load ...: a load run (see load_runner.h), then exit.
int Load(const std::vector<std::string>& args) {
  using namespace katy;
  log::Init("emulator-load", log::Level::kWarn);
  auto options = emulator::ParseLoadArgs(args);
  if (!options) {
    std::fprintf(stderr,
                 "katy-emulator load: %s\nusage: katy-emulator load --ingress URL [--users N] [--rate R] "
                 "[--duration S] [--pages N] [--page ID] [--listen HOST:PORT] [--app-secret S] [--batch N] [--drain S] "
                 "[--faults JSON] [--json]\n",
                 options.error().message.c_str());
    return 2;
  }
  auto report = emulator::RunLoad(*options, std::cerr);
  if (!report) {
    std::fprintf(stderr, "katy-emulator load: %s\n", report.error().message.c_str());
    return 1;
  }
  std::printf(
      "sent %lld (%.0f/s)  received %lld  lost %lld  duplicates %lld  out of order %lld  throughput %.1f replies/s\n"
      "latency p50 %.1f ms  p90 %.1f ms  p99 %.1f ms  max %.1f ms\n",
      static_cast<long long>(report->sent), report->send_rate, static_cast<long long>(report->received),
      static_cast<long long>(report->lost), static_cast<long long>(report->duplicates),
      static_cast<long long>(report->out_of_order), report->throughput, report->p50_ms, report->p90_ms, report->p99_ms,
      report->max_ms);
  for (const auto& page : report->pages) {
    std::printf("page %s: %lld replies at %.1f/s, at most %lld in any second\n", page.page.c_str(),
                static_cast<long long>(page.received), page.reply_rate, static_cast<long long>(page.max_in_1s));
  }
  if (options->json) std::printf("%s\n", emulator::LoadReportJson(*report).c_str());
  return 0;
}

int main(int argc, char** argv) {
  if (argc > 1 && std::string(argv[1]) == "load") {
    return katy::runtime::ServiceMain("katy-emulator load",
                                      [&] { return Load(std::vector<std::string>(argv + 2, argv + argc)); });
  }
  return katy::runtime::ServiceMain("katy-emulator", [&] { return Run(argc, argv); });
}
