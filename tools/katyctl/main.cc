// katyctl: the command-line client of katy.v1.Control and grpc.health.v1 (see --help).
#include <iostream>

#include "tools/katyctl/katyctl_commands.h"

int main(int argc, char** argv) {
  return katy::ctl::RunKatyctl(std::vector<std::string>(argv + 1, argv + argc), std::cout, std::cerr);
}
