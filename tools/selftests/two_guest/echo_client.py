#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Holds one TCP session to an echo server while a guest migrates.

Sends a numbered line every INTERVAL seconds and reads it back, on the same
connection, until STOP_FILE exists. Prints one JSON object: lines echoed,
whether the session broke, and the largest gap between two echoes (the
downtime as a client sees it).

Usage: echo_client.py HOST PORT STOP_FILE [INTERVAL]
"""
import json
import socket
import sys
import time


def main():
    host, port, stop = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    interval = float(sys.argv[4]) if len(sys.argv) > 4 else 0.02
    sock = socket.create_connection((host, port), timeout=5)
    sock.settimeout(60)
    f = sock.makefile("rwb", buffering=0)
    echoed, broken, max_gap, last = 0, None, 0.0, time.monotonic()
    n = 0
    try:
        while True:
            try:
                open(stop).close()
                break
            except FileNotFoundError:
                pass
            n += 1
            line = b"ping %d\n" % n
            f.write(line)
            got = f.readline()
            if got != line:
                broken = "bad echo %r for %r" % (got, line)
                break
            now = time.monotonic()
            max_gap = max(max_gap, now - last)
            last = now
            echoed += 1
            time.sleep(interval)
    except OSError as e:
        broken = str(e)
    print(json.dumps({"echoed": echoed, "broken": broken,
                      "max_gap_ms": round(max_gap * 1000, 1)}))


if __name__ == "__main__":
    main()
