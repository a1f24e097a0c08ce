#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# `make dkms-check`: the tree builds and installs with DKMS (dkms.conf)
# against the project's built kernel ($KDIR, default build/kdir), and with
# `make modules_install`, without touching the host's DKMS state or module
# directories. TAP output; exit status non-zero if anything failed.
#
# DKMS keeps three trees: the sources (/usr/src), its state (/var/lib/dkms)
# and the installed modules (/lib/modules). dkms 3.0.10 (Debian 12) takes
# all three on its command line (--sourcetree, --dkmstree, --installtree,
# which win over /etc/dkms/framework.conf); they all go into one temporary
# directory, removed on exit, also on failure or interrupt. Three more host
# paths need care:
#   - depmod: dkms runs it on /lib/modules/<release> (not on --installtree)
#     after install and remove; --no-depmod skips it;
#   - module signing: dkms signs when it finds a sign-file binary (not built
#     for this kernel, which has no CONFIG_MODULE_SIG) and then generates
#     its key in /var/lib/dkms/mok.key unless mok_signing_key and
#     mok_certificate are set; they can only be set in
#     /etc/dkms/framework.conf or, as here, in dkms's environment;
#   - temporary files: dkms uses $TMPDIR.
# The last test checks that /usr/src, /var/lib/dkms and /lib/modules/<release>
# are as they were.
# shellcheck source-path=SCRIPTDIR
set -uo pipefail
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/tap.sh"
# Run from `make dkms-check`: the builds below are not part of that make.
unset MAKEFLAGS MFLAGS MAKELEVEL

KDIR=${KDIR:-$(cat "$SELFMIG_TOP/build/kdir" 2>/dev/null)}
if [ -z "$KDIR" ] || [ ! -f "$KDIR/include/config/kernel.release" ]; then
	die "no built kernel at KDIR='$KDIR'; run make (or pass KDIR=)"
fi
release=$(<"$KDIR/include/config/kernel.release")
version=$(sed -n 's/^PACKAGE_VERSION="\(.*\)"$/\1/p' "$SELFMIG_TOP/dkms.conf")
[ -n "$version" ] || die "no PACKAGE_VERSION in dkms.conf"
arch=$(uname -m)

