#pragma once

#include <memory>
#include <string>

#include "tools/emulator/emulator_server.h"

namespace katy::testing {

// The emulator as a server inside the test process, on 127.0.0.1 port 0, for tests that need
// Meta's Graph API (Send API, profiles, page setup) without the rest of a stack: no ingress
// behind it (webhooks it would deliver go to a closed port), `page_token` the only token it
// accepts (empty: any). `tweak` may change further options before it starts. The calling test
// fails if it does not start.
struct InProcessEmulator {
  explicit InProcessEmulator(const std::string& page_token = "",
                             const std::function<void(emulator::EmulatorOptions&)>& tweak = {});
  // http://127.0.0.1:<port>/v25.0: the Graph base URL a Katy service is given.
  std::string graph_url() const;
  std::string root_url() const;  // http://127.0.0.1:<port>, for /_emulator/...

  emulator::EmulatorOptions options;
  std::unique_ptr<emulator::EmulatorServer> server;
};

}  // namespace katy::testing
