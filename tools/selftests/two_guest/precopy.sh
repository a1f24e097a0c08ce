#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Every failure before commit: no listener, a target of another shape,
# abort during round 0, a target dying mid-stream (refusals of tokens,
# payment and damaged streams: admission.sh). In each the source keeps
# running with a status that says what happened; afterwards the loader that
# saw the abort takes the next migration, which completes (with the
# configured vCPUs: SELFMIG_SMP, default 2). TAP output.
#
# Usage: precopy.sh KDIR INITRD   (as root)
set -uo pipefail
top=$(cd "$(dirname "$0")/../../.." && pwd)
. "$top/scripts/lib.sh"
. "$top/scripts/vm.sh"
. "$top/scripts/tap.sh"
. "$top/scripts/token.sh"

kdir=${1:?usage: precopy.sh KDIR INITRD}
initrd=${2:?usage: precopy.sh KDIR INITRD}
[ "$(id -u)" = 0 ] || { echo "1..0 # SKIP needs root for network namespaces"; exit 0; }

SM=/sys/kernel/self_migrate
IL=/sys/kernel/inflate_loader
SRC=$HARNESS_NET.2 DST=$HARNESS_NET.3 ODD=$HARNESS_NET.4 DST2=$HARNESS_NET.5

# stat GUEST MODULE_DIR KEY: one value from a stats file.
stat() {
	vm_exec "$1" "sed -n 's/^$3: //p' $2/stats"
}

# wait_done GUEST [SECONDS]: wait until the source's migration has ended;
# prints the final state.
wait_done() {
	local s t
	for ((t = 0; t < ${2:-60} * 5; t++)); do
		s=$(vm_exec "$1" "cat $SM/status") || return 1
		case "$s" in connecting | precopy | checkpoint | committing) sleep 0.2 ;; *) echo "$s"; return 0 ;; esac
	done
	echo "timeout($s)"
}

# ended GUEST STATE ERRNO REASON: the last migration ended as described.
ended() {
	local state errno reason
	state=$(wait_done "$1") errno=$(stat "$1" $SM last_errno) reason=$(stat "$1" $SM last_error)
	tap_diag "$1: state=$state errno=$errno last_error='$reason' pages_sent=$(stat "$1" $SM pages_sent)"
	[ "$state" = "$2" ] && [[ " $3 " == *" $errno "* ]] && [[ "$reason" == *"$4"* ]]
}

# alive GUEST: the guest answers and its workload marker is intact.
alive() {
	vm_exec "$1" "test -f /tmp/alive && [ \$(cat /tmp/alive) = yes ] && cat $SM/status" >/dev/null
}

loader_up() {
	vm_exec "$1" "echo 0.0.0.0:7000 > $IL/listen && echo $(provider_key) > $IL/key && echo 1 > $IL/enable && [ \$(cat $IL/status) = listening ]" >/dev/null
}

# start_to ADDRESS: a migration to ADDRESS:7000 with a fresh token.
start_to() {
	vm_exec src "echo $(mint_token "t$RANDOM" --vcpus "$smp") > $SM/token && echo $1:7000 > $SM/target && echo 1 > $SM/start" >/dev/null
}

# loader_state GUEST ADMITTED: the loader listens again and has admitted
# ADMITTED migrations so far.
loader_state() {
	local admitted status
	admitted=$(stat "$1" $IL admitted) status=$(vm_exec "$1" "cat $IL/status")
	tap_diag "$1 loader: status=$status admitted=$admitted refused=$(stat "$1" $IL refused) last_error='$(stat "$1" $IL last_error)'"
	[ "$status" = listening ] && [ "$admitted" = "$2" ]
}

tap_plan 15
harness_init "$kdir" "$initrd"
tap_diag "accelerator: $(vm_accel)"
smp=${SELFMIG_SMP:-2}
vm_boot src "$SRC" "$smp"
vm_boot dst "$DST" "$smp"
VM_NIC_IOMMU=off vm_boot odd "$ODD" "$smp" 640
vm_boot dst2 "$DST2" "$smp"
up=1
for g in src dst odd dst2; do vm_wait_ready "$g" || up=0; done
if [ $up = 0 ]; then
	echo "Bail out! guests did not boot"
	exit 1
