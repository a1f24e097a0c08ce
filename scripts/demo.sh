#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# `make demo`: bring up a source and a target guest on a private bridge and
# show the selfmig modules' status from inside each. (Migration itself is
# not implemented yet; when it lands, this migrates a live workload.)
set -euo pipefail
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/vm.sh"

[ "$(id -u)" = 0 ] || die "needs root (network namespace, taps)"
kdir=$(cat "$SELFMIG_TOP/build/kdir") || die "no kernel recorded; run make"
initrd="$SELFMIG_TOP/build/initramfs.cpio.gz"
"$SELFMIG_TOP/scripts/mkinitramfs.sh" "$kdir" "$initrd"

harness_init "$kdir" "$initrd"
say "namespace $HARNESS_NS, accelerator $(vm_accel); booting source ($HARNESS_NET.2) and target ($HARNESS_NET.3)"
start=$(date +%s)
vm_boot src "$HARNESS_NET.2"
vm_boot dst "$HARNESS_NET.3"
vm_wait_ready src || die "source guest did not boot"
vm_wait_ready dst || die "target guest did not boot"
say "both guests ready in $(($(date +%s) - start)) s"

for name in src dst; do
	echo
	echo "=== $name guest (${VM_IP[$name]}) ==="
	vm_exec "$name" 'echo "kernel:  $(uname -r), $(nproc) vCPU, $(grep MemTotal /proc/meminfo | tr -s " " | cut -d" " -f2-)"
		echo "modules: $(cut -d" " -f1 /proc/modules | tr "\n" " ")"
		echo "--- /sys/kernel/self_migrate/stats"; cat /sys/kernel/self_migrate/stats
		echo "--- /sys/kernel/inflate_loader/stats"; cat /sys/kernel/inflate_loader/stats'
done
echo
echo "Migration is not implemented yet: start returns EOPNOTSUPP (see Documentation/selfmig/)."
