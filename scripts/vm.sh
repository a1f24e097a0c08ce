# SPDX-License-Identifier: GPL-2.0
# selfmig two-guest harness library. Source it after lib.sh.
#
#   harness_init KDIR INITRD   private netns, bridge, client address, state dir
#   vm_boot NAME IP [SMP] [MEM_MIB]   boot a guest on its own tap (background)
#   vm_wait_ready NAME         wait for the guest agent (boot retried once)
#   vm_exec NAME CMD           run CMD in the guest, print output, return rc
#   vm_kill NAME               stop a guest
#   harness_teardown           kill every guest, delete the namespace
#
# Everything lives in one network namespace this harness creates
# (selfmig-<pid>) on 10.77.0.0/24: the bridge holds the client endpoint
# 10.77.0.1 and each guest's tap. Nothing touches any other interface or
# address, and teardown (on EXIT) removes it all.

HARNESS_NET=10.77.0
HARNESS_CLIENT_IP=$HARNESS_NET.1
AGENT_PORT=5555

declare -A VM_PID VM_IP VM_SMP VM_MEM VM_TAP VM_MAC

# Pick the accelerator: SELFMIG_ACCEL=kvm|tcg overrides; by default KVM is
# used only when /dev/kvm is usable and this host is not itself a guest
# (nested KVM was measured unusably slow; see Documentation/selfmig/testing.rst).
vm_accel() {
	case "${SELFMIG_ACCEL:-auto}" in
	kvm) echo kvm ;;
	tcg) echo tcg ;;
	auto)
		if [ -r /dev/kvm ] && [ -w /dev/kvm ] && ! grep -qw hypervisor /proc/cpuinfo; then
			echo kvm
		else
			echo tcg
		fi
		;;
	*) die "SELFMIG_ACCEL must be kvm, tcg or auto" ;;
	esac
}

# QEMU arguments for the accelerator.
vm_accel_args() {
	if [ "$(vm_accel)" = kvm ]; then
		echo "-accel kvm -cpu host"
	else
		echo "-accel tcg,thread=multi -cpu max"
	fi
}

harness_init() {
	HARNESS_KDIR=$1
	HARNESS_INITRD=$2
	HARNESS_NS=selfmig-$$
	HARNESS_DIR=$(mktemp -d /tmp/selfmig-harness.XXXXXX)
	trap harness_teardown EXIT
	trap 'exit 130' INT TERM
	ip netns add "$HARNESS_NS"
	ip -n "$HARNESS_NS" link set lo up
	ip -n "$HARNESS_NS" link add br0 type bridge
	ip -n "$HARNESS_NS" addr add "$HARNESS_CLIENT_IP/24" dev br0
	ip -n "$HARNESS_NS" link set br0 up
}

harness_teardown() {
	local name
	for name in "${!VM_PID[@]}"; do
		vm_kill "$name"
	done
	if [ -n "${HARNESS_NS:-}" ]; then
		ip netns del "$HARNESS_NS" 2>/dev/null || true
	fi
	if [ -n "${HARNESS_DIR:-}" ] && [ -z "${SELFMIG_KEEP_LOGS:-}" ]; then
		rm -rf "$HARNESS_DIR"
	fi
	HARNESS_NS=
	return 0
}

# Run a command inside the harness namespace.
ns() {
	ip netns exec "$HARNESS_NS" "$@"
}

