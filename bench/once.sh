#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# One selfmig migration between two fresh guests, for the ad-hoc
# measurements Documentation/selfmig/design.rst quotes: prints the resumed
# guest's downtime lines and the source's checkpoint line. Not part of
# `make check` or `make bench`; run `make` first (it needs the built
# modules and initramfs).
#
# Usage: bench/once.sh   (as root; settings through the environment)
#   MIB=1024          guest RAM
#   WL=idle           idle or dirty50 (a task dirtying 50 MB/s)
#   VERIFY=0          1 for verify mode
#   PROBES=0          1 for the benchmark's conditions: its workload and
#                     echo servers in the guest, 1 ms UDP and TCP echo
#                     streams from the namespace
#   INITRD=...        another initramfs (A/B runs of two builds)
set -uo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
. "$top/scripts/lib.sh"
. "$top/scripts/vm.sh"
. "$top/scripts/tap.sh"
. "$top/scripts/token.sh"

kdir=$(cat "$top/build/kdir") || die "no kernel recorded; run make"
initrd=${INITRD:-$top/build/initramfs.cpio.gz}
mib=${MIB:-1024}
SM=/sys/kernel/self_migrate
IL=/sys/kernel/inflate_loader
SRC=$HARNESS_NET.2
DST=$HARNESS_NET.3

harness_init "$kdir" "$initrd"
trap harness_teardown EXIT
vm_boot src "$SRC" 1 "$mib"
vm_boot dst "$DST" 1 "$mib"
vm_wait_ready src && vm_wait_ready dst || die "a guest did not boot"
case ${WL:-idle} in
idle) ;;
dirty50) vm_exec src 'selfmig-dirty 256 50 </dev/null >/dev/null 2>&1 &' >/dev/null ;;
*) die "WL must be idle or dirty50" ;;
esac
if [ "${PROBES:-0}" = 1 ]; then
	vm_exec src 'selfmig-workload 8; selfmig-udpecho 6003 </dev/null >/dev/null 2>&1 &' >/dev/null
	ns python3 "$top/tools/selftests/two_guest/echo_client.py" "$SRC" 6001 \
		"$HARNESS_DIR/client.stop" 0.001 > "$HARNESS_DIR/client.json" &
	ns python3 "$top/bench/udp_probe.py" "$SRC" 6003 "$HARNESS_DIR/client.stop" 0.001 \
		> "$HARNESS_DIR/udp.json" &
fi
vm_exec dst "echo 0.0.0.0:7000 > $IL/listen && echo $(provider_key) > $IL/key && echo 1 > $IL/enable" >/dev/null
sleep 1
vm_exec src "echo $(mint_token once --ram-mib "$mib" --vcpus 1) > $SM/token && echo ${VERIFY:-0} > $SM/verify &&
	echo $DST:7000 > $SM/target && echo 1 > $SM/start" >/dev/null
vm_wait_exit src 120 || say "the source is still running"
for _ in $(seq 60); do
	st=$(vm_exec src "cat $SM/status" 2>/dev/null) && [ "$st" = migrated ] && break
	sleep 0.5
done
touch "$HARNESS_DIR/client.stop"
echo "status: ${st:-unknown}"
grep -ah "self_migrate: \(resumed on the target\|resume: trampoline\)" "$HARNESS_DIR/dst.log" | sed 's/^.*self_migrate: //'
grep -ah "self_migrate: \(checkpoint: CPUs\|sent the rest\|round [0-9]*:\)" "$HARNESS_DIR/src.log" | sed 's/^.*self_migrate: //'
grep -ah "inflate_loader: moved this module's code" "$HARNESS_DIR/dst.log" | sed 's/^.*inflate_loader: //'
[ "${PROBES:-0}" = 1 ] && { sleep 1; echo "udp probe: $(cat "$HARNESS_DIR/udp.json" 2>/dev/null)"; }
[ "$st" = migrated ]
