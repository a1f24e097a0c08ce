#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Two-guest harness bring-up: source and target guests of the same shape on a
# private bridge, each with both modules loaded, DMA-API virtio-net and
# swiotlb=force, reachable from each other and from the client endpoint in
# the namespace; teardown leaves nothing behind. TAP output.
#
# Usage: bringup.sh KDIR INITRD   (as root; SELFMIG_SMP sets vCPUs, default 1)
set -uo pipefail
top=$(cd "$(dirname "$0")/../../.." && pwd)
. "$top/scripts/lib.sh"
. "$top/scripts/vm.sh"
. "$top/scripts/tap.sh"

kdir=${1:?usage: bringup.sh KDIR INITRD}
initrd=${2:?usage: bringup.sh KDIR INITRD}
smp=${SELFMIG_SMP:-1}

[ "$(id -u)" = 0 ] || { echo "1..0 # SKIP needs root for network namespaces"; exit 0; }

guest_ok() {
	# Both modules' interfaces present.
	vm_exec "$1" 'test -d /sys/kernel/self_migrate && test -c /dev/self_migrate && test -d /sys/kernel/inflate_loader' >/dev/null
}

dma_ok() {
	# swiotlb forced, and the NIC negotiated VIRTIO_F_ACCESS_PLATFORM (bit 33),
	# so its DMA goes through the DMA API and bounce buffers.
	vm_exec "$1" 'grep -qw swiotlb=force /proc/cmdline &&
		dmesg | grep -q "software IO TLB" &&
		[ "$(cut -c34 /sys/bus/virtio/devices/virtio0/features)" = 1 ]' >/dev/null
}

shape() {
	vm_exec "$1" 'nproc; grep MemTotal /proc/meminfo; uname -r; cat /sys/kernel/self_migrate/version'
}

same_shape() {
	local a b
	a=$(shape src) && b=$(shape dst) && [ "$a" = "$b" ] && tap_diag "shape: $(echo $a)"
}

teardown_clean() {
	local ns=$HARNESS_NS dir=$HARNESS_DIR
	# Every QEMU of this harness names the state directory on its command line.
	pgrep -f "$dir/" >/dev/null || { tap_diag "no QEMU of this harness running before teardown?"; return 1; }
	harness_teardown
	if ip netns list | grep -qw "$ns"; then
		tap_diag "namespace $ns still exists"
		return 1
	fi
	if pgrep -f "$dir/" >/dev/null; then
		tap_diag "QEMU processes survived: $(pgrep -f "$dir/" | tr '\n' ' ')"
		return 1
	fi
}

tap_plan 12
harness_init "$kdir" "$initrd"
tap_diag "accelerator: $(vm_accel), vCPUs per guest: $smp, namespace: $HARNESS_NS"
start=$(date +%s.%N)
vm_boot src "$HARNESS_NET.2" "$smp"
vm_boot dst "$HARNESS_NET.3" "$smp"
tap_result "source guest boots and its agent answers" vm_wait_ready src
tap_result "target guest boots and its agent answers" vm_wait_ready dst
tap_diag "both guests ready after $(echo "$(date +%s.%N) - $start" | bc) s"
tap_result "source guest has both modules loaded" guest_ok src
tap_result "target guest has both modules loaded" guest_ok dst
tap_result "source guest: swiotlb=force and DMA-API virtio-net" dma_ok src
tap_result "target guest: swiotlb=force and DMA-API virtio-net" dma_ok dst
tap_result "client reaches the source guest" quiet ns ping -c 1 -W 2 "$HARNESS_NET.2"
tap_result "client reaches the target guest" quiet ns ping -c 1 -W 2 "$HARNESS_NET.3"
tap_result "source reaches target and client" quiet vm_exec src "ping -c 1 -W 2 $HARNESS_NET.3 && ping -c 1 -W 2 $HARNESS_CLIENT_IP"
tap_result "target reaches source and client" quiet vm_exec dst "ping -c 1 -W 2 $HARNESS_NET.2 && ping -c 1 -W 2 $HARNESS_CLIENT_IP"
tap_result "source and target have the same shape" same_shape
tap_result "teardown removes the namespace and every guest" teardown_clean
[ "$TAP_FAIL" = 0 ]
