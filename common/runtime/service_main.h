#pragma once

#include <functional>

namespace katy::runtime {

// Runs a service's main body: blocks the shutdown signals first (before any thread exists),
// then calls `body`. A config::ConfigError becomes one line on stderr and exit status 2; any
// other start-up exception one line and status 1.
int ServiceMain(const char* program, const std::function<int()>& body);

}  // namespace katy::runtime
