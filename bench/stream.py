#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Sends a steady TCP stream to a guest until STOP_FILE exists.

Usage: stream.py HOST PORT MB_PER_S STOP_FILE
"""
import os
import socket
import sys
import time


def main():
    host, port, rate, stop = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
    sock = socket.create_connection((host, port), timeout=30)
    chunk = b"\xa5" * 65536
    start, sent = time.monotonic(), 0
    try:
        while not os.path.exists(stop):
            sock.sendall(chunk)
            sent += len(chunk)
            ahead = sent / (rate * 1e6) - (time.monotonic() - start)
            if ahead > 0:
                time.sleep(ahead)
    except OSError:
        pass


if __name__ == "__main__":
    main()
