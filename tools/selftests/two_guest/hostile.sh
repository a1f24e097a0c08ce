#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# A hostile source against a live loader: forged, replayed, truncated,
# oversize and out-of-range streams. One loader guest and no source guest:
# selfmig-hostile (tools/hostile) plays the source from the harness
# namespace, one scenario per connection, each with a fresh token (tokens
# are single use). It follows the protocol until it misbehaves once:
#
#   scenario       misbehaviour                              loader's answer
#   garbage-first  16 random bytes instead of the token      151, "bad magic"
#   oversize       sealed batch header beyond its bound       151, "record too long for its kind"
#   out-of-range   after paying, a page outside the RAM map   155, "page outside the RAM map"
#   replay-record  a sealed payment sent twice, verbatim      152, "record out of order"
#   reorder        two records sealed in the other order      141, "record failed authentication"
#   plaintext      a plaintext payment after admission        142, "plaintext record after admission"
#   truncated      half a sealed batch, then end of stream    no reply, "receiving from the source failed"
#   bad-lz4        after paying, an LZ4 block of ten bytes    154, "a compressed page does not decompress to one page"
#   patch-unsent   after paying, a patch of a page never sent 154, "a patch for a page that never arrived"
#
# After each: the tool saw that answer, the loader listens again and its
# stats name the reason, and the guest is healthy (its agent answers, no
# BUG/WARNING/Oops in its log, the memory the loader claimed for the image
# is back). Finally the loader's counters account for every attempt.
#
# The hello must describe the loader's own machine to be admitted; it is
# read from the guest the way ksupport/machine.rs builds it: the System RAM
# of /proc/iomem (converted by the tool), the possible CPUs (nr_cpu_ids),
# and 5-level paging when the kernel kept the la57 flag. The CPU feature
# words are left zero, a subset of any CPU's. The harness plays the
# provider (scripts/token.sh). TAP output.
#
# Usage: hostile.sh KDIR INITRD   (as root; SELFMIG_SMP vCPUs, default 1)
set -uo pipefail
top=$(cd "$(dirname "$0")/../../.." && pwd)
. "$top/scripts/lib.sh"
. "$top/scripts/vm.sh"
. "$top/scripts/tap.sh"
. "$top/scripts/token.sh"

kdir=${1:?usage: hostile.sh KDIR INITRD}
initrd=${2:?usage: hostile.sh KDIR INITRD}
[ "$(id -u)" = 0 ] || { echo "1..0 # SKIP needs root for network namespaces"; exit 0; }
smp=${SELFMIG_SMP:-1}
IL=/sys/kernel/inflate_loader
DST=$HARNESS_NET.3
PORT=7000

# The tool (quick when already built).
HOSTILE=$top/tools/hostile/target/release/selfmig-hostile
cargo build --quiet --locked --release --manifest-path "$top/tools/hostile/Cargo.toml" >&2 ||
	{ echo "Bail out! cannot build tools/hostile"; exit 1; }

stat() {
	vm_exec dst "sed -n 's/^$1: //p' $IL/stats"
}

mem_available() {
	vm_exec dst "sed -n 's/^MemAvailable: *\([0-9]*\).*/\1/p' /proc/meminfo"
}

