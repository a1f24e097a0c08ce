#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# End to end: a guest with a live workload migrates itself to a fresh VM.
#
# The workload holds 128 MiB of random data (with its checksum) and a
# counter process, and serves an echo session to a client in the namespace.
# After the migration, on the target: the same PID carries on counting, the
# data checksum matches, the client's session never reconnected, and the
# source VM has exited, and with verify=1 the target checked every page of
# the image against the source's checkpoint hashes before resuming it. TAP
# output.
#
# Usage: migrate.sh KDIR INITRD   (as root; SELFMIG_SMP sets vCPUs, default 1)
set -uo pipefail
top=$(cd "$(dirname "$0")/../../.." && pwd)
. "$top/scripts/lib.sh"
. "$top/scripts/vm.sh"
. "$top/scripts/tap.sh"
. "$top/scripts/token.sh"

kdir=${1:?usage: migrate.sh KDIR INITRD}
initrd=${2:?usage: migrate.sh KDIR INITRD}
[ "$(id -u)" = 0 ] || { echo "1..0 # SKIP needs root for network namespaces"; exit 0; }
smp=${SELFMIG_SMP:-1}
SM=/sys/kernel/self_migrate
IL=/sys/kernel/inflate_loader
SRC=$HARNESS_NET.2 DST=$HARNESS_NET.3

stat() {
	vm_exec "$1" "sed -n 's/^$2: //p' $SM/stats"
}

tap_plan 17
harness_init "$kdir" "$initrd"
tap_diag "accelerator: $(vm_accel), vCPUs per guest: $smp"
vm_boot src "$SRC" "$smp"
vm_boot dst "$DST" "$smp"
if ! vm_wait_ready src || ! vm_wait_ready dst; then
	echo "Bail out! guests did not boot"
	exit 1
fi

# The workload, and a process that writes through a shared file mapping
# and unmaps it again and again (the kernel tears the entries down, Dirty
# bits included, while the pages live on in the page cache).
vm_exec src 'selfmig-workload 128' >/dev/null
vm_exec src 'selfmig-mapwriter /tmp/shared.dat 1 </dev/null >/dev/null 2>&1 & echo $! > /tmp/mapwriter.pid' >/dev/null
pid_before=$(vm_exec src 'cat /tmp/count.pid')
sum_before=$(vm_exec src 'cat /tmp/data.md5')
stop="$HARNESS_DIR/client.stop"
ns python3 "$top/tools/selftests/two_guest/echo_client.py" "$SRC" 6001 "$stop" > "$HARNESS_DIR/client.json" &
client=$!
sleep 1
count_before=$(vm_exec src 'cat /tmp/count')

# Every uevent the guest sees, logged (busybox uevent).
vm_exec src 'uevent /bin/selfmig-uevent-log </dev/null >/dev/null 2>&1 &' >/dev/null

# The target is busy too: a task that writes and deletes a file in a loop
# changes the loader's memory map and slab while pages arrive, which the
# loader's write watch must catch.
vm_exec dst '(while :; do head -c 4194304 /dev/zero > /tmp/churn; rm -f /tmp/churn; done) </dev/null >/dev/null 2>&1 &' >/dev/null

# The migration, through sysfs.
vm_exec dst "echo 0.0.0.0:7000 > $IL/listen && echo $(provider_key) > $IL/key && echo 1 > $IL/enable" >/dev/null
start=$(date +%s.%N)
vm_exec src "echo $(mint_token migrate --vcpus "$smp") > $SM/token && echo 1 > $SM/verify && echo $DST:7000 > $SM/target && echo 1 > $SM/start" >/dev/null

tap_result "the source VM powers off after the commit" vm_wait_exit src
tap_diag "migration took $(echo "$(date +%s.%N) - $start" | bc) s (start to source exit, wall clock)"

migrated() {
	local s t
	for ((t = 0; t < 60; t++)); do
		s=$(vm_exec src "cat $SM/status" 2>/dev/null) && [ "$s" = migrated ] && return 0
		sleep 0.5
	done
	tap_diag "status at $SRC: ${s:-unreachable}"
	tap_diag "target console tail: $(tail -n 5 "$HARNESS_DIR/dst.log" | tr '\n' '|')"
	vm_migration_diag src dst
	return 1
}
tap_result "the guest answers at its address from the target VM, status migrated" migrated
tap_diag "stats: rounds=$(stat src round) pages_sent=$(stat src pages_sent) staged=$(stat src staged_pages) downtime_us(guest clock)=$(stat src downtime_us)"
tap_diag "tracker $(stat src tracker_used): last round marked $(stat src marked_pages) frames ($(stat src dirty_entries) dirty entries, $(stat src page_tables) tables, $(stat src address_spaces) address spaces); checkpoint marked $(stat src checkpoint_marked_pages) ($(stat src checkpoint_dirty_entries) dirty entries, $(stat src checkpoint_page_tables) tables); misses $(stat src tracker_misses)"

