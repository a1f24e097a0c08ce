#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Build the Rust-enabled guest kernel, or reuse the cached build.
#
# The result is a built tree (bzImage, modules, Module.symvers and the Rust
# metadata out-of-tree modules link against) in $SELFMIG_CACHE/kernel-<key>,
# where <key> hashes every input: source package version, config fragment,
# this script and the toolchain versions. Prints that directory on stdout.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

dir=$(kernel_dir)
if [ -f "$dir/.selfmig-built" ]; then
	echo "$dir"
	exit 0
fi

[ -f "$KERNEL_TARBALL" ] || die "$KERNEL_TARBALL missing; run scripts/setup.sh"
mkdir -p "$SELFMIG_CACHE"
tmp="$dir.tmp"
rm -rf "$tmp"
mkdir -p "$tmp"
# A failed or interrupted build leaves nothing behind.
trap 'rm -rf "$tmp"' EXIT
say "unpacking $KERNEL_TARBALL"
tar -C "$tmp" --strip-components=1 -xf "$KERNEL_TARBALL"

cd "$tmp"
say "configuring: allnoconfig + scripts/selfmig.config"
make -s "${KMAKE_FLAGS[@]}" KCONFIG_ALLCONFIG="$SELFMIG_TOP/scripts/selfmig.config" allnoconfig
make -s "${KMAKE_FLAGS[@]}" olddefconfig

# Every option the fragment sets must have survived Kconfig's dependency
# resolution; a silently dropped option costs a boot-debug cycle later.
bad=0
while IFS= read -r line; do
	case "$line" in
	CONFIG_*=*)
		opt=${line%%=*} val=${line#*=}
		[ "$val" = n ] && { grep -q "^$opt=" .config && { say "$opt wanted n"; bad=1; }; continue; }
		grep -qxF "$line" .config || { say "$line did not stick: $(grep "^$opt=" .config || echo unset)"; bad=1; }
		;;
	"# CONFIG_"*" is not set")
		opt=${line#\# } opt=${opt%% *}
		grep -q "^$opt=" .config && { say "$opt wanted unset"; bad=1; }
		;;
	esac
done < "$SELFMIG_TOP/scripts/selfmig.config"
[ "$bad" = 0 ] || die "config fragment not satisfied (see above)"

start=$(date +%s)
say "building bzImage and modules with -j$(nproc)"
make -s -j"$(nproc)" "${KMAKE_FLAGS[@]}" bzImage modules
end=$(date +%s)
say "kernel built in $((end - start)) s"
echo "$((end - start))" > .selfmig-build-seconds
touch .selfmig-built

cd /
# Keep only the newest build: each tree is about a gigabyte.
for old in "$SELFMIG_CACHE"/kernel-*; do
	[ "$old" = "$tmp" ] || rm -rf "$old"
done
mv "$tmp" "$dir"
trap - EXIT
echo "$dir"
