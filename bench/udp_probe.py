#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""The benchmark's outside downtime probe.

Sends a numbered UDP datagram to HOST:PORT (selfmig-udpecho in the guest)
every INTERVAL seconds until STOP_FILE exists, and notes when each echo
comes back. Prints one JSON object: datagrams sent and echoed, and the
largest gap between two consecutive echoes (the time the guest could not
be reached from outside: unlike a TCP stream, a lost datagram adds no
retransmission timeout).

Usage: udp_probe.py HOST PORT STOP_FILE [INTERVAL]
"""
import json
import os
import select
import socket
import sys
import time


def main():
    host, port, stop = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    interval = float(sys.argv[4]) if len(sys.argv) > 4 else 0.001
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.connect((host, port))
    sent = echoed = 0
    last = None
    max_gap = 0.0
    due = time.monotonic()
    while not os.path.exists(stop):
        now = time.monotonic()
        if now >= due:
            sent += 1
            try:
                sock.send(b"%d" % sent)
            except OSError:
                pass  # unreachable for now (ICMP); keep probing
            due += interval
            if due < now:
                due = now + interval
        ready, _, _ = select.select([sock], [], [], max(0.0, due - time.monotonic()))
        while ready:
            try:
                sock.recv(64)
            except OSError:
                break
            now = time.monotonic()
            if last is not None:
                max_gap = max(max_gap, now - last)
            last = now
            echoed += 1
            ready, _, _ = select.select([sock], [], [], 0)
    print(json.dumps({"sent": sent, "echoed": echoed, "max_gap_ms": round(max_gap * 1000, 1)}))


if __name__ == "__main__":
    main()
