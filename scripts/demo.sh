#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# `make demo`: a guest running a workload (128 MiB of data, a counter, an
# echo session to a client) migrates itself to a fresh VM on a private
# bridge; prints what happened. SELFMIG_MEM sets the guests' RAM in MiB.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/vm.sh"

[ "$(id -u)" = 0 ] || die "needs root (network namespace, taps)"
kdir=$(cat "$SELFMIG_TOP/build/kdir") || die "no kernel recorded; run make"
initrd="$SELFMIG_TOP/build/initramfs.cpio.gz"
"$SELFMIG_TOP/scripts/mkinitramfs.sh" "$kdir" "$initrd"
SM=/sys/kernel/self_migrate
IL=/sys/kernel/inflate_loader
SRC=$HARNESS_NET.2 DST=$HARNESS_NET.3

harness_init "$kdir" "$initrd"
mem=${SELFMIG_MEM:-512}
say "namespace $HARNESS_NS, accelerator $(vm_accel); booting source VM ($SRC) and a fresh target VM ($DST), $mem MiB each"
vm_boot src "$SRC" 1 "$mem"
vm_boot dst "$DST" 1 "$mem"
vm_wait_ready src || die "source guest did not boot"
vm_wait_ready dst || die "target guest did not boot"

say "source: starting the workload (128 MiB of random data, a counter, an echo server)"
vm_exec src 'selfmig-workload 128' >/dev/null
stop="$HARNESS_DIR/client.stop"
ns python3 "$SELFMIG_TOP/tools/selftests/two_guest/echo_client.py" "$SRC" 6001 "$stop" > "$HARNESS_DIR/client.json" &
client=$!
sleep 1
before="pid $(vm_exec src 'cat /tmp/count.pid'), count $(vm_exec src 'cat /tmp/count'), md5 $(vm_exec src 'cat /tmp/data.md5')"

say "target: inflate_loader listening on $DST:7000"
vm_exec dst "echo 0.0.0.0:7000 > $IL/listen && echo 000102030405060708090a0b0c0d0e0f > $IL/key && echo 1 > $IL/enable" >/dev/null
say "source: echo $DST:7000 > $SM/target; echo 1 > $SM/start"
t0=$(date +%s.%N)
vm_exec src "echo 00112233445566778899aabbccddeeff > $SM/token && echo $DST:7000 > $SM/target && echo 1 > $SM/start" >/dev/null
for _ in $(seq 1 600); do kill -0 "${VM_PID[src]}" 2>/dev/null || break; sleep 0.1; done
t1=$(date +%s.%N)
kill -0 "${VM_PID[src]}" 2>/dev/null && die "the source VM is still running: $(vm_exec src "cat $SM/stats" | tr '\n' ' ')"
say "source VM has powered off; waiting for the guest at $SRC"
status=
for _ in $(seq 1 60); do status=$(vm_exec src "cat $SM/status" 2>/dev/null) && [ "$status" = migrated ] && break; sleep 0.5; done
sleep 1
touch "$stop"
wait "$client" || true
after="pid $(vm_exec src 'cat /tmp/count.pid'), count $(vm_exec src 'cat /tmp/count'), md5 $(vm_exec src 'md5sum /tmp/data | cut -d" " -f1')"
st() { vm_exec src "sed -n 's/^$1: //p' $SM/stats"; }
echo
echo "=== selfmig demo report ==="
printf '%-28s %s\n' "guest status on the target:" "$status"
printf '%-28s %s\n' "workload before:" "$before"
printf '%-28s %s\n' "workload after:" "$after"
printf '%-28s %s\n' "pre-copy rounds:" "$(($(st round) + 1))"
printf '%-28s %s\n' "pages sent:" "$(st pages_sent) ($(st zero_pages) as zero markers)"
printf '%-28s %s\n' "bytes sent:" "$(st bytes_sent)"
printf '%-28s %s\n' "client echo session:" "$(cat "$HARNESS_DIR/client.json")"
printf '%-28s %s\n' "downtime, guest clock:" "$(($(st downtime_us) / 1000)) ms (RTC-corrected, 1 s granularity)"
printf '%-28s %s s\n' "start to source power-off:" "$(echo "$t1 - $t0" | bc)"
printf '%-28s %s ms\n' "total, guest clock:" "$(st total_ms)"
