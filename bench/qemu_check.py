#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Checks QEMU's own live migration for correctness, for the benchmark.

After a migration to a destination started with -S (it stays paused once
the migration completed, and the source stays stopped in postmigrate),
dumps the guest RAM of both sides with QMP `pmemsave` and compares them
page by page: neither side has run since the source stopped, so every page
must be equal. Resumes the destination afterwards. Prints one JSON object:
pages compared, pages that differ, the first differing frame.

Usage: qemu_check.py SRC_QMP DST_QMP RAM_BYTES DIR
"""
import json
import mmap
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from qmp import Qmp  # noqa: E402

PAGE = 4096


def main():
    src_path, dst_path, ram, where = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    src, dst = Qmp(src_path), Qmp(dst_path)
    deadline = time.monotonic() + 60
    while dst.cmd("query-status").get("status") == "inmigrate":
        if time.monotonic() > deadline:
            print(json.dumps({"error": "destination still in migration"}))
            return
        time.sleep(0.1)
    files = []
    for name, qmp in (("src", src), ("dst", dst)):
        path = os.path.join(where, f"{name}.ram")
        qmp.cmd("pmemsave", val=0, size=ram, filename=path)
        files.append(path)
    differ, first = 0, None
    with open(files[0], "rb") as a, open(files[1], "rb") as b:
        ma = mmap.mmap(a.fileno(), 0, access=mmap.ACCESS_READ)
        mb = mmap.mmap(b.fileno(), 0, access=mmap.ACCESS_READ)
        chunk = 256 * PAGE
        for off in range(0, ram, chunk):
            if ma[off:off + chunk] == mb[off:off + chunk]:
                continue
            for p in range(off, min(off + chunk, ram), PAGE):
                if ma[p:p + PAGE] != mb[p:p + PAGE]:
                    differ += 1
                    first = p // PAGE if first is None else first
    for path in files:
        os.unlink(path)
    dst.cmd("cont")
    print(json.dumps({"pages": ram // PAGE, "pages_differ": differ, "first_pfn": first}))


if __name__ == "__main__":
    main()
