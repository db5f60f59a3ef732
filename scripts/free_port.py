#!/usr/bin/env python3
"""Prints a free TCP port on 127.0.0.1 for tests and benchmarks.

Picked below the kernel's ephemeral range (32768+), where port 0 and every outgoing
connection's local port come from, so that nothing else grabs it before the service binds it;
with --cluster-node, one whose Redis Cluster bus port (port + 10000) is free and below it too;
and reserved in /tmp/katy-test-ports (as tests/support/test_support.cc does), so that tests
running in parallel never pick the same one. Reservations older than ten minutes are stale.
"""
import os
import random
import socket
import sys
import time

RESERVATIONS = "/tmp/katy-test-ports"


def reserve(port):
    os.makedirs(RESERVATIONS, exist_ok=True)
    path = os.path.join(RESERVATIONS, str(port))
    try:
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
        return True
    except FileExistsError:
        if time.time() - os.stat(path).st_mtime > 600:
            os.utime(path)
            return True
        return False


def bindable(port):
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


# --cluster-node: a port whose cluster bus port (port + 10000) is free and below 32768 too.
cluster_node = "--cluster-node" in sys.argv[1:]
highest = 22767 if cluster_node else 31999
for _ in range(1000):
    port = random.randint(20000, highest)
    if not reserve(port):
        continue
    if not bindable(port) or (cluster_node and not bindable(port + 10000)):
        continue
    print(port)
    break
else:
    raise SystemExit(f"no free port between 20000 and {highest}")