vm_boot() {
	local name=$1 ip=$2 smp=${3:-1} mem=${4:-512}
	local n=${ip##*.}
	VM_IP[$name]=$ip
	VM_SMP[$name]=$smp
	VM_MEM[$name]=$mem
	VM_TAP[$name]=tap-$name
	VM_MAC[$name]=$(printf '52:54:00:77:00:%02x' "$n")
	# VM_NIC_IOMMU=off: the NIC bypasses the DMA API (no
	# VIRTIO_F_ACCESS_PLATFORM), which the paging tracker refuses.
	# VM_INCOMING_FROM=SOURCE: this VM is the destination of QEMU's own
	# migration of SOURCE: same NIC address, RAM from $HARNESS_DIR/NAME.mig.
	local incoming=()
	if [ -n "${VM_INCOMING_FROM:-}" ]; then
		VM_MAC[$name]=${VM_MAC[$VM_INCOMING_FROM]}
		incoming=(-incoming "unix:$HARNESS_DIR/$name.mig")
	fi
	if ! ip -n "$HARNESS_NS" link show "tap-$name" >/dev/null 2>&1; then
		ip -n "$HARNESS_NS" tuntap add dev "tap-$name" mode tap
		ip -n "$HARNESS_NS" link set "tap-$name" master br0 up
	fi
	# Not through `ns`: a function would run in a subshell and $! would not
	# be QEMU's pid. `ip netns exec` execs QEMU, so here it is.
	# -mem-prealloc: these hosts back a process's memory lazily and the
	# first write to fresh host memory is slow (a 2 MiB page took about
	# 7 ms to fault in); preallocated, no guest's first touch of a frame,
	# on either side of a migration, stalls inside a measurement.
	# shellcheck disable=SC2046
	ip netns exec "$HARNESS_NS" qemu-system-x86_64 \
		-nodefaults -display none -no-reboot -monitor none \
		$(vm_accel_args) -smp "$smp" -m "$mem" -mem-prealloc \
		-kernel "$HARNESS_KDIR/arch/x86/boot/bzImage" -initrd "$HARNESS_INITRD" \
		-append "console=ttyS0 swiotlb=force panic=-1 oops=panic selfmig.ip=$ip/24 selfmig.role=$name" \
		-serial "file:$HARNESS_DIR/$name.log" \
		-qmp "unix:$HARNESS_DIR/$name.qmp,server=on,wait=off" \
		-netdev "tap,id=n0,ifname=tap-$name,script=no,downscript=no" \
		-device "virtio-net-pci,netdev=n0,mac=${VM_MAC[$name]},iommu_platform=${VM_NIC_IOMMU:-on},disable-legacy=on" \
		"${incoming[@]}" ${SELFMIG_QEMU_EXTRA:-} >"$HARNESS_DIR/$name.qemu" 2>&1 &
	VM_PID[$name]=$!
}

vm_log() {
	cat "$HARNESS_DIR/$1.log" 2>/dev/null
}

# Wait until the guest prints its ready line and its agent answers. A boot
# that has not become ready in time is retried once (under multi-threaded
# TCG about one boot in 67 panics early; see ENVIRONMENT notes).
vm_wait_ready() {
	local name=$1 timeout=${2:-${SELFMIG_BOOT_TIMEOUT:-120}} attempt t
	for attempt in 1 2; do
		for ((t = 0; t < timeout; t++)); do
			if grep -q "selfmig-guest: ready" "$HARNESS_DIR/$name.log" 2>/dev/null &&
				vm_exec "$name" true >/dev/null 2>&1; then
				return 0
			fi
			kill -0 "${VM_PID[$name]}" 2>/dev/null || break
			sleep 1
		done
		say "guest $name not ready (attempt $attempt); console tail:"
		tail -n 20 "$HARNESS_DIR/$name.log" >&2 || true
		tail -n 5 "$HARNESS_DIR/$name.qemu" >&2 || true
		vm_kill "$name"
		[ "$attempt" = 1 ] && vm_boot "$name" "${VM_IP[$name]}" "${VM_SMP[$name]}" "${VM_MEM[$name]}"
	done
	return 1
}

# Run a shell command in a guest through its agent; prints the output and
# returns the command's exit status (255 when the agent is unreachable).
vm_exec() {
	local name=$1 out rc
	shift
	out=$(printf '%s\n' "( $* ) 2>&1; echo \"__selfmig_rc=\$?\"" |
		ns timeout "${SELFMIG_EXEC_TIMEOUT:-60}" socat -t 60 - "TCP:${VM_IP[$name]}:$AGENT_PORT,connect-timeout=2" 2>/dev/null) ||
		return 255
	rc=$(printf '%s\n' "$out" | sed -n 's/^__selfmig_rc=//p' | tail -n 1)
	# (grep fails when the command printed nothing; that is no error)
	printf '%s\n' "$out" | grep -v '^__selfmig_rc=' || true
	[ -n "$rc" ] || return 255
	return "$rc"
}

# vm_migration_diag SRC DST: after a failed migration, prints (as TAP
# diagnostics) what both consoles said about it: the source's tracker
# misses and the frames behind them, the target's verification and
# refusals. CI keeps only the TAP output, so this is what a failure leaves.
vm_migration_diag() {
	local line
	grep -aE "self_migrate: .*(missed|mapped by|failed|refus|abandon)|page:[0-9a-f]+ refcount|flags: |raw: " "$HARNESS_DIR/$1.log" 2>/dev/null |
		tail -n 24 | while IFS= read -r line; do tap_diag "$1: $line"; done
	grep -aE "inflate_loader: .*(verify|refus|abort|fail|frame)" "$HARNESS_DIR/$2.log" 2>/dev/null |
		tail -n 8 | while IFS= read -r line; do tap_diag "$2: $line"; done
}

# vm_wait_exit NAME [SECONDS]: waits (default 60 s) for NAME's QEMU to exit
# (a source powering off after the commit); fails if it is still running.
vm_wait_exit() {
	local pid=${VM_PID[$1]:-} t
	for ((t = 0; t < ${2:-60} * 10; t++)); do
		kill -0 "$pid" 2>/dev/null || return 0
		sleep 0.1
	done
	return 1
}

vm_kill() {
	local name=$1 pid=${VM_PID[$1]:-}
	[ -n "$pid" ] || return 0
	kill "$pid" 2>/dev/null || true
	for _ in 1 2 3 4 5 6 7 8 9 10; do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.2
	done
	kill -9 "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
	unset "VM_PID[$name]"
}
