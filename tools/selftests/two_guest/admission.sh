#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Admission and payment against a live loader: a forged token, an expired
# one, a grant smaller than the guest, a source that pays too little, a
# replayed token, a bit flipped in transit (in a page batch, and after the
# checkpoint in the CPU context) and a stream cut mid-record are each
# refused with their own reason; after every one the source guest is
# still running with its workload intact and the target's loader listens
# again; finally a valid token migrates the guest to that same target.
# The harness plays the provider (scripts/token.sh). TAP output.
#
# Usage: admission.sh KDIR INITRD   (as root; SELFMIG_SMP vCPUs, default 1)
set -uo pipefail
top=$(cd "$(dirname "$0")/../../.." && pwd)
. "$top/scripts/lib.sh"
. "$top/scripts/vm.sh"
. "$top/scripts/tap.sh"
. "$top/scripts/token.sh"

kdir=${1:?usage: admission.sh KDIR INITRD}
initrd=${2:?usage: admission.sh KDIR INITRD}
[ "$(id -u)" = 0 ] || { echo "1..0 # SKIP needs root for network namespaces"; exit 0; }
smp=${SELFMIG_SMP:-1}
SM=/sys/kernel/self_migrate
IL=/sys/kernel/inflate_loader
SRC=$HARNESS_NET.2 DST=$HARNESS_NET.3
PROXY_PORT=7100

stat() {
	vm_exec "$1" "sed -n 's/^$3: //p' $2/stats"
}

# wait_done: the source's migration has ended; prints the final state.
wait_done() {
	local s t
	for ((t = 0; t < 300; t++)); do
		s=$(vm_exec src "cat $SM/status") || return 1
		case "$s" in connecting | precopy | checkpoint | committing) sleep 0.2 ;; *) echo "$s"; return 0 ;; esac
	done
	echo "timeout($s)"
}

# attempt TOKEN_HEX [ADDRESS]: a migration with this token bundle to the
# loader (or to ADDRESS:port, a proxy).
attempt() {
	vm_exec src "echo $1 > $SM/token && echo ${2:-$DST:7000} > $SM/target && echo 1 > $SM/start" >/dev/null
}

# refused REASON [ERRNOS]: the source's last migration failed with REASON
# (the target's words) and one of ERRNOS (default EREMOTEIO); the source
# still runs its workload; the loader listens again and says REASON too.
refused() {
	local state errno reason loader why
	state=$(wait_done) errno=$(stat src $SM last_errno) reason=$(stat src $SM last_error)
	loader=$(vm_exec dst "cat $IL/status") why=$(stat dst $IL last_error)
	tap_diag "source: $state errno=$errno '$reason' pages_sent=$(stat src $SM pages_sent); loader: $loader '$why'"
	[ "$state" = failed ] && [[ " ${2:-121} " == *" $errno "* ]] && [[ "$reason" == *"$1"* ]] &&
		[ "$loader" = listening ] && [[ "$why" == *"${3:-$1}"* ]] && workload_intact
}

# workload_intact: the counter still counts and the data checksum holds.
workload_intact() {
	local c1 c2
	c1=$(vm_exec src 'cat /tmp/count') && sleep 1.2 && c2=$(vm_exec src 'cat /tmp/count') &&
		[ "$c2" -gt "$c1" ] && [ "$(vm_exec src 'md5sum /tmp/data | cut -d" " -f1')" = "$sum" ]
}

# hexpatch HEX OFFSET BYTES: HEX with the bytes at OFFSET replaced.
hexpatch() {
	local hex=$1 off=$(($2 * 2)) new=$3
	echo "${hex:0:off}$new${hex:off+${#new}}"
}

tap_plan 11
harness_init "$kdir" "$initrd"
tap_diag "accelerator: $(vm_accel), vCPUs per guest: $smp"
vm_boot src "$SRC" "$smp"
vm_boot dst "$DST" "$smp"
if ! vm_wait_ready src || ! vm_wait_ready dst; then
	echo "Bail out! guests did not boot"
	exit 1
fi
vm_exec src 'selfmig-workload 32' >/dev/null
sum=$(vm_exec src 'cat /tmp/data.md5')
pid=$(vm_exec src 'cat /tmp/count.pid')
vm_exec dst "echo 0.0.0.0:7000 > $IL/listen && echo $(provider_key) > $IL/key && echo 1 > $IL/enable" >/dev/null

# 1. A token altered after sealing (one byte of its sealed body).
good=$(mint_token forged --vcpus "$smp")
attempt "$(hexpatch "$good" $((8 + 24 + 40)) "$(printf '%02x' $((0x${good:144:2} ^ 1)))")"
tap_result "a forged token is refused: token forged or altered" refused "token forged or altered"

