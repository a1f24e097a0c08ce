#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# `make demo`: a guest running a workload (128 MiB of data, a counter, an
# echo session to a client) migrates itself to a fresh VM on a private
# bridge; prints what happened. SELFMIG_MEM sets the guests' RAM in MiB.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/vm.sh"
. "$(dirname "$0")/token.sh"

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

say "provider: selfmig token mint --key provider.key --ram-mib $mem --vcpus 1 --expires-in 3600"
token=$(mint_token demo --ram-mib "$mem" --vcpus 1)
"$TOKEN_CLI" token inspect "$HARNESS_DIR/demo.token" --key "$HARNESS_DIR/provider.key" 2>&1 | sed 's/^/  provider| /'
say "target: selfmig receive --listen 0.0.0.0:7000 --key /root/provider.key"
vm_exec dst "echo $(provider_key) > /root/provider.key && selfmig receive --listen 0.0.0.0:7000 --key /root/provider.key" | sed 's/^/  target| /'
say "source: selfmig migrate --to $DST:7000 --token /root/token.hex --verify"
t0=$(date +%s.%N)
# The CLI's session to us moves with the guest: its report comes from the
# target VM.
vm_exec src "echo $token > /root/token.hex && selfmig migrate --to $DST:7000 --token /root/token.hex --verify" > "$HARNESS_DIR/cli.out" || true
t1=$(date +%s.%N)
sed 's/^/  source| /' "$HARNESS_DIR/cli.out"
vm_wait_exit src 10 || die "the source VM is still running: $(vm_exec src "cat $SM/stats" | tr '\n' ' ')"
status=$(vm_exec src "cat $SM/status")
sleep 1
touch "$stop"
wait "$client" || true
after="pid $(vm_exec src 'cat /tmp/count.pid'), count $(vm_exec src 'cat /tmp/count'), md5 $(vm_exec src 'md5sum /tmp/data | cut -d" " -f1')"
st() { vm_exec src "sed -n 's/^$1: //p' $SM/stats"; }
phases=""
for p in checkpoint transfer target commit jump resume; do phases+="$p $(($(st downtime_${p}_us) / 1000)), "; done
echo
echo "=== selfmig demo report ==="
printf '%-28s %s\n' "source VM:" "powered off after the commit"
printf '%-28s %s\n' "guest status on the target:" "$status"
printf '%-28s %s\n' "workload before:" "$before"
printf '%-28s %s\n' "workload after:" "$after"
printf '%-28s %s\n' "pre-copy rounds:" "$(($(st round) + 1))"
printf '%-28s %s\n' "pages sent:" "$(st pages_sent), $(st staged_pages) of them at the checkpoint"
printf '%-28s %s\n' "bytes sent:" "$(st bytes_sent)"
printf '%-28s %s\n' "pages verified by target:" "$(st verify_pages)"
printf '%-28s %s\n' "downtime, guest's clocks:" "$(($(st downtime_us) / 1000)) ms (${phases%, } ms)"
printf '%-28s %s\n' "client echo session:" "$(cat "$HARNESS_DIR/client.json")"
printf '%-28s %s s\n' "CLI run, wall clock:" "$(echo "$t1 - $t0" | bc)"
printf '%-28s %s ms\n' "total, guest's clocks:" "$(st total_ms)"
