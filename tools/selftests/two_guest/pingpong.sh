#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Ping-pong: the same guest migrates five times in a row, each time to a
# fresh VM, alternating the sysfs path and the selfmig CLI (the ioctl path:
# it waits on /dev/self_migrate through the move and prints its JSON report
# from the target, which is checked); hops 3 (sysfs compress 0) and 4
# (--no-compress) send their pages plain and skip the rehearsal of the
# checkpoint (rehearse 0, --no-rehearse), the others LZ4-compressed;
# after every hop its counter process (same PID) carries on, its data
# checksum holds, it answers at its own address, and the VM it left has
# exited, and the target verified every page before resuming (verify=1).
# Guests have SELFMIG_SMP vCPUs (default 2). TAP output.
#
# Usage: pingpong.sh KDIR INITRD [HOPS]   (as root)
set -uo pipefail
top=$(cd "$(dirname "$0")/../../.." && pwd)
. "$top/scripts/lib.sh"
. "$top/scripts/vm.sh"
. "$top/scripts/tap.sh"
. "$top/scripts/token.sh"

kdir=${1:?usage: pingpong.sh KDIR INITRD [HOPS]}
initrd=${2:?usage: pingpong.sh KDIR INITRD [HOPS]}
hops=${3:-5}
[ "$(id -u)" = 0 ] || { echo "1..0 # SKIP needs root for network namespaces"; exit 0; }
SM=/sys/kernel/self_migrate
IL=/sys/kernel/inflate_loader
GUEST=$HARNESS_NET.2

smp=${SELFMIG_SMP:-2}
tap_plan "$hops"
harness_init "$kdir" "$initrd"
vm_boot h0 "$GUEST" "$smp"
vm_wait_ready h0 || { echo "Bail out! guest did not boot"; exit 1; }
# The guest is reached by its address, whichever VM runs it; vm_exec
# needs a name, so "guest" is an alias with the guest's address.
VM_IP[guest]=$GUEST
vm_exec guest 'selfmig-workload 64' >/dev/null
pid=$(vm_exec guest 'cat /tmp/count.pid')
sum=$(vm_exec guest 'cat /tmp/data.md5')
host=h0

hop() {
	local n=$1 next=h$1 ip=$HARNESS_NET.$((2 + $1)) count t s
	vm_boot "$next" "$ip" "$smp"
	vm_wait_ready "$next" || return 1
	vm_exec "$next" "echo 0.0.0.0:7000 > $IL/listen && echo $(provider_key) > $IL/key && echo 1 > $IL/enable" >/dev/null || return 1
	# A fresh token for every hop (tokens are single use).
	local token
	token=$(mint_token "hop$n" --vcpus "$smp") || return 1
	count=$(vm_exec guest 'cat /tmp/count')
	local compress=1 plain= rehearse=1
	((n == 3 || n == 4)) && compress=0 rehearse=0 plain="--no-compress --no-rehearse"
	if ((n % 2 == 0)); then
		# The CLI (ioctl path): its own TCP session to us survives the move.
		local said
		said=$(vm_exec guest "echo $token > /tmp/token && selfmig migrate --to $ip:7000 --token /tmp/token --verify $plain --json --no-progress 2>/dev/null") ||
			{ tap_diag "hop $n: selfmig migrate: $said"; return 1; }
		tap_diag "hop $n (CLI): $said"
		python3 "$top/tools/selftests/two_guest/check_report.py" "$said" || return 1
	else
		vm_exec guest "echo $token > $SM/token && echo 1 > $SM/verify && echo $compress > $SM/compress && echo $rehearse > $SM/rehearse && echo $ip:7000 > $SM/target && echo 1 > $SM/start" >/dev/null || return 1
	fi
	if ! vm_wait_exit "$host"; then
		tap_diag "hop $n: $host still running: $(vm_exec guest "sed -n 's/^last_error: //p' $SM/stats")"
		tap_diag "hop $n: tracker_misses $(vm_exec guest "sed -n 's/^tracker_misses: //p' $SM/stats")"
		vm_migration_diag "$host" "$next"
		return 1
	fi
	unset "VM_PID[$host]"
	for ((t = 0; t < 60; t++)); do
		s=$(vm_exec guest "cat $SM/status" 2>/dev/null) && [ "$s" = migrated ] && break
		sleep 0.5
	done
	host=$next
	local now_pid now_count now_sum
	now_pid=$(vm_exec guest 'cat /tmp/count.pid') now_count=$(vm_exec guest 'sleep 0.3; cat /tmp/count')
	now_sum=$(vm_exec guest 'md5sum /tmp/data | cut -d" " -f1')
	local packed
	packed=$(vm_exec guest "sed -n 's/^compressed_pages: //p' $SM/stats")
	tap_diag "hop $n: now in VM $host ($(vm_exec guest 'cat /sys/devices/system/cpu/online') online); counter pid $now_pid, count $count -> $now_count; compress $compress: ${packed:-?} pages sent compressed"
	grep -aq "verify: all .* pages match their checkpoint hash" "$HARNESS_DIR/$next.log" ||
		tap_diag "hop $n: the target did not report a verified image"
	# Compressed pages with compression on, none with it off.
	{ [ "$compress" = 1 ] && [ "${packed:-0}" -gt 0 ]; } || { [ "$compress" = 0 ] && [ "$packed" = 0 ]; } ||
		{ tap_diag "hop $n: compress $compress but ${packed:-?} pages sent compressed"; return 1; }
	[ "$s" = migrated ] && [ "$now_pid" = "$pid" ] &&
		grep -aq "verify: all .* pages match their checkpoint hash" "$HARNESS_DIR/$next.log" && [ "$now_count" -gt "$count" ] && [ "$now_sum" = "$sum" ] &&
		vm_exec guest "kill -0 $pid" >/dev/null
}

for n in $(seq 1 "$hops"); do
	path=sysfs
	((n % 2 == 0)) && path=ioctl
	tap_result "hop $n ($path): the guest moves to a fresh VM and carries on" hop "$n"
done
