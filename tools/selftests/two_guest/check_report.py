#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Checks the JSON report of a successful `selfmig migrate --verify --json`.

The document must be one JSON object with the keys and types that
Documentation/selfmig/cli.rst gives for `migrate` (the CLI's own tests check
the full schema; this checks what a migration that just happened must say):
outcome "migrated", exit code 0, state "migrated", verify on, pages and bytes
sent, a measured downtime, and no error. Exit status 0 when it does; else
the reasons on stderr.

Usage: check_report.py JSON
"""
import json
import sys


def main():
    try:
        doc = json.loads(sys.argv[1])
    except (IndexError, json.JSONDecodeError) as e:
        print(f"not a JSON document: {e}", file=sys.stderr)
        return 1
    expect = {
        "schema_version": lambda v: v == 1,
        "outcome": lambda v: v == "migrated",
        "exit_code": lambda v: v == 0,
        "state": lambda v: v == "migrated",
        "verify": lambda v: v is True,
        "rounds": lambda v: isinstance(v, int) and v >= 0,
        "pages_sent": lambda v: isinstance(v, int) and v > 0,
        "bytes_sent": lambda v: isinstance(v, int) and v > 4096,
        "downtime_us": lambda v: isinstance(v, int) and v > 0,
        "total_ms": lambda v: isinstance(v, int) and v > 0,
        "error": lambda v: v is None,
    }
    bad = [f"{k}={doc.get(k, '<missing>')!r}" for k, ok in expect.items() if k not in doc or not ok(doc[k])]
    if bad:
        print("unexpected report fields: " + ", ".join(bad), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
