#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Drives QEMU's own live migration over QMP, for the benchmark.

Connects to the source QEMU's QMP socket, sets the downtime limit, starts
`migrate` to URI and polls `query-migrate` until it completes or fails, or
until TIMEOUT seconds have passed (then cancels: it did not converge).
Prints one JSON object: status, total_ms, downtime_ms (QEMU's own figure),
bytes (RAM transferred), rounds (dirty-sync count).

Usage: qmp.py QMP_SOCKET URI DOWNTIME_LIMIT_MS TIMEOUT_S
"""
import json
import socket
import sys
import time


class Qmp:
    """A minimal QMP client."""

    def __init__(self, path):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(path)
        self.file = self.sock.makefile("rw")
        self.file.readline()  # greeting
        self.cmd("qmp_capabilities")

    def cmd(self, name, **args):
        """Runs a command and returns its result (events are skipped)."""
        self.file.write(json.dumps({"execute": name, "arguments": args}) + "\n")
        self.file.flush()
        while True:
            msg = json.loads(self.file.readline())
            if "return" in msg:
                return msg["return"]
            if "error" in msg:
                raise RuntimeError(f"{name}: {msg['error']}")


def main():
    path, uri, limit, timeout = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
    qmp = Qmp(path)
    qmp.cmd("migrate-set-parameters", **{"downtime-limit": limit})
    qmp.cmd("migrate", uri=uri)
    start = time.monotonic()
    info = {}
    while time.monotonic() - start < timeout:
        info = qmp.cmd("query-migrate")
        if info.get("status") in ("completed", "failed"):
            break
        time.sleep(0.05)
    status = info.get("status", "unknown")
    if status not in ("completed", "failed"):
        qmp.cmd("migrate_cancel")
        status = "not-converged"
    ram = info.get("ram", {})
    print(json.dumps({
        "status": status,
        "total_ms": info.get("total-time", int((time.monotonic() - start) * 1000)),
        "downtime_ms": info.get("downtime"),
        "bytes": ram.get("transferred"),
        "rounds": ram.get("dirty-sync-count"),
    }))


if __name__ == "__main__":
    main()
