#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# `make check`: every test, then one summary line "N passed, N failed".
#   1. lint: rustfmt clean, `make CLIPPY=1` without warnings, proto's and
#      the CLI's clippy without warnings
#   2. host tests (cargo test): proto/, the selfmig CLI; the admission
#      fuzzer for a bounded time (SELFMIG_FUZZ_SECONDS, default 60)
#   3. packaging: `dkms build` of the tree against the built kernel
#   4. kselftests in a virtme-ng guest (module load/unload, sysfs, ioctl)
#   5. two-guest harness: bring-up; connection, admission, pre-copy,
#      checkpoint and every failure before commit; tokens, payment and
#      damaged streams refused; a hostile source's malformed streams
#      refused; a full migration; five migrations in a row
# Logs go to build/check/. Exit status is non-zero if anything failed.
set -uo pipefail
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/tap.sh"

kdir=$(cat "$SELFMIG_TOP/build/kdir") || die "no kernel recorded; run make"
logs="$SELFMIG_TOP/build/check"
rm -rf "$logs"
mkdir -p "$logs"
pass=0 fail=0 skip=0
begin=$(date +%s)

# add P F S: accumulate a suite's counts.
add() {
	pass=$((pass + $1)) fail=$((fail + $2)) skip=$((skip + $3))
	echo "== $4: $1 passed, $2 failed, $3 skipped"
}

echo "== lint"
{
	tap_plan 6
	tap_result "rustfmt --check" quiet make -s -C "$SELFMIG_TOP" fmt-check
	make -C "$SELFMIG_TOP" CLIPPY=1 modules > "$logs/clippy.log" 2>&1
	clippy_rc=$?
	tap_result "make CLIPPY=1: builds, no warnings" \
		eval '[ $clippy_rc = 0 ] && ! grep -Eq "^(warning|error)" "$logs/clippy.log"'
	# Leave the regular (non-clippy) objects behind.
	make -s -C "$SELFMIG_TOP" modules > /dev/null 2>&1
	tap_result "proto: cargo clippy, no warnings" quiet \
		cargo clippy --quiet --locked --all-targets --manifest-path "$SELFMIG_TOP/proto/Cargo.toml" -- -D warnings
	tap_result "the tools' shared crypto: cargo clippy, no warnings" quiet \
		cargo clippy --quiet --locked --all-targets --manifest-path "$SELFMIG_TOP/tools/hostcrypto/Cargo.toml" -- -D warnings
	tap_result "the hostile-source tool: cargo clippy, no warnings" quiet \
		cargo clippy --quiet --locked --all-targets --manifest-path "$SELFMIG_TOP/tools/hostile/Cargo.toml" -- -D warnings
	tap_result "the selfmig CLI: cargo clippy, no warnings" quiet \
		cargo clippy --quiet --locked --all-targets --manifest-path "$SELFMIG_TOP/tools/selfmig/Cargo.toml" -- -D warnings
} | tee "$logs/lint.tap"
read -r p f s < <(tap_count "$logs/lint.tap")
add "$p" "$f" "$s" lint

# cargo_suite NAME DIR: cargo test in DIR, counted.
cargo_suite() {
	local log="$logs/cargo-$1.log" p f
	echo "== $1: cargo test"
	if cargo test --locked --manifest-path "$2/Cargo.toml" 2>&1 | tee "$log" | grep -E "^test |test result"; then :; fi
	read -r p f < <(awk '/^test result:/ { p += $4; f += $6 } END { print p + 0, f + 0 }' "$log")
	grep -q "^test result:" "$log" || f=$((f + 1))
	add "$p" "$f" 0 "$1"
}
cargo_suite proto "$SELFMIG_TOP/proto"
cargo_suite cli "$SELFMIG_TOP/tools/selfmig"
cargo_suite hostcrypto "$SELFMIG_TOP/tools/hostcrypto"
cargo_suite hostile "$SELFMIG_TOP/tools/hostile"

echo "== fuzz: the loader's record parser and admission state machine"
{
	tap_plan 1
	tap_result "admission fuzzer: ${SELFMIG_FUZZ_SECONDS:-60} s without a failure" \
		eval '"$SELFMIG_TOP/proto/fuzz/run.sh" "${SELFMIG_FUZZ_SECONDS:-60}" > "$logs/fuzz.log" 2>&1'
	tap_diag "$(grep -E "^(executions|libFuzzer|proto/src)" "$logs/fuzz.log" | tr '\n' ';')"
} | tee "$logs/fuzz.tap"
read -r p f s < <(tap_count "$logs/fuzz.tap")
add "$p" "$f" "$s" fuzz

echo "== packaging: dkms build against the built kernel"
"$SELFMIG_TOP/scripts/dkms-check.sh" 2>&1 | tee "$logs/dkms.tap"
read -r p f s < <(tap_count "$logs/dkms.tap")
[ $((p + f + s)) -gt 0 ] || f=1
add "$p" "$f" "$s" dkms

echo "== kselftests in a virtme-ng guest"
"$SELFMIG_TOP/scripts/run-kselftests.sh" "$kdir" 2>&1 | tee "$logs/kselftest.tap"
read -r p f s < <(tap_count "$logs/kselftest.tap")
[ $((p + f + s)) -gt 0 ] || f=1
add "$p" "$f" "$s" kselftests

echo "== two-guest harness"
initrd="$SELFMIG_TOP/build/initramfs.cpio.gz"
"$SELFMIG_TOP/scripts/mkinitramfs.sh" "$kdir" "$initrd"
for t in bringup precopy admission hostile migrate converge pingpong; do
	echo "-- two_guest/$t.sh"
	"$SELFMIG_TOP/tools/selftests/two_guest/$t.sh" "$kdir" "$initrd" 2>&1 | tee "$logs/two_guest_$t.tap"
	read -r p f s < <(tap_count "$logs/two_guest_$t.tap")
	[ $((p + f + s)) -gt 0 ] || f=1
	add "$p" "$f" "$s" "two-guest $t"
done

echo "== make check took $(($(date +%s) - begin)) s; logs in build/check/"
[ "$skip" = 0 ] || echo "$skip skipped (not implemented yet; see the SKIP lines above)"
echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
