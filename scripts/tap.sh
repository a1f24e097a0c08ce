# SPDX-License-Identifier: GPL-2.0
# Minimal TAP output for host-side tests (the guests' kselftests use the
# kernel's ktap_helpers.sh). Source it.

TAP_N=0
TAP_FAIL=0

tap_plan() {
	echo "TAP version 13"
	echo "1..$1"
}

# tap_result DESC CMD...: runs CMD; ok when it succeeds.
tap_result() {
	local desc=$1
	shift
	TAP_N=$((TAP_N + 1))
	if "$@"; then
		echo "ok $TAP_N $desc"
	else
		echo "not ok $TAP_N $desc"
		TAP_FAIL=$((TAP_FAIL + 1))
	fi
}

# tap_skip DESC REASON
tap_skip() {
	TAP_N=$((TAP_N + 1))
	echo "ok $TAP_N $1 # SKIP $2"
}

# quiet CMD...: runs CMD with its output discarded.
quiet() {
	"$@" >/dev/null 2>&1
}

tap_diag() {
	echo "# $*"
}

# Counts the results in a TAP log: prints "PASS FAIL SKIP". Nested results
# (kselftest runner output, prefixed "# ") are counted individually; an outer
# failure with no nested failure behind it (a crash, a timeout) counts once.
tap_count() {
	awk '
		/^# (not )?ok [0-9]+/ { sub(/^# /, ""); nested = 1 }
		/^not ok [0-9]+/ { if (nested) ifail++; else ofail++; nested = 0; next }
		/^ok [0-9]+.*# SKIP/ { if (nested) iskip++; else oskip++; nested = 0; next }
		/^ok [0-9]+/ { if (nested) ipass++; else opass++; nested = 0; next }
		{ nested = 0 }
		END {
			if (ipass + ifail + iskip > 0) {
				fail = ifail + (ifail == 0 ? ofail : 0)
				printf "%d %d %d\n", ipass, fail, iskip
			} else {
				printf "%d %d %d\n", opass, ofail, oskip
			}
		}' "$1"
}
