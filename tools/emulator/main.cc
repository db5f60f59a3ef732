// katy-emulator: stands in for Meta (Send API + webhooks) on a machine with no Facebook account.
#include <csignal>
#include <cstdio>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include "common/config.h"
#include "common/defaults.h"
#include "common/log.h"
#include "common/runtime/service_main.h"
#include "common/runtime/signals.h"
#include "tools/emulator/emulator_server.h"
#include "tools/emulator/load_runner.h"

namespace {

int Run(int argc, char** argv) {
  using namespace katy;
  auto settings = config::Settings::Load(
      {
          {"KATY_EMULATOR_ADDR", std::string(defaults::kEmulator), "Address of the emulated Graph API"},
          {"KATY_APP_SECRET", "", "App secret that signs the webhooks sent to ingress", true, true},
          {"KATY_INGRESS_URL", std::string(defaults::kWebhookUrl), "Where webhooks are delivered"},
          {"KATY_EMULATOR_PAGE_TOKEN", "",
           "When set, the only page access token the Send API accepts (else any non-empty one)", false, true},
          {"KATY_EMULATOR_FAULTS", "", "Faults to inject from the start, as JSON (see tools/emulator/README.md)"},
          {"KATY_EMULATOR_THREADS", "8", "HTTP worker threads (an injected hang holds one)"},
          {"KATY_EMULATOR_WEBHOOK_BATCH", "1", "Messaging items per webhook POST at most (Meta batches under load)"},
          {"KATY_EMULATOR_ECHOES", "0", "Send an echo webhook for every message the bot sends"},
          {"KATY_EMULATOR_PAGE", "1045", "The page id the chat page talks to"},
          {"KATY_EMULATOR_METRICS_URLS", std::string(defaults::kQueueMetricsUrls),
           "Comma-separated /metrics URLs of the services, for the chat page's queue panel"},
          {"KATY_LOG_LEVEL", "info", "debug, info, warn or error"},
      },
      argc, argv);
  if (!runtime::BeginService("katy-emulator", "emulator", settings)) return 0;  // --help
  emulator::EmulatorOptions options;
  options.address = settings.Address("KATY_EMULATOR_ADDR");
  options.app_secret = settings.String("KATY_APP_SECRET");
  options.ingress_url = settings.String("KATY_INGRESS_URL");
  options.page_token = settings.String("KATY_EMULATOR_PAGE_TOKEN");
  options.faults_json = settings.String("KATY_EMULATOR_FAULTS");
  options.threads = static_cast<int>(settings.Int("KATY_EMULATOR_THREADS", 1, 256));
  options.webhook_batch = static_cast<size_t>(settings.Int("KATY_EMULATOR_WEBHOOK_BATCH", 1, 1000));
  options.echoes = settings.Bool("KATY_EMULATOR_ECHOES");
  options.chat_page_id = settings.String("KATY_EMULATOR_PAGE");
  std::stringstream urls(settings.String("KATY_EMULATOR_METRICS_URLS"));
  for (std::string url; std::getline(urls, url, ',');) {
    if (!url.empty()) options.metrics_urls.push_back(url);
  }
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
    std::fprintf(stderr, "katy-emulator load: %s\nusage: katy-emulator load --ingress URL [--users N] [--rate R] "
                         "[--duration S] [--listen HOST:PORT] [--app-secret S] [--batch N] [--drain S] "
                         "[--faults JSON] [--json]\n", options.error().message.c_str());
    return 2;
  }
  auto report = emulator::RunLoad(*options, std::cerr);
  if (!report) {
    std::fprintf(stderr, "katy-emulator load: %s\n", report.error().message.c_str());
    return 1;
  }
  std::printf("sent %lld (%.0f/s)  received %lld  lost %lld  duplicates %lld  throughput %.1f replies/s\n"
              "latency p50 %.1f ms  p90 %.1f ms  p99 %.1f ms  max %.1f ms\n",
              static_cast<long long>(report->sent), report->send_rate, static_cast<long long>(report->received),
              static_cast<long long>(report->lost), static_cast<long long>(report->duplicates), report->throughput,
              report->p50_ms, report->p90_ms, report->p99_ms, report->max_ms);
  if (options->json) std::printf("%s\n", emulator::LoadReportJson(*report).c_str());
  return 0;
}

int main(int argc, char** argv) {
  if (argc > 1 && std::string(argv[1]) == "load") {
    katy::runtime::BlockSignals();
    return Load(std::vector<std::string>(argv + 2, argv + argc));
  }
  return katy::runtime::ServiceMain("katy-emulator", [&] { return Run(argc, argv); });
}
