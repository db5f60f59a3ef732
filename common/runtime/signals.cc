#include "common/runtime/signals.h"

#include <unistd.h>
#include <csignal>

#include <thread>

namespace katy::runtime {
namespace {

sigset_t HandledSignals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGHUP);
  return set;
}

}  // namespace

void BlockSignals() {
  sigset_t set = HandledSignals();
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  signal(SIGPIPE, SIG_IGN);
}

int WaitForSignal() {
  sigset_t set = HandledSignals();
  int signal_number = 0;
  while (sigwait(&set, &signal_number) != 0) {
  }
  return signal_number;
}

void RequestShutdown() { kill(getpid(), SIGTERM); }

void ExitOnSecondSignal() {
  std::thread([] {
    while (true) {
      int sig = WaitForSignal();
      if (sig == SIGTERM || sig == SIGINT) _exit(130);
    }
  }).detach();
}

}  // namespace katy::runtime