verified() {
	local n line
	n=$(stat src verify_pages)
	line=$(grep -a "verify: all .* pages match" "$HARNESS_DIR/dst.log" | tail -n 1)
	tap_diag "source sent $n page hashes; target said: ${line:-nothing}"
	[ "${n:-0}" -gt 0 ] && [[ "$line" == *"verify: all $n pages match their checkpoint hash"* ]]
}
tap_result "verify=1: the target checked every page against its checkpoint hash" verified

# The loader's write watch: slotted pages identical at home and not written
# since were left out of the trampoline's copy (not all of them: the busy
# target wrote some); with verify=1 the loader compared each of them once
# more at the jump, and none differed.
unwritten() {
	local n misses line identical
	n=$(stat src unwritten_pages) misses=$(stat src unwritten_misses)
	line=$(grep -ao "self_migrate: target: image of .* identical at home when they arrived" "$HARNESS_DIR/dst.log" | tail -n 1)
	identical=$(echo "$line" | sed -n 's/.* in slots, \([0-9]*\) of them identical at home.*/\1/p')
	tap_diag "loader: ${line:-no watch}; left out of the copy: ${n:-?}, misses: ${misses:-?}"
	[ "${n:-0}" -gt 0 ] && [ "$n" -lt "${identical:-0}" ] && [ "$misses" = 0 ]
}
tap_result "identical slotted pages the busy loader did not write were left out of the copy, the written ones kept, none missed (checked)" unwritten

downtime_phases() {
	local total sum=0 p v line=""
	total=$(stat src downtime_us)
	for p in checkpoint transfer target commit jump resume; do
		v=$(stat src downtime_${p}_us)
		line+=" $p=${v}us"
		sum=$((sum + v))
	done
	tap_diag "downtime ${total}us (guest's clocks):$line"
	[ "${total:-0}" -gt 0 ] && [ "$total" = "$sum" ] && [ "$(stat src downtime_checkpoint_us)" -gt 0 ] &&
		[ "$(stat src downtime_resume_us)" -gt 0 ]
}
tap_result "the migrated guest reports its downtime, phase by phase" downtime_phases

# Rehearsals (ksupport/rehearsal.rs): the source ran its checkpoint's
# device and system-core steps once after admission, the loader the jump's
# and the image's resume when it was enabled. The loader told the source
# what its rehearsal took (in the hello reply), and the convergence policy
# counted both in the downtime's fixed part.
rehearsed() {
	local src dst us target fixed
	src=$(grep -ao "self_migrate: rehearsed the checkpoint in [0-9]* us.*" "$HARNESS_DIR/src.log")
	dst=$(grep -ao "inflate_loader: rehearsed the jump and the image's resume in [0-9]* us" "$HARNESS_DIR/dst.log")
	us=$(stat src rehearsal_us)
	target=$(stat src target_rehearsal_us)
	fixed=$(stat src downtime_fixed_us)
	tap_diag "source: ${src:-no rehearsal}; loader: ${dst:-no rehearsal}; rehearsal_us $us, of which interrupts off $(stat src rehearsal_core_us); target_rehearsal_us $target; downtime_fixed_us $fixed"
	[ -n "$src" ] && [ -n "$dst" ] && [ "${us:-0}" -gt 0 ] &&
		[ "$dst" = "inflate_loader: rehearsed the jump and the image's resume in $target us" ] &&
		[ "${fixed:-0}" = "$((us + target))" ]
}
tap_result "the checkpoint was rehearsed on both sides, and the policy counted both rehearsals" rehearsed