fi
vm_exec src "echo yes > /tmp/alive" >/dev/null
vm_exec src 'uevent /bin/selfmig-uevent-log </dev/null >/dev/null 2>&1 &' >/dev/null

# 0. The paging tracker sees device writes only through the DMA API: odd's
# NIC bypasses it (no iommu_platform=on), so odd may not start with it.
dma_refused() {
	local out
	out=$(vm_exec odd "echo $(mint_token dma --vcpus "$smp") > $SM/token && echo $DST:7000 > $SM/target && { echo 1 > $SM/start; } 2>&1; dmesg | grep 'paging tracker cannot see' | tail -n 1; cat $SM/status")
	tap_diag "$(echo "$out" | tr '\n' '|')"
	[[ "$out" == *"upported"* && "$out" == *"virtio_net): it writes memory outside the DMA API"* && "$out" == *idle ]]
}
tap_result "paging tracker: a guest whose NIC bypasses the DMA API is refused, naming the NIC" dma_refused

# 1. Nothing listens at the target.
start_to "$DST"
tap_result "no listener: source fails with ECONNREFUSED" ended src failed 111 "cannot connect to the target"
tap_result "no listener: source keeps running" alive src
tap_result "no listener: a uevent says so (failed, errno 111)" \
	eval 'vm_exec src "cat /tmp/uevents" | grep -q "SELFMIG_ERRNO=111 SELFMIG_STATE=failed"'


# 2. A target of another shape (640 MiB instead of 512).
loader_up odd
start_to "$ODD"
tap_result "shape mismatch: source fails with EREMOTEIO and the reason" ended src failed 121 "RAM map differs"
tap_result "shape mismatch: the loader refused it and names the field" \
	eval '[ "$(stat odd $IL refused)" = 1 ] && [ "$(stat odd $IL last_error)" = "RAM map differs" ]'
tap_result "shape mismatch: source keeps running" alive src

loader_up dst

# 3. Abort during round 0 (256 MiB of random data make round 0 last): the
#    abort is written once the first thousand pages are out.
vm_exec src "dd if=/dev/urandom of=/tmp/fill bs=1M count=256 2>/dev/null" >/dev/null
vm_exec src "echo $(mint_token abort --vcpus "$smp") > $SM/token && echo $DST:7000 > $SM/target && echo 1 > $SM/start &&
	while [ \$(sed -n 's/^pages_sent: //p' $SM/stats) -lt 1000 ] && [ \$(cat $SM/status) != failed ]; do :; done &&
	echo 1 > $SM/abort" >/dev/null
tap_result "abort during round 0: source reports aborted with ECANCELED" ended src aborted 125 "aborted by the user"
tap_result "abort: source keeps running" alive src
tap_result "abort: the loader drops the image and listens again" loader_state dst 1

# 4. A second target dies mid-stream: killed once pages flow.
loader_up dst2
start_to "$DST2"
for _ in $(seq 1 100); do
	[ "$(stat src $SM pages_sent)" -gt 0 ] 2>/dev/null && break
	sleep 0.1
done
vm_kill dst2
tap_result "target killed mid-stream: source fails with a network error" \
	ended src failed "104 110 32" "the peer failed"
tap_result "target killed: source keeps running" alive src

# 5. After all that, the first target takes the next migration (with
#    verify=1), and it completes: the source powers off and the guest
#    answers from the target.
vm_exec src "echo 1 > $SM/verify" >/dev/null
start_to "$DST"
tap_result "after the failures the loader takes the next migration: the source VM powers off" vm_wait_exit src
answers() {
	local s t
	for ((t = 0; t < 60; t++)); do
		s=$(vm_exec src "cat $SM/status" 2>/dev/null) && [ "$s" = migrated ] && break
		sleep 0.5
	done
	tap_diag "checkpoint attempts $(stat src $SM checkpoint_attempts), rounds $(stat src $SM round)"
	[ "$s" = migrated ] && alive src
}
tap_result "the guest answers from the target, status migrated, workload marker intact" answers
cpus_back() {
	[ "$smp" = 1 ] || [ "$(vm_exec src 'cat /sys/devices/system/cpu/online')" = "0-$((smp - 1))" ]
}
tap_result "the migrated guest has all its CPUs online" cpus_back
