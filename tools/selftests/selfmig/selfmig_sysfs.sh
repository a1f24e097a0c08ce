#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Every validation path of /sys/kernel/self_migrate/.

MODNAME=self_migrate
. "$(dirname "$0")/lib.sh"
D=/sys/kernel/self_migrate

ktap_print_header
load_module self_migrate
ktap_set_plan 58

expect_read "status is idle after load" $D/status idle
expect_read "target unset after load" $D/target none
expect_read "max_downtime_ms defaults to 50" $D/max_downtime_ms 50
expect_read "verify defaults to 0" $D/verify 0
expect_read "tracker defaults to paging" $D/tracker paging
expect_unreadable "token is write-only" $D/token

expect_write "start without a target" $D/start 1 EDESTADDRREQ "start: no target set"
expect_write "target: valid endpoint" $D/target "10.77.0.3:7000" OK
expect_read "target reads back" $D/target 10.77.0.3:7000
expect_write "target: no port" $D/target "10.77.0.3" EINVAL "target: address must be IPv4"
expect_write "target: junk" $D/target "hello world" EINVAL "target: address must be IPv4"
expect_write "target: octet > 255" $D/target "10.77.0.300:7000" EINVAL "target: address must be IPv4"
expect_write "target: five octets" $D/target "10.77.0.3.1:7000" EINVAL "target: address must be IPv4"
expect_write "target: port 0" $D/target "10.77.0.3:0" ERANGE "target: port must be 1..65535"
expect_write "target: port 65536" $D/target "10.77.0.3:65536" ERANGE "target: port must be 1..65535"
expect_write "target: unspecified address" $D/target "0.0.0.0:7000" EADDRNOTAVAIL "target: address is unspecified"
expect_write "target: loopback" $D/target "127.0.0.1:7000" EADDRNOTAVAIL "target: address is unspecified"
expect_write "target: multicast" $D/target "224.0.0.1:7000" EADDRNOTAVAIL "target: address is unspecified"
expect_write "target: broadcast" $D/target "255.255.255.255:7000" EADDRNOTAVAIL "target: address is unspecified"
expect_read "a refused target keeps the old one" $D/target 10.77.0.3:7000

expect_write "start without a token" $D/start 1 ENOKEY "start: no token set"
expect_write "token: not hex" $D/token "xyz0" EINVAL "token: token must be non-empty hexadecimal"
expect_write "token: odd length" $D/token "abc" EINVAL "token: token must be non-empty hexadecimal"
expect_write "token: empty line" $D/token $'\n' EINVAL "token: token must be non-empty hexadecimal"
expect_write "token: 1025 bytes" $D/token "$(printf '%02x' $(seq 0 1024 | sed 's/.*/1/'))" E2BIG "token: token longer than 1024 bytes"
expect_write "token: 1024 bytes" $D/token "$(printf 'ab%.0s' $(seq 1 1024))" OK
expect_write "token: valid" $D/token "00112233445566778899aabbccddeeff" OK

expect_write "max_downtime_ms: 0" $D/max_downtime_ms 0 ERANGE "max_downtime_ms: number out of range"
expect_write "max_downtime_ms: 60001" $D/max_downtime_ms 60001 ERANGE "max_downtime_ms: number out of range"
expect_write "max_downtime_ms: not a number" $D/max_downtime_ms "-5" EINVAL "max_downtime_ms: not a decimal number"
expect_write "max_downtime_ms: 100" $D/max_downtime_ms 100 OK
expect_write "verify: 2" $D/verify 2 EINVAL "verify: expected 0 or 1"
expect_write "verify: 1" $D/verify 1 OK
expect_write "tracker: unknown" $D/tracker "magic" EINVAL "tracker: not one of the allowed values"
# virtme-ng's virtio devices do not use the DMA API (no iommu_platform=on):
# the paging tracker would not see their writes.
expect_write "start: paging tracker, a virtio device bypasses the DMA API" $D/start 1 EOPNOTSUPP \
	"start: the paging tracker cannot see DMA of device 0000:00:01.0 (virtio-pci; virtio virtio0 9pnet_virtio): it writes memory outside the DMA API"
expect_read "status still idle after the refused start" $D/status idle
expect_write "tracker: hash" $D/tracker hash OK
expect_read "auto_converge defaults to 1" $D/auto_converge 1
expect_write "auto_converge: 2" $D/auto_converge 2 EINVAL "auto_converge: expected 0 or 1"
expect_write "auto_converge: 0" $D/auto_converge 0 OK
expect_read "auto_converge reads back 0" $D/auto_converge 0
expect_read "compress defaults to 1" $D/compress 1
expect_write "compress: yes" $D/compress yes EINVAL "compress: expected 0 or 1"
expect_write "compress: 0" $D/compress 0 OK
expect_read "compress reads back 0" $D/compress 0
expect_read "rehearse defaults to 1" $D/rehearse 1
expect_write "rehearse: 01" $D/rehearse 01 EINVAL "rehearse: expected 0 or 1"
expect_write "rehearse: 0" $D/rehearse 0 OK
expect_read "rehearse reads back 0" $D/rehearse 0
expect_write "rehearse: 1" $D/rehearse 1 OK

expect_write "start: value 0" $D/start 0 EINVAL "start: expected 0 or 1"
expect_write "abort while idle" $D/abort 1 EINVAL "abort: no migration is running"
expect_read "status still idle after refused starts" $D/status idle

# This guest has no route to the target: a valid start runs the migration
# thread, which fails to connect; the guest carries on.
expect_write "start with target and token" $D/start 1 STARTED
for _ in $(seq 1 100); do
	case "$(cat $D/status)" in failed | aborted) break ;; esac
	sleep 0.1
done
expect_read "unreachable target: status failed" $D/status failed
if grep -q "^last_error: cannot connect to the target" $D/stats &&
	! grep -q "^last_errno: 0" $D/stats; then
	ktap_test_pass "unreachable target: stats name the reason and errno"
else
	ktap_print_msg "$(grep last_ $D/stats | tr '\n' ' ')"
	ktap_test_fail "unreachable target: stats name the reason and errno"
fi
expect_write "abort after failure" $D/abort 1 EINVAL "abort: no migration is running"

if rmmod self_migrate && [ ! -e $D ] && [ ! -e /dev/self_migrate ]; then
	ktap_test_pass "rmmod removes /sys/kernel/self_migrate and /dev/self_migrate"
else
	ktap_test_fail "rmmod removes /sys/kernel/self_migrate and /dev/self_migrate"
fi
ktap_finished
