#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Runs the ioctl ABI test (selfmig_ioctl) with self_migrate loaded.

MODNAME=self_migrate
. "$(dirname "$0")/lib.sh"

bin="${OUTPUT:-$(dirname "$0")}/selfmig_ioctl"
[ -x "$bin" ] || { ktap_skip_all "$bin not built"; exit 4; }
load_module self_migrate
"$bin"
rc=$?
rmmod self_migrate
exit $rc
