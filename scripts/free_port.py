#!/usr/bin/env python3
"""Prints a free TCP port on 127.0.0.1 for tests and benchmarks.

Picked below the kernel's ephemeral range (32768+), where port 0 and every outgoing
connection's local port come from, so that nothing else grabs it before the service binds it;
and reserved in /tmp/katy-test-ports (as tests/support/test_support.cc does), so that tests
running in parallel never pick the same one. Reservations older than ten minutes are stale.
"""
import os
import random
import socket
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


for _ in range(1000):
    port = random.randint(20000, 31999)
    if not reserve(port):
        continue
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            continue
    print(port)
    break
else:
    raise SystemExit("no free port between 20000 and 31999")
