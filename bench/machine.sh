#!/usr/bin/env bash
# What this machine charges for the hand-offs a request makes between processes (bench/RESULTS.md,
# "What the machine charges"): the cost of one system call, and a pipe ping-pong between two
# processes, and between two threads of one process, on one core and across two. On a VM that
# halts idle cores, waking a task on the other core goes through the host. (Session 5 measured
# that removing this cost, with idle cores that poll, does not raise ingress's rate.)
#
# Usage: bench/machine.sh
set -euo pipefail
source "$(dirname "$0")/lib.sh"
work=$(mktemp -d /tmp/katy-machine.XXXXXX)
cat >"$work/handoff.c" <<'C'
#include <pthread.h>
#include <stdio.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

enum { kCalls = 1000000, kTrips = 100000 };
static int there[2], back[2];

static double now_us(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1e6 + t.tv_nsec / 1e3;
}

static void* echo_side(void* unused) {
  char c;
  for (int i = 0; i < kTrips; i++) {
    if (read(there[0], &c, 1) != 1 || write(back[1], &c, 1) != 1) break;
  }
  return unused;
}

// One byte there and back kTrips times, the other side a process (fork) or a thread of this
// one: a switch between processes also switches address spaces, one between threads does not.
static double ping_pong(int other_is_thread) {
  char c = 'x';
  pthread_t thread;
  if (pipe(there) || pipe(back)) return -1;
  if (other_is_thread) {
    pthread_create(&thread, NULL, echo_side, NULL);
  } else if (fork() == 0) {
    echo_side(NULL);
    _exit(0);
  }
  double start = now_us();
  for (int i = 0; i < kTrips; i++) {
    if (write(there[1], &c, 1) != 1 || read(back[0], &c, 1) != 1) return -1;
  }
  double per_trip = (now_us() - start) / kTrips;
  if (other_is_thread) {
    pthread_join(thread, NULL);
  } else {
    wait(NULL);
  }
  close(there[0]), close(there[1]), close(back[0]), close(back[1]);
  return per_trip;
}

int main(void) {
  double start = now_us();
  for (int i = 0; i < kCalls; i++) syscall(SYS_getppid);
  printf("system call: %.3f us\n", (now_us() - start) / kCalls);
  printf("pipe ping-pong between two processes: %.1f us per round trip\n", ping_pong(0));
  printf("pipe ping-pong between two threads of one process: %.1f us per round trip\n", ping_pong(1));
  return 0;
}
C
gcc -O2 -pthread -o "$work/handoff" "$work/handoff.c"
echo "machine: $(nproc) cores, $(awk '/model name/ {sub(/.*: /, ""); print; exit}' /proc/cpuinfo)"
echo "-- placed by the scheduler (a pair that ping-pongs ends up on both cores):"
"$work/handoff"
echo "-- both processes on core 0:"
taskset -c 0 "$work/handoff"