# 2. An expired token (minted for two seconds; the CLI will not mint one
#    already expired). The guests' clocks may lag by up to a second.
expired=$(mint_token expired --vcpus "$smp" --expires-in 2)
sleep 4
attempt "$expired"
tap_result "an expired token is refused: token expired" refused "token expired"

# 3. A grant smaller than the guest (256 MiB for a 512 MiB guest).
attempt "$(mint_token small --vcpus "$smp" --ram-mib 256)"
tap_result "a grant smaller than the guest is refused" refused "guest RAM exceeds the granted pages"

# 4. A source that pays too little: the bundle's plaintext says a link buys
#    64 times what the sealed token says, so the source pays late and its
#    pages arrive unpaid.
paid=$(mint_token unpaid --vcpus "$smp" --unit-mib 4)
attempt "$(hexpatch "$paid" 180 "$(printf '%02x%02x%02x%02x' 0 0 1 0)")"
tap_result "unpaid pages are refused: page not paid for" refused "page not paid for"

# 5. The same token again (its id was spent by the attempt above).
attempt "$paid"
tap_result "a replayed token is refused: token already used" refused "token already used" "121 128"

# 6. A bit flipped in transit, in a sealed page batch.
ns python3 "$top/tools/selftests/two_guest/tamper_proxy.py" "$HARNESS_CLIENT_IP" "$PROXY_PORT" "$DST" 7000 flip:3 > "$HARNESS_DIR/flip.out" &
proxy=$!
sleep 0.5
attempt "$(mint_token flip --vcpus "$smp")" "$HARNESS_CLIENT_IP:$PROXY_PORT"
tap_result "a flipped bit mid-stream is refused: record failed authentication" refused "record failed authentication"
wait "$proxy"
tap_diag "proxy: $(cat "$HARNESS_DIR/flip.out")"

# 7. A stream cut in the middle of a record.
ns python3 "$top/tools/selftests/two_guest/tamper_proxy.py" "$HARNESS_CLIENT_IP" "$PROXY_PORT" "$DST" 7000 cut:300000 > "$HARNESS_DIR/cut.out" &
proxy=$!
sleep 0.5
attempt "$(mint_token cut --vcpus "$smp")" "$HARNESS_CLIENT_IP:$PROXY_PORT"
tap_result "a truncated stream is refused; both sides carry on" \
	refused "" "104 110 32 121" "receiving from the source failed"
wait "$proxy"
tap_diag "proxy: $(cat "$HARNESS_DIR/cut.out")"

# 8. A bit flipped in the CPU context, which travels after the checkpoint:
#    the source stopped for it and must come all the way back (devices,
#    CPUs, network) when the target refuses.
ns python3 "$top/tools/selftests/two_guest/tamper_proxy.py" "$HARNESS_CLIENT_IP" "$PROXY_PORT" "$DST" 7000 context:1 > "$HARNESS_DIR/context.out" &
proxy=$!
sleep 0.5
attempt "$(mint_token context --vcpus "$smp")" "$HARNESS_CLIENT_IP:$PROXY_PORT"
after_checkpoint() {
	refused "record failed authentication" || return 1
	local attempts cpus
	attempts=$(stat src $SM checkpoint_attempts) cpus=$(vm_exec src nproc)
	tap_diag "checkpoints taken: $attempts, CPUs online: $cpus of $smp"
	[ "$attempts" -ge 1 ] && [ "$cpus" = "$smp" ] &&
		vm_log src | grep -aq "checkpoint: resumed here"
}
tap_result "a flipped bit after the checkpoint is refused; the source comes back whole" after_checkpoint
wait "$proxy"
tap_diag "proxy: $(cat "$HARNESS_DIR/context.out")"

# 9. After all that, a valid token migrates the guest to the same target.
tap_result "the loader reports what it granted, was paid and used" \
	eval '[ "$(stat dst $IL refused)" -ge 3 ] && [ "$(stat dst $IL pages_granted)" -gt 0 ]'
attempt "$(mint_token valid --vcpus "$smp")"
gone() {
	vm_wait_exit src && return 0
	tap_diag "source still running: $(stat src $SM last_error)"
	return 1
}
tap_result "a valid token then migrates the guest: the source VM powers off" gone
moved() {
	local s t
	for ((t = 0; t < 60; t++)); do
		s=$(vm_exec src "cat $SM/status" 2>/dev/null) && [ "$s" = migrated ] && break
		sleep 0.5
	done
	tap_diag "status $s, units paid $(stat src $SM units_paid), counter pid $(vm_exec src 'cat /tmp/count.pid')"
	[ "$s" = migrated ] && [ "$(vm_exec src 'cat /tmp/count.pid')" = "$pid" ] && workload_intact
}
tap_result "the guest carries on in the target VM, workload intact" moved