# Pages sent again travel as patches of their last version (resent.rs);
# test 3 (verify=1) shows the target rebuilt every page right.
patched() {
	local rest
	rest=$(grep -ao "self_migrate: sent the rest: [0-9]* pages ([0-9]* as patches[^)]*) in [0-9]* bytes" "$HARNESS_DIR/src.log")
	tap_diag "${rest:-no 'sent the rest' line}; pre-copy patches: $(stat src patched_pages)"
	[[ "$rest" =~ \(([0-9]+)\ as\ patches ]] && [ "${BASH_REMATCH[1]}" -gt 0 ]
}
tap_result "staged pages sent again since round 1 travel as patches" patched

# The paging tracker's precision: RAM mapped with 4 KiB pages for the
# migration (joined again on the target, by the resumed image), and
# text_poke()'s page table found (else text is hashed in every round).
tracker_setup() {
	local split found joined
	split=$(grep -ao "split into 4 KiB pages: [0-9]* tables" "$HARNESS_DIR/src.log" | grep -o "[0-9]* tables")
	found=$(grep -ao "text_poke()'s page table is frame 0x[0-9a-f]*" "$HARNESS_DIR/src.log")
	joined=$(grep -ao "joined again: [0-9]* tables freed, [0-9]* kept" "$HARNESS_DIR/dst.log")
	tap_diag "split: ${split:-none}; ${found:-text_poke table not found}; target: ${joined:-not joined}"
	[ "${split%% *}" -gt 0 ] && [ -n "$found" ] && [[ "$joined" =~ ^"joined again: "[1-9] ]]
}
tap_result "RAM mapped with 4 KiB pages for the migration, text_poke()'s table found, joined again on the target" tracker_setup

uevent_seen() {
	local line
	line=$(vm_exec src 'cat /tmp/uevents 2>/dev/null' | tail -n 1)
	tap_diag "uevent: ${line:-none}"
	[[ "$line" == *"SELFMIG_STATE=migrated"* && "$line" == *"SELFMIG_ERRNO=0"* && "$line" == *"SELFMIG_DOWNTIME_US=$(stat src downtime_us)"* ]]
}
tap_result "a uevent on /dev/self_migrate announces the migration, from the target" uevent_seen

same_pid_counts() {
	local pid c1 c2
	pid=$(vm_exec src 'cat /tmp/count.pid') c1=$(vm_exec src 'cat /tmp/count')
	sleep 1
	c2=$(vm_exec src 'cat /tmp/count')
	tap_diag "counter pid $pid_before -> $pid, count $count_before -> $c1 -> $c2"
	[ "$pid" = "$pid_before" ] && vm_exec src "kill -0 $pid" >/dev/null && [ "$c1" -gt "$count_before" ] && [ "$c2" -gt "$c1" ]
}
tap_result "the workload's counter process carries on (same PID, still counting)" same_pid_counts
tap_result "the workload's 128 MiB of data is intact (checksum)" \
	eval '[ "$(vm_exec src "md5sum /tmp/data | cut -d\" \" -f1")" = "$sum_before" ]'
# Stopped first: a check racing with the next pass would see it overtake.
tap_result "the shared-mapping writer's file is consistent (no page missed its last write)" \
	eval 'vm_exec src "kill -STOP \$(cat /tmp/mapwriter.pid) && sleep 0.2 && selfmig-mapwriter --check /tmp/shared.dat; r=\$?; kill -CONT \$(cat /tmp/mapwriter.pid); exit \$r"'
touch "$stop"
wait "$client"
tap_diag "client: $(cat "$HARNESS_DIR/client.json")"
tap_result "the client's TCP session survived without reconnecting" \
	eval 'grep -q "\"broken\": null" "$HARNESS_DIR/client.json" && ! grep -q "\"echoed\": 0" "$HARNESS_DIR/client.json"'
tap_result "the target VM kept running the guest" eval 'kill -0 "${VM_PID[dst]}"'
tap_result "the migrated guest has all its CPUs online" \
	eval '[ "$smp" = 1 ] || [ "$(vm_exec src "cat /sys/devices/system/cpu/online")" = "0-$((smp - 1))" ]'
tap_result "the migrated guest can reach the client" quiet vm_exec src "ping -c 1 -W 2 $HARNESS_CLIENT_IP"

# The serial console was kept live through the checkpoint (its port never
# shut down; see live_console.rs), so the target's freshly reset UART got
# only its registers rewritten on resume: a tty write of more than the
# UART's FIFO, which needs its transmit interrupts, reaches the target's
# console in full.
serial_works() {
	vm_exec src "timeout 10 sh -c 'for i in \$(seq 100); do echo selfmig-tty-\$i-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx; done > /dev/ttyS0'" >/dev/null || return 1
	for _ in 1 2 3 4 5; do
		grep -q "selfmig-tty-100-" "$HARNESS_DIR/dst.log" && break
		sleep 1
	done
	[ "$(grep -c "selfmig-tty-[0-9]*-x" "$HARNESS_DIR/dst.log")" = 100 ]
}
tap_result "the migrated guest's serial console works on the target (interrupt-driven tty output)" serial_works
