#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# proto/fuzz/run.sh SECONDS: fuzz the loader's record parser and admission
# state machine (target "admission", see harness.rs) for SECONDS seconds
# (default 60), then print executions and edge coverage.
#
# Works on the stable toolchain: cargo-fuzz builds with SanitizerCoverage
# (-Cpasses=sancov-module, stable -C flags) and links libFuzzer; only the
# sanitizers need nightly, and the crate under test has no unsafe code
# (overflow and other panics are caught: debug assertions are on).
#
# Installs the pinned cargo-fuzz from crates.io if missing (once: about two
# minutes), builds incrementally, fuzzes from the committed seeds plus the
# working corpus (fuzz/corpus/, not committed), and writes any failing
# input to fuzz/regressions/, which `cargo test` replays. Exits non-zero if
# the fuzzer found one.
set -euo pipefail

secs=${1:-60}
case $secs in '' | *[!0-9]*) echo "usage: $0 SECONDS" >&2; exit 2 ;; esac

CARGO_FUZZ_VERSION=0.13.2
here=$(cd "$(dirname "$0")" && pwd)
proto=$(dirname "$here")
export CARGO_BUILD_JOBS=${CARGO_BUILD_JOBS:-1}
export PATH="$HOME/.cargo/bin:$PATH"

if ! cargo fuzz --version 2>/dev/null | grep -qF " $CARGO_FUZZ_VERSION"; then
	echo "== installing cargo-fuzz $CARGO_FUZZ_VERSION"
	cargo install cargo-fuzz --version "$CARGO_FUZZ_VERSION" --locked
fi

echo "== building the fuzz target (stable, no sanitizer, debug assertions)"
(cd "$proto" && cargo fuzz build admission --sanitizer none --debug-assertions)
triple=$(rustc -vV | sed -n 's/^host: //p')
bin="$here/target/$triple/release/admission"

corpus="$here/corpus/admission"
mkdir -p "$corpus" "$here/regressions"
cp -n "$here"/seeds/* "$corpus"/ 2>/dev/null || true

echo "== fuzzing for $secs s"
log="$here/run.log"
rc=0
"$bin" "$corpus" \
	-max_total_time="$secs" -max_len=4096 -timeout=10 -rss_limit_mb=2048 \
	-print_final_stats=1 -artifact_prefix="$here/regressions/" \
	> "$log" 2>&1 || rc=$?
grep -E "^#[0-9]+[[:space:]]+(INITED|DONE)|^(stat::|SUMMARY|==[0-9]+== ERROR|thread .* panicked)" "$log" || true

echo "== summary"
execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
last=$(grep -E "^#[0-9]+[[:space:]]" "$log" | tail -1 || true)
cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<< "$last")
ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<< "$last")
edges=$(sed -n 's/^INFO: Loaded 1 modules *(\([0-9]*\) inline 8-bit counters.*/\1/p' "$log" | head -1)
echo "executions: ${execs:-?} in ${secs} s (${rate:-?}/s)"
echo "libFuzzer: cov ${cov:-?} of ${edges:-?} edges, ft ${ft:-?} features, corpus $(ls "$corpus" | wc -l) inputs"

# Per-file coverage of the corpus: a merge pass records which PC-table
# entries each input covers.
merged=$(mktemp -d)
ctl="$merged/control"
mkdir -p "$merged/out"
"$bin" -merge=1 -merge_control_file="$ctl" "$merged/out" "$corpus" > "$merged/log" 2>&1 || true
if [ -s "$ctl" ] && command -v python3 > /dev/null; then
	python3 "$here/coverage.py" "$bin" "$ctl"
fi
rm -rf "$merged"

if [ "$rc" != 0 ]; then
	echo "FAIL: the fuzzer stopped with status $rc; failing inputs:" >&2
	ls -1 "$here/regressions" | grep -v README >&2 || true
	echo "(cargo test replays them: tests/fuzz_regressions.rs)" >&2
	exit 1
fi
echo "ok: no failure in $secs s"
