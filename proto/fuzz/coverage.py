#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Edge coverage of the fuzz corpus, per source file.

usage: coverage.py BINARY MERGE_CONTROL_FILE

The fuzz target is built with SanitizerCoverage (inline 8-bit counters and
a PC table). A libFuzzer merge pass (-merge=1 -merge_control_file=F) writes,
for every corpus input, the indices of the PC-table entries it covered
("COV <input> <index>..."). The PC table lives in the __sancov_pcs section;
in a position-independent executable its entries are filled by relative
relocations, whose addends are the link-time PCs. addr2line maps each PC to
the source line it belongs to (the innermost inlined one), so every edge is
counted for the file its code comes from.

Works with the stable toolchain and binutils only: no llvm-cov/llvm-profdata
matching rustc's LLVM is needed.
"""

import collections
import os
import subprocess
import sys


def pc_table(binary):
    """Link-time PCs of the PC table, in table order."""
    sections = subprocess.run(["readelf", "-SW", binary], capture_output=True,
                              text=True, check=True).stdout
    start = size = None
    for line in sections.splitlines():
        if "__sancov_pcs" in line:
            fields = line.split("]", 1)[1].split()
            start, size = int(fields[2], 16), int(fields[4], 16)
    if start is None:
        sys.exit("no __sancov_pcs section: not a SanitizerCoverage build")
    pcs = [None] * (size // 16)
    relocs = subprocess.run(["readelf", "-rW", binary], capture_output=True,
                            text=True, check=True).stdout
    for line in relocs.splitlines():
        f = line.split()
        if len(f) >= 4 and f[2] == "R_X86_64_RELATIVE":
            off = int(f[0], 16)
            if start <= off < start + size and (off - start) % 16 == 0:
                pcs[(off - start) // 16] = int(f[3], 16)
    return pcs


def locate(binary, pcs):
    """Source file of every PC."""
    out = subprocess.run(["addr2line", "-e", binary],
                         input="\n".join(hex(p) for p in pcs),
                         capture_output=True, text=True, check=True).stdout
    return [line.rsplit(":", 1)[0] for line in out.splitlines()]


def covered(control):
    """Indices of PC-table entries some corpus input covered."""
    seen = set()
    with open(control) as f:
        for line in f:
            if line.startswith("COV "):
                seen.update(int(i) for i in line.split()[2:])
    return seen


def short(path):
    """A readable name for a source path."""
    path = os.path.normpath(path)
    for marker in ("/proto/src/", "/proto/fuzz/", "/proto/tests/"):
        if marker in path:
            return marker.strip("/").split("/", 1)[1] + "/" + path.split(marker, 1)[1]
    if "/registry/src/" in path:
        return "crates: " + path.split("/registry/src/", 1)[1].split("/")[1]
    return "other"


def main():
    binary, control = sys.argv[1], sys.argv[2]
    pcs = pc_table(binary)
    known = [(i, pc) for i, pc in enumerate(pcs) if pc is not None]
    files = locate(binary, [pc for _, pc in known])
    hit = covered(control)
    total = collections.Counter()
    done = collections.Counter()
    for (i, _), path in zip(known, files):
        name = short(path)
        total[name] += 1
        done[name] += i in hit
    print(f"edges covered: {len(hit)}/{len(pcs)} "
          f"({100 * len(hit) / max(1, len(pcs)):.1f}%) of the whole target")
    width = max(len(n) for n in total)
    for name in sorted(total, key=lambda n: (not n.startswith("src/"), n)):
        pct = 100 * done[name] / total[name]
        print(f"  {name:<{width}}  {done[name]:5}/{total[name]:<5} {pct:5.1f}%")
    src = [n for n in total if n.startswith("src/")]
    s_done = sum(done[n] for n in src)
    s_total = sum(total[n] for n in src)
    if s_total:
        print(f"proto/src: {s_done}/{s_total} edges ({100 * s_done / s_total:.1f}%)")


if __name__ == "__main__":
    main()
