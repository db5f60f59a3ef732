// katy-emulator: stands in for Meta (Send API + webhooks) on a machine with no Facebook account.
#include <csignal>
#include <cstdio>

#include "common/config.h"
#include "common/log.h"
#include "common/runtime/service_main.h"
#include "common/runtime/signals.h"
#include "tools/emulator/emulator_server.h"

namespace {

int Run(int argc, char** argv) {
  using namespace katy;
  auto settings = config::Settings::Load(
      {
          {"KATY_EMULATOR_ADDR", "127.0.0.1:8090", "Address of the emulated Graph API"},
          {"KATY_APP_SECRET", "", "App secret that signs the webhooks sent to ingress", true, true},
          {"KATY_INGRESS_URL", "http://127.0.0.1:8080/webhook", "Where webhooks are delivered"},
          {"KATY_EMULATOR_PAGE_TOKEN", "",
           "When set, the only page access token the Send API accepts (else any non-empty one)", false, true},
          {"KATY_EMULATOR_FAULTS", "", "Faults to inject from the start, as JSON (see tools/emulator/README.md)"},
          {"KATY_EMULATOR_THREADS", "8", "HTTP worker threads (an injected hang holds one)"},
          {"KATY_LOG_LEVEL", "info", "debug, info, warn or error"},
      },
      argc, argv);
  if (settings.HelpRequested()) {
    std::fputs(settings.Usage("katy-emulator").c_str(), stdout);
    return 0;
  }
  log::Level level;
  if (!log::ParseLevel(settings.String("KATY_LOG_LEVEL"), &level)) {
    throw config::ConfigError("KATY_LOG_LEVEL: unknown level");
  }
  log::Init("emulator", level);
  log::Info("starting", {{"config", log::RawJson{settings.RedactedJson()}}});
  emulator::EmulatorOptions options;
  options.address = settings.Address("KATY_EMULATOR_ADDR");
  options.app_secret = settings.String("KATY_APP_SECRET");
  options.ingress_url = settings.String("KATY_INGRESS_URL");
  options.page_token = settings.String("KATY_EMULATOR_PAGE_TOKEN");
  options.faults_json = settings.String("KATY_EMULATOR_FAULTS");
  options.threads = static_cast<int>(settings.Int("KATY_EMULATOR_THREADS", 1, 256));
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

int main(int argc, char** argv) {
  return katy::runtime::ServiceMain("katy-emulator", [&] { return Run(argc, argv); });
}