work=$(mktemp -d /tmp/selfmig-dkms.XXXXXX)
child=
cleanup() {
	if [ -n "$child" ]; then
		kill -TERM -- "-$child" 2> /dev/null
		wait "$child" 2> /dev/null
	fi
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
mkdir -p "$work/src" "$work/dkms" "$work/modules/$release" "$work/tmp"

# What the host has in the places DKMS writes by default.
host_state() {
	ls -A /usr/src /var/lib/dkms 2>&1
	ls -lA "/lib/modules/$release" 2>&1
}

# run CMD...: CMD in a process group of its own, waited for so that an
# interrupt or TERM is handled at once and cleanup() stops the whole group
# (dkms runs make in the background, where SIGINT is ignored).
run() {
	local rc
	setsid -w "$@" &
	child=$!
	wait "$child"
	rc=$?
	child=
	return $rc
}

# dkms ARGS...: dkms confined to $work, output appended to $work/dkms.log.
dkms_private() {
	TMPDIR="$work/tmp" mok_signing_key="$work/mok.key" mok_certificate="$work/mok.pub" \
		run dkms "$@" --sourcetree "$work/src" --dkmstree "$work/dkms" \
		--installtree "$work/modules" >> "$work/dkms.log" 2>&1
}

# show FILE: the end of FILE as TAP diagnostics.
show() {
	[ -f "$1" ] || return 0
	tail -n 25 "$1" | sed 's/^/#   /'
}

# stage DIR: a copy of the tree as it would be committed: tracked and
# untracked files, without ignored ones (build products, cargo targets).
stage() {
	mkdir -p "$1"
	if git -C "$SELFMIG_TOP" rev-parse --git-dir > /dev/null 2>&1; then
		(cd "$SELFMIG_TOP" && git ls-files -z --cached --others --exclude-standard |
			while IFS= read -r -d '' f; do [ -e "$f" ] && printf '%s\0' "$f"; done |
			xargs -0 cp --parents -t "$1")
	else
		tar -C "$SELFMIG_TOP" --exclude-vcs --exclude=./build --exclude=target \
			--exclude='*.o' --exclude='*.ko' -cf - . | tar -C "$1" -xf -
	fi
}

# vermagic_is KO: KO exists and its vermagic starts with $release.
vermagic_is() {
	local v
	v=$(modinfo -F vermagic "$1" 2> /dev/null) || return 1
	tap_diag "$(basename "$1"): vermagic $v"
	[ "${v%% *}" = "$release" ]
}

# installed_dkms: the dkms package is installed, installing it if missing.
installed_dkms() {
	if ! dpkg-query -W -f '${Status}\n' dkms 2> /dev/null | grep -q "ok installed"; then
		tap_diag "installing the dkms Debian package"
		export DEBIAN_FRONTEND=noninteractive
		{
			apt-get install -y -qq --no-install-recommends dkms ||
				{ apt-get update -qq && apt-get install -y -qq --no-install-recommends dkms; }
		} > "$work/apt.log" 2>&1 || { show "$work/apt.log"; return 1; }
	fi
	tap_diag "$(dkms --version)"
}

src="$work/src/selfmig-$version"
built="$work/dkms/selfmig/$version/$release/$arch/module"
root="$work/root"

# The tests, in order; each fails with its logs as diagnostics.
dkms_add() {
	cp -a "$work/tree" "$src" && dkms_private add "selfmig/$version" && return 0
	show "$work/dkms.log"
	return 1
}

dkms_build() {
	local begin=$SECONDS
	dkms_private build "selfmig/$version" -k "$release" --kernelsourcedir "$KDIR" || {
		show "$work/dkms.log"
		show "$work/dkms/selfmig/$version/build/make.log"
		return 1
	}
	tap_diag "dkms build took $((SECONDS - begin)) s"
}

# On Debian and Ubuntu dkms installs into /updates/dkms whatever
# DEST_MODULE_LOCATION says; elsewhere into /extra.
dkms_install() {
	local m f
	dkms_private install "selfmig/$version" -k "$release" --kernelsourcedir "$KDIR" \
		--no-depmod || { show "$work/dkms.log"; return 1; }
	for m in self_migrate inflate_loader; do
		f=$(find "$work/modules/$release" -name "$m.ko*" -print -quit)
		[ -n "$f" ] || return 1
		tap_diag "installed ${f#"$work/modules/"}"
	done
	dkms_private status "selfmig/$version" -k "$release" &&
		grep -q "^selfmig/$version, $release, $arch: installed" "$work/dkms.log"
}

dkms_remove() {
	dkms_private remove "selfmig/$version" --all --no-depmod || {
		show "$work/dkms.log"
		return 1
	}
	[ -z "$(find "$work/modules/$release" -name '*.ko*')" ] &&
		[ ! -e "$work/dkms/selfmig/$version" ]
}

# make modules_install from another copy of the tree, into a staging root.
modules_install() {
	local m
	cp -a "$work/tree" "$work/make" || return 1
	run make -C "$work/make" KDIR="$KDIR" modules_install INSTALL_MOD_PATH="$root" \
		> "$work/make.log" 2>&1 || { show "$work/make.log"; return 1; }
	for m in self_migrate inflate_loader; do
		[ -f "$root/lib/modules/$release/extra/$m/$m.ko" ] &&
			grep -q "^extra/$m/$m.ko:" "$root/lib/modules/$release/modules.dep" || return 1
	done
}

# modinfo finds both by name in the staging root (depmod's index).
staged_modinfo() {
	local m
	for m in self_migrate inflate_loader; do
		vermagic_is "$(modinfo -b "$root" -k "$release" -n "$m" 2> /dev/null)" || return 1
	done
}

tap_plan 10
tap_diag "kernel $release at $KDIR, selfmig/$version, arch $arch"
# One snapshot for both builds: the checkout may change meanwhile.
stage "$work/tree" || die "cannot copy the tree"

tap_result "dkms is installed" installed_dkms
command -v dkms > /dev/null || die "no dkms; cannot go on"
before=$(host_state)

tap_result "dkms add selfmig/$version (the tree copied to a private source tree)" dkms_add
tap_result "dkms build -k $release --kernelsourcedir \$KDIR" dkms_build
tap_result "dkms built self_migrate.ko for $release (modinfo vermagic)" \
	vermagic_is "$built/self_migrate.ko"
tap_result "dkms built inflate_loader.ko for $release (modinfo vermagic)" \
	vermagic_is "$built/inflate_loader.ko"
tap_result "dkms install --no-depmod: both modules in the private install tree" dkms_install
tap_result "dkms remove --all --no-depmod: nothing left installed" dkms_remove
tap_result "make modules_install INSTALL_MOD_PATH=...: both in extra/ and modules.dep" \
	modules_install
tap_result "modinfo -b <staging root>: both modules found for $release" staged_modinfo
tap_result "host untouched: /usr/src, /var/lib/dkms, /lib/modules/$release" \
	test "$(host_state)" = "$before"

[ "$TAP_FAIL" = 0 ]
