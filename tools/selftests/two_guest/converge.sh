#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Convergence: a guest that dirties memory much faster than the link sends
# it (selfmig-dirty: 64 MiB, one word per page, as fast as it can: a
# paced dirtier can fall behind a fast machine's link, and then pre-copy
# rightly converges without help).
#
# With auto_converge off, pre-copy gives up (ETIMEDOUT, with the reason),
# and the guest carries on with the dirtier scheduled as before. With it on,
# the dirtier is throttled (SCHED_DEADLINE bandwidth) until pre-copy
# converges; the guest migrates with the paging tracker and verify=1, the
# tracker missed no page, and on the target the dirtier runs on with its
# old scheduling policy. TAP output.
#
# Usage: converge.sh KDIR INITRD   (as root)
set -uo pipefail
top=$(cd "$(dirname "$0")/../../.." && pwd)
. "$top/scripts/lib.sh"
. "$top/scripts/vm.sh"
. "$top/scripts/tap.sh"
. "$top/scripts/token.sh"

kdir=${1:?usage: converge.sh KDIR INITRD}
initrd=${2:?usage: converge.sh KDIR INITRD}
[ "$(id -u)" = 0 ] || { echo "1..0 # SKIP needs root for network namespaces"; exit 0; }

SM=/sys/kernel/self_migrate
IL=/sys/kernel/inflate_loader
SRC=$HARNESS_NET.2 DST=$HARNESS_NET.3

# stat KEY: one value from the source's stats (at its address, wherever
# the guest runs).
stat() {
	vm_exec src "sed -n 's/^$1: //p' $SM/stats"
}

# wait_done [SECONDS]: prints the source's state once the migration ended.
wait_done() {
	local s t
	for ((t = 0; t < ${1:-120} * 2; t++)); do
		s=$(vm_exec src "cat $SM/status" 2>/dev/null) || { sleep 0.5; continue; }
		case "$s" in connecting | precopy | checkpoint | committing) sleep 0.5 ;; *) echo "$s"; return 0 ;; esac
	done
	echo "timeout($s)"
}

# policy: the dirtier's scheduling policy (field 41 of /proc/PID/stat).
policy() {
	vm_exec src "awk '{print \$41}' /proc/\$(cat /tmp/dirty.pid)/stat"
}

migrate() {
	vm_exec dst "echo 0.0.0.0:7000 > $IL/listen && echo $(provider_key) > $IL/key && echo 1 > $IL/enable" >/dev/null
	vm_exec src "echo $(mint_token "c$1" --vcpus 1) > $SM/token && echo 1 > $SM/verify && echo $1 > $SM/auto_converge && echo $DST:7000 > $SM/target && echo 1 > $SM/start" >/dev/null
}

tap_plan 9
harness_init "$kdir" "$initrd"
tap_diag "accelerator: $(vm_accel)"
vm_boot src "$SRC" 1
vm_boot dst "$DST" 1
if ! vm_wait_ready src || ! vm_wait_ready dst; then
	echo "Bail out! guests did not boot"
	exit 1
fi
vm_exec src 'selfmig-dirty 64 max </dev/null >/dev/null 2>&1 & echo $! > /tmp/dirty.pid' >/dev/null
sleep 1

# 1. auto_converge off: give up, cleanly.
migrate 0
state=$(wait_done)
tap_diag "auto_converge=0: state=$state errno=$(stat last_errno) last_error='$(stat last_error)' rounds=$(stat round) bandwidth=$(stat bandwidth_bytes_per_s) B/s dirty_rate=$(stat dirty_rate_pages_per_s) pages/s expected_downtime_us=$(stat expected_downtime_us)"
tap_result "auto_converge=0: pre-copy gives up with ETIMEDOUT and says why" \
	eval '[ "$state" = failed ] && [ "$(stat last_errno)" = 110 ] && [[ "$(stat last_error)" == *"does not converge"* ]]'
tap_result "auto_converge=0: the guest runs on, the dirtier untouched (SCHED_OTHER)" \
	eval 'vm_exec src "kill -0 \$(cat /tmp/dirty.pid)" >/dev/null && [ "$(policy)" = 0 ] && [ "$(stat throttled_threads)" = 0 ]'
tap_result "auto_converge=0: the loader drops the image and listens again" \
	eval '[ "$(vm_exec dst "cat $IL/status")" = listening ]'

# 2. auto_converge on: throttle, converge, migrate, verified.
pid_before=$(vm_exec src 'cat /tmp/dirty.pid')
migrate 1
tap_result "auto_converge=1: the source VM powers off after the commit" vm_wait_exit src 240
state=$(wait_done 60)
[ "$state" = migrated ] || vm_migration_diag src dst
tap_diag "auto_converge=1: state=$state rounds=$(stat round) precopy_end=$(stat precopy_end) throttle_share_bp=$(stat throttle_share_bp) throttled_threads=$(stat throttled_threads) bandwidth=$(stat bandwidth_bytes_per_s) B/s dirty_rate=$(stat dirty_rate_pages_per_s) pages/s downtime_us=$(stat downtime_us) staged=$(stat staged_pages)"
tap_result "auto_converge=1: migrated, with the dirtier throttled on the way" \
	eval '[ "$state" = migrated ] && [ "$(stat throttled_threads)" -ge 1 ] && [ "$(stat throttle_share_bp)" -gt 0 ]'
tap_result "the paging tracker and the loader's write watch missed nothing (verify=1 on both sides)" \
	eval '[ "$(stat tracker_used)" = paging ] && [ "$(stat tracker_misses)" = 0 ] && [ "$(stat unwritten_misses)" = 0 ] && grep -aq "verify: all .* pages match" "$HARNESS_DIR/dst.log"'
tap_result "on the target the dirtier runs on (same PID)" \
	eval '[ "$state" = migrated ] && vm_exec src "kill -0 $pid_before" >/dev/null'
tap_result "on the target the dirtier has its old scheduling back (SCHED_OTHER)" \
	eval '[ "$state" = migrated ] && [ "$(policy)" = 0 ]'
tap_result "the migrated guest can reach the client" \
	eval '[ "$state" = migrated ] && vm_exec src "ping -c 1 -W 2 $HARNESS_CLIENT_IP" >/dev/null'

