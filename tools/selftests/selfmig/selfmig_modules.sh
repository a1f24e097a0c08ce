#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Both modules load, expose their interfaces, unload cleanly, and survive
# repeated load/unload cycles (including with the device held open).

MODNAME=self_migrate
. "$(dirname "$0")/lib.sh"

ktap_print_header
ktap_set_plan 8

ok=1
for i in 1 2 3; do
	load_module self_migrate
	load_module inflate_loader
	[ -d /sys/kernel/self_migrate ] && [ -c /dev/self_migrate ] && [ -d /sys/kernel/inflate_loader ] || ok=0
	rmmod inflate_loader && rmmod self_migrate || ok=0
done
if [ $ok = 1 ]; then ktap_test_pass "three load/unload cycles"; else ktap_test_fail "three load/unload cycles"; fi

load_module self_migrate
attrs=$(ls /sys/kernel/self_migrate | sort | tr '\n' ' ')
want="abort auto_converge compress max_downtime_ms rehearse start stats status target token tracker verify version "
if [ "$attrs" = "$want" ]; then ktap_test_pass "self_migrate attributes"; else ktap_print_msg "got: $attrs"; ktap_test_fail "self_migrate attributes"; fi
perm=$(stat -c %a /dev/self_migrate)
if [ "$perm" = 600 ]; then ktap_test_pass "/dev/self_migrate is mode 0600"; else ktap_test_fail "/dev/self_migrate is mode 0600 (got $perm)"; fi
if dmesg | grep -q "self_migrate: loaded"; then ktap_test_pass "load message"; else ktap_test_fail "load message"; fi

# An open file pins the module: rmmod must refuse while /dev/self_migrate is open.
exec 3</dev/self_migrate
if rmmod self_migrate 2>/dev/null; then ktap_test_fail "rmmod refused while the device is open"; else ktap_test_pass "rmmod refused while the device is open"; fi
exec 3<&-
if rmmod self_migrate; then ktap_test_pass "rmmod succeeds after close"; else ktap_test_fail "rmmod succeeds after close"; fi

load_module inflate_loader
attrs=$(ls /sys/kernel/inflate_loader | sort | tr '\n' ' ')
want="enable key listen stats status "
if [ "$attrs" = "$want" ]; then ktap_test_pass "inflate_loader attributes"; else ktap_print_msg "got: $attrs"; ktap_test_fail "inflate_loader attributes"; fi
if rmmod inflate_loader; then ktap_test_pass "inflate_loader unloads"; else ktap_test_fail "inflate_loader unloads"; fi
ktap_finished
