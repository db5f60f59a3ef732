#!/usr/bin/env bash
# What this machine charges for the hand-offs a request makes between processes (bench/RESULTS.md,
# "What the machine charges"): the cost of one system call, and a pipe ping-pong between two
# processes on one core and across two. On a VM that halts idle cores, waking a task on the
# other core goes through the host, and that, not the system calls, is what a chain of
# processes (wrk -> ingress -> Redis) pays for.
#
# Usage: bench/machine.sh
set -euo pipefail
source "$(dirname "$0")/lib.sh"
work=$(mktemp -d /tmp/katy-machine.XXXXXX)
cat >"$work/handoff.c" <<'C'
#include <stdio.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static double now_us(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1e6 + t.tv_nsec / 1e3;
}

int main(void) {
  const int calls = 1000000, trips = 100000;
  double start = now_us();
  for (int i = 0; i < calls; i++) syscall(SYS_getppid);
  printf("system call: %.3f us\n", (now_us() - start) / calls);

  int there[2], back[2];
  char c = 'x';
  if (pipe(there) || pipe(back)) return 1;
  if (fork() == 0) {
    for (int i = 0; i < trips; i++) {
      if (read(there[0], &c, 1) != 1 || write(back[1], &c, 1) != 1) _exit(1);
    }
    _exit(0);
  }
  start = now_us();
  for (int i = 0; i < trips; i++) {
    if (write(there[1], &c, 1) != 1 || read(back[0], &c, 1) != 1) return 1;
  }
  printf("pipe ping-pong between two processes: %.1f us per round trip\n", (now_us() - start) / trips);
  return 0;
}
C
gcc -O2 -o "$work/handoff" "$work/handoff.c"
echo "machine: $(nproc) cores, $(awk '/model name/ {sub(/.*: /, ""); print; exit}' /proc/cpuinfo)"
echo "-- placed by the scheduler (a pair that ping-pongs ends up on both cores):"
"$work/handoff"
echo "-- both processes on core 0:"
taskset -c 0 "$work/handoff"