# describe: the loader's machine, as its hello must state it: the RAM map
# ($HARNESS_DIR/iomem), $vcpus and $levels.
describe() {
	local possible
	vm_exec dst 'cat /proc/iomem' > "$HARNESS_DIR/iomem" &&
		grep -q 'System RAM' "$HARNESS_DIR/iomem" &&
		possible=$(vm_exec dst 'cat /sys/devices/system/cpu/possible') || return 1
	vcpus=$((${possible##*[-,]} + 1))
	if vm_exec dst 'grep -qw la57 /proc/cpuinfo'; then levels=5; else levels=4; fi
}

# listening_again WANT: the loader listens again and its last error
# matches WANT (an extended regular expression).
listening_again() {
	local want=$1 status why t
	for ((t = 0; t < 50; t++)); do
		status=$(vm_exec dst "cat $IL/status") why=$(stat last_error)
		[ "$status" = listening ] && [[ "$why" =~ $want ]] && break
		sleep 0.2
	done
	tap_diag "loader: $status, last_error '$why'; admitted $(stat admitted), refused $(stat refused), failed $(stat failed)"
	[ "$status" = listening ] && [[ "$why" =~ $want ]]
}

# healthy: the guest answers, logged no kernel bug or warning, and has its
# memory back (the loader claims nearly all of it for an admitted image).
healthy() {
	local bad avail
	vm_exec dst true >/dev/null || { tap_diag "the loader guest does not answer"; return 1; }
	bad=$(vm_exec dst 'dmesg | grep -E "BUG:|WARNING:|Oops|Call Trace|general protection"')
	[ -z "$bad" ] || { tap_diag "loader guest log: $bad"; return 1; }
	avail=$(mem_available)
	[ "$avail" -ge $((mem0 * 8 / 10)) ] || { tap_diag "MemAvailable $avail kB, was $mem0 kB"; return 1; }
}

# hostile NAME WANT: scenario NAME with a fresh token: the tool saw the
# expected answer (its exit status), then the loader listens again naming
# WANT, and the guest is healthy.
hostile() {
	local name=$1 want=$2 out rc
	mint_token "hostile-$name" --vcpus "$vcpus" >/dev/null || { tap_diag "cannot mint a token"; return 1; }
	out=$(ns "$HOSTILE" --to "$DST:$PORT" --scenario "$name" --token "$HARNESS_DIR/hostile-$name.token" \
		--iomem "$HARNESS_DIR/iomem" --vcpus "$vcpus" --paging-levels "$levels" 2>&1)
	rc=$?
	tap_diag "$out (exit $rc)"
	[ "$rc" = 0 ] && listening_again "$want" && healthy
}

tap_plan 10
harness_init "$kdir" "$initrd"
tap_diag "accelerator: $(vm_accel), vCPUs: $smp"
vm_boot dst "$DST" "$smp" "${SELFMIG_MEM:-512}"
if ! vm_wait_ready dst; then
	echo "Bail out! the loader guest did not boot"
	exit 1
fi
vm_exec dst "echo 0.0.0.0:$PORT > $IL/listen" >/dev/null
loader_key dst
vm_exec dst "echo 1 > $IL/enable" >/dev/null
if ! describe || [ "$(vm_exec dst "cat $IL/status")" != listening ]; then
	echo "Bail out! the loader is not listening or its machine cannot be read"
	exit 1
fi
tap_diag "loader machine: $vcpus vCPUs, $levels-level paging, RAM: $(grep 'System RAM' "$HARNESS_DIR/iomem" | tr -s ' \n' ' ')"
mem0=$(mem_available)
admitted0=$(stat admitted) refused0=$(stat refused) failed0=$(stat failed)

tap_result "random bytes instead of a token are refused: bad magic" \
	hostile garbage-first "^bad magic$"
tap_result "a sealed header beyond its kind's bound is refused before its payload" \
	hostile oversize "^record too long for its kind$"
tap_result "a paid-for page outside the RAM map is refused" \
	hostile out-of-range "^page outside the RAM map$"
tap_result "a sealed record replayed within the stream is refused" \
	hostile replay-record "^(record out of order|record failed authentication)$"
tap_result "records sealed out of order are refused" \
	hostile reorder "^(record failed authentication|record out of order)$"
tap_result "a plaintext record after admission is refused" \
	hostile plaintext "^plaintext record after admission$"
tap_result "a sealed record cut short ends the connection; the loader carries on" \
	hostile truncated "^receiving from the source failed$"
tap_result "a compressed page that does not decompress to a page is refused" \
	hostile bad-lz4 "^a compressed page does not decompress to one page$"
tap_result "a patch of a page never sent is refused" \
	hostile patch-unsent "^a patch for a page that never arrived$"

# Eight sources were admitted and failed; one was refused at its token.
counted() {
	local a r f
	a=$(($(stat admitted) - admitted0)) r=$(($(stat refused) - refused0)) f=$(($(stat failed) - failed0))
	tap_diag "since the start: admitted $a, refused $r, failed $f"
	[ "$a" = 8 ] && [ "$r" = 1 ] && [ "$f" = 8 ]
}
tap_result "the loader counted every attempt: 8 admitted and failed, 1 refused" counted
