#pragma once

#include <ostream>
#include <string>
#include <vector>

namespace katy::ctl {

// The whole command line of katyctl (without the program name). Prints to `out`, errors to
// `err` as one line; returns the exit status (0 ok, 1 failed, 2 usage).
int RunKatyctl(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);

std::string Usage();

}  // namespace katy::ctl
