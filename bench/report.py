#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Summarises benchmark runs: results.json, a table, a chart.

Reads the runs (one JSON object per line), writes them as one JSON list to
OUT, prints per workload and guest size the median of each tool's runs and
selfmig's ratios to QEMU (downtime inside and outside, total time, bytes),
and draws OUT with .png: medians side by side (matplotlib; installed from
PyPI if missing; the chart is skipped, saying so, if that fails).

Usage: report.py RUNS.jsonl OUT.json
"""
import json
import statistics
import subprocess
import sys

KEYS = ("downtime_ms", "outside_downtime_ms", "total_ms", "bytes_sent")


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
        groups.setdefault((r["workload"], r["ram_mib"]), {}).setdefault(r["tool"], []).append(r)
    head = f"{'workload':9} {'MiB':>5} {'tool':8} {'ok':>5} {'down ms':>8} {'out ms':>8} {'total ms':>9} {'MB':>6}"
    print(head)
    print("-" * len(head))
    rows = []
    for (wl, mib), tools in sorted(groups.items(), key=lambda g: (g[0][1], g[0][0])):
        med = {}
        for tool in ("selfmig", "qemu"):
            rs = tools.get(tool, [])
            ok = [r for r in rs if r["status"] in ("migrated", "completed")]
            med[tool] = {k: median(ok, k) for k in KEYS}
            m = med[tool]
            print(f"{wl:9} {mib:>5} {tool:8} {len(ok)}/{len(rs):<3} {fmt(m['downtime_ms']):>8} "
                  f"{fmt(m['outside_downtime_ms']):>8} {fmt(m['total_ms']):>9} {fmt(m['bytes_sent'], 'MB'):>6}")
        s, q = med["selfmig"], med["qemu"]
        print(f"{'':9} {'':5} {'ratio':8} {'':5} {ratio(s['downtime_ms'], q['downtime_ms']):>8} "
              f"{ratio(s['outside_downtime_ms'], q['outside_downtime_ms']):>8} "
              f"{ratio(s['total_ms'], q['total_ms']):>9} {ratio(s['bytes_sent'], q['bytes_sent']):>6}")
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
                              ("downtime seen by a client (ms)", "total time (ms)", "bytes sent (MB)")):
        for i, tool in enumerate(("selfmig", "qemu")):
            vals = [(r[1][tool][key] or 0) / (1e6 if key == "bytes_sent" else 1) for r in rows]
            ax.bar([p + (i - 0.5) * 0.4 for p in x], vals, 0.4, label=tool)
        ax.set_xticks(list(x), labels, fontsize=8)
        ax.set_title(title)
        ax.legend()
    fig.suptitle("selfmig vs QEMU live migration (medians; TCG)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    print(f"chart: {path}")


if __name__ == "__main__":
    main()
