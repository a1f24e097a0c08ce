#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# `make bench`: selfmig against QEMU's own live migration, side by side in
# one run, on identical guests (same kernel, initramfs, RAM, vCPUs, NIC).
#
# For each workload, guest size and run, selfmig migrations (sysfs, a fresh
# token; one with verify=1, the correctness oracle, whose full hashes cost
# downtime, and one with verify=0, the production setting) and one QEMU
# migration (QMP `migrate` to an `-incoming` QEMU, the same downtime limit,
# otherwise QEMU's defaults).
# Workloads: idle; a task dirtying memory at 50 MB/s; one at 200 MB/s; a
# receiver taking a steady TCP stream (DMA through the bounce buffers).
# Downtime is measured inside (selfmig: the guest's phase-by-phase figure;
# QEMU: its own `downtime`) and outside: the largest gap a client in the
# namespace sees in a 1 ms UDP echo stream (and, recorded apart, in a 1 ms
# TCP echo session, where a lost segment adds a retransmission timeout).
#
# Writes bench/results.json and bench/results.png, prints a table.
# Environment: BENCH_RUNS (3), BENCH_SIZES ("512 1024"), BENCH_WORKLOADS
# ("idle dirty50 dirty200 net"), BENCH_VERIFY ("1 0": the selfmig runs'
# verify settings), BENCH_TOOLS ("selfmig qemu"), BENCH_QEMU_CHECK (1: one
# more QEMU run per workload and size, memories compared), BENCH_TIMEOUT (s per QEMU migration, 90), BENCH_OUT
# (bench/results.json).
set -uo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
. "$top/scripts/lib.sh"
. "$top/scripts/vm.sh"
. "$top/scripts/token.sh"

[ "$(id -u)" = 0 ] || die "needs root (network namespace, taps)"
kdir=$(cat "$top/build/kdir") || die "no kernel recorded; run make"
initrd="$top/build/initramfs.cpio.gz"
"$top/scripts/mkinitramfs.sh" "$kdir" "$initrd"
runs=${BENCH_RUNS:-3}
sizes=${BENCH_SIZES:-512 1024}
workloads=${BENCH_WORKLOADS:-idle dirty50 dirty200 net}
verifies=${BENCH_VERIFY:-1 0}
tools=${BENCH_TOOLS:-selfmig qemu}
timeout_s=${BENCH_TIMEOUT:-90}
out=${BENCH_OUT:-$top/bench/results.json}
DOWNTIME_MS=50
SM=/sys/kernel/self_migrate
IL=/sys/kernel/inflate_loader
SRC=$HARNESS_NET.2 DST=$HARNESS_NET.3

harness_init "$kdir" "$initrd"
results="$HARNESS_DIR/results.jsonl"
: > "$results"

# Every guest gets 4 KiB more than its size (-m 524292k, 1048580k): QEMU 7.2
# under TCG corrupts a guest that dirties memory while it migrates it when
# its RAM is a multiple of 64 pages (2 pages differed after a 512 MiB
# dirty50 migration in the run of 2026-11-22), and a RAM size that is not
# avoids it, the workaround the benchmark's issue prescribes; both tools get
# the same size.
qemu_mem() {
	echo "$(($1 * 1024 + 4))k"
}

# start_workload GUEST WORKLOAD: the echo server, and what loads the guest.
start_workload() {
	vm_exec "$1" 'selfmig-workload 8; selfmig-udpecho 6003 </dev/null >/dev/null 2>&1 &' >/dev/null
	case "$2" in
	idle) ;;
	dirty50) vm_exec "$1" 'selfmig-dirty 256 50 </dev/null >/dev/null 2>&1 &' >/dev/null ;;
	dirty200) vm_exec "$1" 'selfmig-dirty 256 200 </dev/null >/dev/null 2>&1 &' >/dev/null ;;
	net)
		vm_exec "$1" 'nc -l -p 6002 </dev/null >/dev/null 2>&1 &' >/dev/null
		sleep 0.3
		ns python3 "$top/bench/stream.py" "${VM_IP[$1]}" 6002 5 "$HARNESS_DIR/stream.stop" &
		;;
	esac
}

# client_start / client_stop: the outside probes, a 1 ms UDP echo stream
# (the downtime seen from outside) and a 1 ms TCP echo session (what an
# application sees: a datagram lost in the downtime costs it a
# retransmission timeout, at least 200 ms); stop prints both largest gaps,
# -1 for a probe that broke.
client_start() {
	rm -f "$HARNESS_DIR/client.stop" "$HARNESS_DIR/stream.stop"
	ns python3 "$top/tools/selftests/two_guest/echo_client.py" "$SRC" 6001 \
		"$HARNESS_DIR/client.stop" 0.001 > "$HARNESS_DIR/client.json" &
	CLIENT=$!
	ns python3 "$top/bench/udp_probe.py" "$SRC" 6003 "$HARNESS_DIR/client.stop" 0.001 \
		> "$HARNESS_DIR/udp.json" &
	UDP=$!
	sleep 1
}
client_stop() {
	touch "$HARNESS_DIR/client.stop" "$HARNESS_DIR/stream.stop"
	wait "$CLIENT" "$UDP" 2>/dev/null
	python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(d["max_gap_ms"] if d["echoed"] > 0 else -1)' \
		"$HARNESS_DIR/udp.json" 2>/dev/null || echo -1
	python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(d["max_gap_ms"] if d["broken"] is None else -1)' \
		"$HARNESS_DIR/client.json" 2>/dev/null || echo -1
}

