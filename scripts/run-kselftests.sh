#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Build the selfmig kselftests and run them in a virtme-ng guest booted from
# KDIR's kernel; the guest sees this checkout read-only. TAP on stdout.
# Usage: run-kselftests.sh KDIR
set -euo pipefail
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/vm.sh"

kdir=${1:?usage: run-kselftests.sh KDIR}
st="$SELFMIG_TOP/tools/selftests/selfmig"
make -s -C "$st" KDIR="$kdir" >&2

accel=()
[ "$(vm_accel)" = kvm ] || accel=(--disable-kvm)
# The guest runs the kernel's kselftest runner over our TEST_PROGS. The runner
# reopens /dev/stdout, which clobbers output unless stdout is a pipe; the
# result is collected in a file and printed at once, because lines written
# straight to virtme-ng's console ports interleave.
# The suite runs from a copy in the guest's /tmp (timestamps kept), so that
# nothing is ever written into the read-only checkout, even if make in the
# guest decides the test binary is out of date (seen on CI, where the
# checkout's mount shows the guest other timestamps than the host).
# The runner looks for our "settings" under the kernel's selftests directory,
# where it is not, so its timeout is passed the way a command-line override is.
timeout_s=$(sed -n 's/^timeout=//p' "$st/settings")
cmd="export kselftest_override_timeout=${timeout_s:-120}; cp -a $st /tmp/ksft && cd /tmp/ksft && make -s KDIR=$kdir SELFMIG_MODDIR=$SELFMIG_TOP run_tests 2>&1 | cat > /tmp/ksft.tap; cat /tmp/ksft.tap"
timeout "${SELFMIG_KSELFTEST_TIMEOUT:-900}" \
	vng -r "$kdir/arch/x86/boot/bzImage" "${accel[@]}" --user root \
	--cpus 2 --memory 1G --append "swiotlb=force" --exec "$cmd" | cat
# (QEMU opens our stdout twice, for two console ports: if it were a regular
# file the two writers would overwrite each other; through `cat` it is a pipe.)
