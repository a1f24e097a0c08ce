#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Every validation path of /sys/kernel/inflate_loader/.

MODNAME=inflate_loader
. "$(dirname "$0")/lib.sh"
D=/sys/kernel/inflate_loader
KEY16=000102030405060708090a0b0c0d0e0f

ktap_print_header
load_module inflate_loader
ktap_set_plan 31

expect_read "status is idle after load" $D/status idle
expect_read "listen unset after load" $D/listen none
expect_unreadable "key is write-only" $D/key

expect_write "enable without listen address" $D/enable 1 EDESTADDRREQ "enable: no target set"
expect_write "listen: any address" $D/listen "0.0.0.0:7000" OK
expect_read "listen reads back" $D/listen 0.0.0.0:7000
expect_write "listen: no port" $D/listen "0.0.0.0" EINVAL "listen: address must be IPv4"
expect_write "listen: port 0" $D/listen "10.77.0.3:0" ERANGE "listen: port must be 1..65535"
expect_write "listen: broadcast" $D/listen "255.255.255.255:7000" EADDRNOTAVAIL "listen: address is unspecified"
expect_write "listen: multicast" $D/listen "239.1.2.3:7000" EADDRNOTAVAIL "listen: address is unspecified"
expect_write "listen: specific address" $D/listen "10.77.0.3:7000" OK

expect_write "enable without key" $D/enable 1 ENOKEY "enable: no provider key set"
expect_write "key: 15 bytes" $D/key "${KEY16:2}" EINVAL "key: key must be 16, 24 or 32 bytes"
expect_write "key: not hex" $D/key "zz${KEY16:2}" EINVAL "key: key must be 16, 24 or 32 bytes"
expect_write "key: 33 bytes" $D/key "${KEY16}${KEY16}00" EINVAL "key: key must be 16, 24 or 32 bytes"
expect_write "key: 16 bytes" $D/key "$KEY16" OK
expect_write "key: 32 bytes" $D/key "$KEY16$KEY16" OK
if grep -qx "key_set: 1" $D/stats; then ktap_test_pass "stats shows the key is set"; else ktap_test_fail "stats shows the key is set"; fi

expect_write "enable: junk" $D/enable "maybe" EINVAL "enable: expected 0 or 1"
expect_write "disable while idle" $D/enable 0 EINVAL "enable: not listening"
expect_write "listen on any address" $D/listen "0.0.0.0:7000" OK
expect_write "enable with listen address and key" $D/enable 1 STARTED
# virtme-ng's root file system is 9p, whose virtio driver has no freeze and
# restore: the loader must not rehearse the image's resume on it.
if dmesg | grep -q "inflate_loader: not rehearsing the image's resume: the driver of virtio device virtio[0-9]* (9pnet_virtio) cannot freeze and restore it" &&
	dmesg | grep -q "inflate_loader: enable: rehearsing the image's resume failed: .*listening anyway"; then
	ktap_test_pass "enable: no rehearsal with a 9p device, which is named"
else
	ktap_test_fail "enable: no rehearsal with a 9p device, which is named"
fi
if grep -qx "rehearsal_us: 0" $D/stats; then ktap_test_pass "stats: rehearsal_us 0"; else ktap_test_fail "stats: rehearsal_us 0"; fi
expect_read "status listening" $D/status listening
expect_write "enable while listening" $D/enable 1 EBUSY "enable: a migration is already running"
expect_write "listen while listening" $D/listen "0.0.0.0:7001" EBUSY "listen: a migration is already running"
expect_write "disable" $D/enable 0 OK
expect_read "status idle after disable" $D/status idle
expect_write "enable again" $D/enable 1 STARTED

if rmmod inflate_loader && [ ! -e $D ]; then
	ktap_test_pass "rmmod while listening stops the receiver and removes /sys/kernel/inflate_loader"
else
	ktap_test_fail "rmmod while listening stops the receiver and removes /sys/kernel/inflate_loader"
fi
ktap_finished
