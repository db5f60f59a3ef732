#pragma once

#include <cstdint>

namespace katy::runtime {

// The process's open-file limit (RLIMIT_NOFILE, soft) in force now; UINT64_MAX when unlimited.
uint64_t OpenFileLimit();

// Raises the soft open-file limit to the hard limit, so a service holding many sockets is
// limited by what the system allows, not by the shell's default. Failing leaves it as it was.
void RaiseOpenFileLimit();

}  // namespace katy::runtime
