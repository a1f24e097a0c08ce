#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Helpers shared by the selfmig kselftests. Source after setting MODNAME.
#
# Environment: KSFT_DIR (tools/testing/selftests of the kernel tree; default
# $KDIR/tools/testing/selftests) and SELFMIG_MODDIR (the selfmig checkout
# holding the built .ko files; default: three levels up from here).

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
KSFT_DIR=${KSFT_DIR:-${KDIR:+$KDIR/tools/testing/selftests}}
SELFMIG_MODDIR=${SELFMIG_MODDIR:-$(cd "$here/../../.." && pwd)}
# shellcheck source=/dev/null
. "$KSFT_DIR/kselftest/ktap_helpers.sh" || {
	echo "1..0 # SKIP ktap_helpers.sh not found (set KSFT_DIR or KDIR)"
	exit 4
}

# The strerror text bash prints when a write fails with the errno.
errno_text() {
	case "$1" in
	EINVAL) echo "Invalid argument" ;;
	ERANGE) echo "Numerical result out of range" ;;
	EADDRNOTAVAIL) echo "Cannot assign requested address" ;;
	E2BIG) echo "Argument list too long" ;;
	EDESTADDRREQ) echo "Destination address required" ;;
	ENOKEY) echo "Required key not available" ;;
	EOPNOTSUPP) echo "Operation not supported" ;;
	EBUSY) echo "Device or resource busy" ;;
	EACCES) echo "Permission denied" ;;
	*) echo "unknown errno name $1" ;;
	esac
}

# Number of kernel log lines from $MODNAME so far.
log_count() {
	dmesg | grep -c "$MODNAME: "
}

# expect_write DESC FILE VALUE (OK|STARTED|ERRNO) [REASON]
# Writes VALUE to FILE in one write(). With OK the write must succeed and log
# nothing; with STARTED it must succeed (and may log: it started work);
# otherwise it must fail with ERRNO and log exactly one line
# "$MODNAME: ... REASON".
expect_write() {
	local desc=$1 file=$2 val=$3 want=$4 reason=${5:-} before after got
	before=$(log_count)
	got=$({ printf '%s' "$val" >"$file"; } 2>&1)
	after=$(log_count)
	if [ "$want" = OK ] || [ "$want" = STARTED ]; then
		if [ -z "$got" ] && { [ "$want" = STARTED ] || [ "$after" -eq "$before" ]; }; then
			ktap_test_pass "$desc"
		else
			ktap_print_msg "write failed: '$got', new log lines: $((after - before))"
			ktap_test_fail "$desc"
		fi
		return
	fi
	if [[ "$got" != *"$(errno_text "$want")"* ]]; then
		ktap_print_msg "expected $want, got: '${got:-success}'"
		ktap_test_fail "$desc"
	elif [ $((after - before)) -ne 1 ]; then
		ktap_print_msg "expected one log line, got $((after - before))"
		ktap_test_fail "$desc"
	elif [ -n "$reason" ] && ! dmesg | grep "$MODNAME: " | tail -n 1 | grep -qF -- "$reason"; then
		ktap_print_msg "log line lacks '$reason': $(dmesg | grep "$MODNAME: " | tail -n 1)"
		ktap_test_fail "$desc"
	else
		ktap_test_pass "$desc"
	fi
}

# expect_read DESC FILE EXPECTED: FILE's contents must equal EXPECTED.
expect_read() {
	local got
	got=$(cat "$2" 2>&1)
	if [ "$got" = "$3" ]; then
		ktap_test_pass "$1"
	else
		ktap_print_msg "expected '$3', got '$got'"
		ktap_test_fail "$1"
	fi
}

# expect_unreadable DESC FILE: reading must fail (write-only attribute).
expect_unreadable() {
	if cat "$2" >/dev/null 2>&1; then
		ktap_test_fail "$1"
	else
		ktap_test_pass "$1"
	fi
}

# load_module NAME: insmod from the checkout, skipping all if impossible.
load_module() {
	local ko="$SELFMIG_MODDIR/$1/$1.ko"
	[ "$(id -u)" = 0 ] || { ktap_skip_all "must run as root"; exit 4; }
	[ -f "$ko" ] || { ktap_skip_all "$ko not built"; exit 4; }
	grep -q "^$1 " /proc/modules && rmmod "$1"
	insmod "$ko" || ktap_exit_fail_msg "insmod $ko failed"
}
