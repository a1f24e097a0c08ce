#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Build the test guests' initramfs: busybox-static, scripts/guest/init, the
# two selfmig modules, the selfmig CLI (static), selfmig-workload,
# selfmig-uevent-log, selfmig-dirty (the benchmark's dirtier),
# selfmig-mapwriter (writes through a shared mapping it keeps unmapping)
# and selfmig-udpecho (the benchmark's outside downtime probe).
# Usage: mkinitramfs.sh KDIR OUT
#
# The archive is made with the kernel's own usr/gen_init_cpio, so device
# nodes (/dev/console) need no root and the output is reproducible.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

kdir=${1:?usage: mkinitramfs.sh KDIR OUT}
out=${2:?usage: mkinitramfs.sh KDIR OUT}
gen="$kdir/usr/gen_init_cpio"
[ -x "$gen" ] || die "$gen missing (kernel not built with BLK_DEV_INITRD?)"
busybox=/bin/busybox
[ -x "$busybox" ] || die "$busybox missing; run scripts/setup.sh"
if command -v file >/dev/null && ! file -L "$busybox" | grep -q "statically linked"; then
	die "$busybox is not static: install busybox-static"
fi

cli=$("$SELFMIG_TOP/scripts/build-cli.sh")
list=$(mktemp)
dirty=$(mktemp)
mapwriter=$(mktemp)
udpecho=$(mktemp)
trap 'rm -f "$list" "$dirty" "$mapwriter" "$udpecho"' EXIT
cc -static -O2 -Wall -o "$dirty" "$SELFMIG_TOP/scripts/guest/dirty.c" ||
	die "cannot build scripts/guest/dirty.c statically (libc6-dev?)"
cc -static -O2 -Wall -o "$mapwriter" "$SELFMIG_TOP/scripts/guest/mapwriter.c" ||
	die "cannot build scripts/guest/mapwriter.c statically (libc6-dev?)"
cc -static -O2 -Wall -o "$udpecho" "$SELFMIG_TOP/scripts/guest/udpecho.c" ||
	die "cannot build scripts/guest/udpecho.c statically (libc6-dev?)"
{
	echo "dir /dev 0755 0 0"
	echo "nod /dev/console 0600 0 0 c 5 1"
	echo "nod /dev/null 0666 0 0 c 1 3"
	for d in /bin /sbin /proc /sys /tmp /run /root /lib /lib/modules /lib/modules/selfmig /usr /usr/bin /usr/sbin; do
		echo "dir $d 0755 0 0"
	done
	echo "file /bin/busybox $busybox 0755 0 0"
	echo "slink /bin/sh busybox 0777 0 0"
	echo "file /init $SELFMIG_TOP/scripts/guest/init 0755 0 0"
	echo "file /bin/selfmig $cli 0755 0 0"
	echo "file /bin/selfmig-workload $SELFMIG_TOP/scripts/guest/workload 0755 0 0"
	echo "file /bin/selfmig-uevent-log $SELFMIG_TOP/scripts/guest/uevent-log 0755 0 0"
	echo "file /bin/selfmig-dirty $dirty 0755 0 0"
	echo "file /bin/selfmig-mapwriter $mapwriter 0755 0 0"
	echo "file /bin/selfmig-udpecho $udpecho 0755 0 0"
	for m in self_migrate inflate_loader; do
		ko="$SELFMIG_TOP/$m/$m.ko"
		[ -f "$ko" ] || die "$ko missing; run make"
		echo "file /lib/modules/selfmig/$m.ko $ko 0644 0 0"
	done
} > "$list"
"$gen" "$list" | gzip -n -1 > "$out.tmp"
mv "$out.tmp" "$out"
