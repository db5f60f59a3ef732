#include "common/runtime/service_main.h"

#include <cstdio>
#include <exception>

#include "common/config.h"
#include "common/runtime/signals.h"

namespace katy::runtime {

int ServiceMain(const char* program, const std::function<int()>& body) {
  BlockSignals();
  try {
    return body();
  } catch (const config::ConfigError& e) {
    std::fprintf(stderr, "%s: %s\n", program, e.what());
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s: fatal: %s\n", program, e.what());
    return 1;
  }
}

}  // namespace katy::runtime
