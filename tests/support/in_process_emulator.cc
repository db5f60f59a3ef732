#include "tests/support/in_process_emulator.h"

#include <gtest/gtest.h>

namespace katy::testing {

InProcessEmulator::InProcessEmulator(const std::string& page_token,
                                     const std::function<void(emulator::EmulatorOptions&)>& tweak) {
  options.address = {"127.0.0.1", 0};
  options.app_secret = "in-process-emulator-secret";
  options.ingress_url = "http://127.0.0.1:1/webhook";
  options.page_token = page_token;
  if (tweak) tweak(options);
  auto started = emulator::EmulatorServer::Start(options);
  EXPECT_TRUE(started.ok()) << (started.ok() ? "" : started.error().message);
  if (started.ok()) server = std::move(*started);
}

std::string InProcessEmulator::root_url() const {
  return "http://127.0.0.1:" + std::to_string(server ? server->port() : 0);
}

std::string InProcessEmulator::graph_url() const { return root_url() + "/v25.0"; }

}  // namespace katy::testing