stopall() {
	local name
	for name in "${!VM_PID[@]}"; do vm_kill "$name"; unset "VM_PID[$name]"; done
}

record() {
	echo "$1" >> "$results"
	say "$(echo "$1" | python3 -c 'import json,sys; d=json.load(sys.stdin); print(" ".join(f"{k}={v}" for k, v in d.items() if k != "log"))')"
}

run_selfmig() {
	local wl=$1 mib=$2 run=$3 verify=$4 mem t0 t1 gap st exited
	mem=$(qemu_mem "$mib")
	vm_boot src "$SRC" 1 "$mem"
	vm_boot dst "$DST" 1 "$mem"
	vm_wait_ready src && vm_wait_ready dst || { stopall; return 1; }
	start_workload src "$wl"
	client_start
	vm_exec dst "echo 0.0.0.0:7000 > $IL/listen && echo $(provider_key) > $IL/key && echo 1 > $IL/enable" >/dev/null
	vm_exec src "echo $(mint_token "b$run" --ram-mib "$mib" --vcpus 1) > $SM/token && echo $verify > $SM/verify &&
		echo $DOWNTIME_MS > $SM/max_downtime_ms && echo $DST:7000 > $SM/target && echo 1 > $SM/start" >/dev/null
	t0=$(date +%s.%N)
	vm_wait_exit src "$timeout_s"
	exited=$?
	t1=$(date +%s.%N)
	st=$(vm_exec src "cat $SM/status" 2>/dev/null)
	if [ "$exited" != 0 ]; then
		# Still running after the timeout: it did not converge (or failed).
		case "$st" in
		connecting | precopy | checkpoint | committing)
			vm_exec src "echo 1 > $SM/abort" >/dev/null
			st=not-converged
			;;
		esac
	else
		for _ in $(seq 1 40); do [ "$st" = migrated ] && break; sleep 0.5; st=$(vm_exec src "cat $SM/status" 2>/dev/null); done
	fi
	sleep 1
	gap=$(client_stop | tr '\n' ' ')
	stats=$(vm_exec src "cat $SM/stats" 2>/dev/null | tr '\n' ';')
	# The module's round and checkpoint lines, from the guest's own kernel
	# log (it migrated with the guest; the console hides info lines).
	klog=$(vm_exec src "dmesg | grep -a 'self_migrate: \(round\|checkpoint\)'" 2>/dev/null | sed 's/^\[[ 0-9.]*\] self_migrate: //' | tr '\n' '\036')
	record "$(python3 - "$wl" "$mib" "$st" "$stats" "$gap" "$t0" "$t1" "$verify" "$klog" <<'EOF'
import json, sys
wl, mib, st, stats, gaps, t0, t1, verify, klog = sys.argv[1:]
gap, tcp_gap = (float(g) for g in gaps.split())
s = dict(kv.split(": ", 1) for kv in stats.split(";") if ": " in kv)
num = lambda k: int(s.get(k, "0") or 0)
ok = st == "migrated"
print(json.dumps({
    "tool": "selfmig", "verify_mode": verify == "1", "workload": wl, "ram_mib": int(mib), "status": st or "unreachable",
    "downtime_ms": round(num("downtime_us") / 1000, 1) if ok else None,
    "outside_downtime_ms": gap if ok and gap >= 0 else None,
    "outside_tcp_gap_ms": tcp_gap if ok and tcp_gap >= 0 else None,
    "total_ms": num("total_ms") if ok else round((float(t1) - float(t0)) * 1000),
    "bytes_sent": num("bytes_sent"), "rounds": num("round") + 1,
    "verify": ("passed (%d pages)" % num("verify_pages")) if ok and num("verify_pages") > 0
              else ("off" if verify != "1" else "n/a"),
    "tracker": s.get("tracker_used"), "tracker_misses": num("tracker_misses"),
    "unwritten_pages": num("unwritten_pages"), "unwritten_misses": num("unwritten_misses"),
    "throttle_share_bp": num("throttle_share_bp"),
    "staged_pages": num("staged_pages"),
    "checkpoint_marked_pages": num("checkpoint_marked_pages"),
    "checkpoint_all_marked": num("checkpoint_all_marked") == 1,
    "precopy_end": s.get("precopy_end"),
    "downtime_phases_ms": {k: round(num("downtime_%s_us" % k) / 1000, 1)
                           for k in ("checkpoint", "transfer", "target", "commit", "jump", "resume")} if ok else None,
    "last_error": None if ok else s.get("last_error"),
    "log": [l for l in klog.split("\x1e") if l],
}))
EOF
)"
	stopall
}

