#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Summarises benchmark runs: results.json, a table, a chart.

Reads the runs (one JSON object per line), writes them as one JSON list to
OUT, prints per workload and guest size the median of each tool's runs and
selfmig's ratios to QEMU (downtime inside, outside by UDP and by a TCP
session, total time, bytes),
and draws OUT with .png. selfmig's runs with verify=1 (the correctness
oracle: full hashes on both sides, inside the downtime) are reported apart
from those with verify=0 (the production setting), as "selfmig+verify";
runs from before verify_mode was recorded all had verify=1: medians side by side (matplotlib; installed from
PyPI if missing; the chart is skipped, saying so, if that fails).

Usage: report.py RUNS.jsonl OUT.json
"""
import json
import statistics
import subprocess
import sys

KEYS = ("downtime_ms", "outside_downtime_ms", "outside_tcp_gap_ms", "total_ms", "bytes_sent")
TOOLS = ("selfmig", "selfmig+verify", "qemu")


def tool_of(run):
    if run["tool"] == "selfmig" and run.get("verify_mode", True):
        return "selfmig+verify"
    if run.get("check"):
        return "qemu-check"
    return run["tool"]


def median(runs, key):
    vals = [r[key] for r in runs if r.get(key) is not None]
    return statistics.median(vals) if vals else None


def ratio(a, b):
    return f"{a / b:.2f}" if a is not None and b else "-"


def fmt(v, unit=""):
    if v is None:
        return "-"
    if unit == "MB":
        return f"{v / 1e6:.0f}"
    return f"{v:.0f}" if v >= 10 else f"{v:.1f}"


def main():
    runs = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
    out = sys.argv[2]
    with open(out, "w") as f:
        json.dump(runs, f, indent=1)
    groups = {}
    for r in runs:
        groups.setdefault((r["workload"], r["ram_mib"]), {}).setdefault(tool_of(r), []).append(r)
    head = f"{'workload':9} {'MiB':>5} {'tool':15} {'ok':>5} {'down ms':>8} {'out ms':>8} {'tcp ms':>8} {'total ms':>9} {'MB':>6}"
    print(head)
    print("-" * len(head))
    rows = []
    for (wl, mib), tools in sorted(groups.items(), key=lambda g: (g[0][1], g[0][0])):
        med = {}
        for tool in TOOLS:
            rs = tools.get(tool, [])
            if not rs:
                med[tool] = {k: None for k in KEYS}
                continue
            ok = [r for r in rs if r["status"] in ("migrated", "completed")]
            med[tool] = {k: median(ok, k) for k in KEYS}
            m = med[tool]
            print(f"{wl:9} {mib:>5} {tool:15} {len(ok)}/{len(rs):<3} {fmt(m['downtime_ms']):>8} "
                  f"{fmt(m['outside_downtime_ms']):>8} {fmt(m['outside_tcp_gap_ms']):>8} {fmt(m['total_ms']):>9} {fmt(m['bytes_sent'], 'MB'):>6}")
        q = med["qemu"]
        for tool in TOOLS[:2]:
            s = med[tool]
            if all(v is None for v in s.values()):
                continue
            print(f"{'':9} {'':5} {'ratio ' + tool[7:] if tool != 'selfmig' else 'ratio':15} {'':5} "
                  f"{ratio(s['downtime_ms'], q['downtime_ms']):>8} "
                  f"{ratio(s['outside_downtime_ms'], q['outside_downtime_ms']):>8} "
                  f"{ratio(s['outside_tcp_gap_ms'], q['outside_tcp_gap_ms']):>8} "
                  f"{ratio(s['total_ms'], q['total_ms']):>9} {ratio(s['bytes_sent'], q['bytes_sent']):>6}")
        checks = tools.get("qemu-check", [])
        if checks:
            print(f"{'':9} {'':5} {'QEMU memory check (pmemsave, both sides)':40} "
                  + "; ".join(r["verify"] for r in checks))
        ours = [r for r in tools.get("selfmig+verify", [])]
        if ours:
            ok = sum(1 for r in ours if str(r.get("verify", "")).startswith("passed"))
            misses = sum(r.get("tracker_misses") or 0 for r in ours)
            unwritten = sum(r.get("unwritten_misses") or 0 for r in ours)
            print(f"{'':9} {'':5} {'selfmig verify=1':40} {ok}/{len(ours)} passed, tracker misses {misses}, "
                  f"unwritten misses {unwritten}")
        rows.append((f"{wl}\n{mib} MiB", med))
    print(f"(medians of successful runs; ratio = selfmig / QEMU; results in {out})")
    chart(rows, out.rsplit(".", 1)[0] + ".png")


def chart(rows, path):
    try:
        import matplotlib
    except ImportError:
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "matplotlib"], check=False)
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("chart skipped: matplotlib could not be installed")
        return
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.5))
    labels = [r[0] for r in rows]
    x = range(len(rows))
    for ax, key, title in zip(axes, ("outside_downtime_ms", "total_ms", "bytes_sent"),
                              ("downtime seen from outside, UDP (ms)", "total time (ms)", "bytes sent (MB)")):
        for i, tool in enumerate(TOOLS):
            vals = [(r[1][tool][key] or 0) / (1e6 if key == "bytes_sent" else 1) for r in rows]
            ax.bar([p + (i - 1) * 0.28 for p in x], vals, 0.28, label=tool)
        ax.set_xticks(list(x), labels, fontsize=8)
        ax.set_title(title)
        ax.legend()
    fig.suptitle("selfmig vs QEMU live migration (medians; TCG)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    print(f"chart: {path}")


if __name__ == "__main__":
    main()