run_qemu() {
	local wl=$1 mib=$2 mem res gap
	mem=$(qemu_mem "$mib")
	vm_boot src "$SRC" 1 "$mem"
	vm_wait_ready src || { stopall; return 1; }
	VM_INCOMING_FROM=src vm_boot dst "$SRC" 1 "$mem"
	start_workload src "$wl"
	client_start
	sleep 1
	res=$(python3 "$top/bench/qmp.py" "$HARNESS_DIR/src.qmp" "unix:$HARNESS_DIR/dst.mig" "$DOWNTIME_MS" "$timeout_s")
	VM_IP[dst]=$SRC
	sleep 2
	gap=$(client_stop | tr '\n' ' ')
	record "$(python3 - "$wl" "$mib" "$res" "$gap" <<'EOF'
import json, sys
wl, mib, res, gaps = sys.argv[1:]
gap, tcp_gap = (float(g) for g in gaps.split())
r = json.loads(res)
ok = r["status"] == "completed"
print(json.dumps({
    "tool": "qemu", "workload": wl, "ram_mib": int(mib), "status": r["status"],
    "downtime_ms": r["downtime_ms"] if ok else None,
    "outside_downtime_ms": gap if ok and gap >= 0 else None,
    "outside_tcp_gap_ms": tcp_gap if ok and tcp_gap >= 0 else None,
    "total_ms": r["total_ms"], "bytes_sent": r["bytes"], "rounds": r["rounds"], "verify": "n/a",
}))
EOF
)"
	stopall
}

# run_qemu_check WORKLOAD MIB: one more QEMU migration, its destination
# held paused (-S) once it completes, so that both memories can be compared
# (pmemsave on both sides; bench/qemu_check.py). Debian's QEMU 7.2 under TCG
# corrupts guests that dirty memory while it migrates them unless their RAM
# is not a multiple of 64 pages; this records whether the peer was correct.
# Times are not taken from this run.
run_qemu_check() {
	local wl=$1 mib=$2 mem res chk bytes
	mem=$(qemu_mem "$mib")
	case "$mem" in
	*k) bytes=$((${mem%k} * 1024)) ;;
	*) bytes=$((mem * 1048576)) ;;
	esac
	vm_boot src "$SRC" 1 "$mem"
	vm_wait_ready src || { stopall; return 1; }
	VM_INCOMING_FROM=src SELFMIG_QEMU_EXTRA=-S vm_boot dst "$SRC" 1 "$mem"
	start_workload src "$wl"
	sleep 1
	res=$(python3 "$top/bench/qmp.py" "$HARNESS_DIR/src.qmp" "unix:$HARNESS_DIR/dst.mig" "$DOWNTIME_MS" "$timeout_s")
	chk='{"error": "not migrated"}'
	if [ "$(echo "$res" | python3 -c 'import json,sys; print(json.load(sys.stdin)["status"])')" = completed ]; then
		chk=$(python3 "$top/bench/qemu_check.py" "$HARNESS_DIR/src.qmp" "$HARNESS_DIR/dst.qmp" "$bytes" "$HARNESS_DIR")
	fi
	touch "$HARNESS_DIR/stream.stop"
	record "$(python3 - "$wl" "$mib" "$res" "$chk" <<'EOF'
import json, sys
wl, mib, res, chk = sys.argv[1:]
r, c = json.loads(res), json.loads(chk)
print(json.dumps({
    "tool": "qemu", "check": True, "workload": wl, "ram_mib": int(mib), "status": r["status"],
    "verify": ("passed (%d pages)" % c["pages"]) if c.get("pages_differ") == 0
              else ("FAILED: %d pages differ, first frame %s" % (c["pages_differ"], c["first_pfn"])
                    if "pages_differ" in c else "n/a (%s)" % c.get("error")),
    "pages_differ": c.get("pages_differ"),
}))
EOF
)"
	stopall
}

for mib in $sizes; do
	for wl in $workloads; do
		for run in $(seq 1 "$runs"); do
			say "== $wl, $mib MiB, run $run"
			case " $tools " in *" selfmig "*)
				for v in $verifies; do
					run_selfmig "$wl" "$mib" "$run" "$v" || say "selfmig run did not start"
				done
				;;
			esac
			case " $tools " in *" qemu "*) run_qemu "$wl" "$mib" || say "QEMU run did not start" ;; esac
		done
		case " $tools " in *" qemu "*)
			[ "${BENCH_QEMU_CHECK:-1}" = 0 ] || run_qemu_check "$wl" "$mib" || say "QEMU check run did not start"
			;;
		esac
	done
done

python3 "$top/bench/report.py" "$results" "$out"
