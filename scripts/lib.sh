# SPDX-License-Identifier: GPL-2.0
# Shared settings for the selfmig scripts. Source it; do not run it.
#
# Everything derived from the machine lives outside the checkout, under
# $SELFMIG_CACHE (default ~/.cache/selfmig), so a clean clone reuses it.

SELFMIG_TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SELFMIG_CACHE=${SELFMIG_CACHE:-$HOME/.cache/selfmig}

# Pinned tool versions (see Documentation/process/build.rst).
BINDGEN_VERSION=0.73.2
VNG_VERSION=1.42
KERNEL_SRC_PKG=linux-source-6.12
KERNEL_TARBALL=/usr/src/linux-source-6.12.tar.xz

# The kernel and the modules are built with Debian's rustc, which ships the
# library sources the kernel needs; the rustup toolchain cannot.
RUSTC=${RUSTC:-/usr/bin/rustc}
BINDGEN=${BINDGEN:-$HOME/.cargo/bin/bindgen}
KMAKE_FLAGS=(LLVM=1 "RUSTC=$RUSTC" "BINDGEN=$BINDGEN")

# cargo-installed and pip-installed tools, wherever this Python puts scripts.
PY_SCRIPTS=$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))' 2>/dev/null || true)
export PATH="$HOME/.cargo/bin:${PY_SCRIPTS:+$PY_SCRIPTS:}$PATH"

# Print a message prefixed with the script name and exit non-zero.
die() {
	echo "$(basename "$0"): $*" >&2
	exit 1
}

# Print a progress line prefixed with the script name.
say() {
	echo "$(basename "$0"): $*" >&2
}

# The cache key of the guest kernel: every input that changes the build.
kernel_key() {
	{
		dpkg-query -W -f '${Version}\n' "$KERNEL_SRC_PKG"
		cat "$SELFMIG_TOP/scripts/selfmig.config"
		cat "$SELFMIG_TOP/scripts/build-kernel.sh"
		"$RUSTC" --version
		clang --version | head -n 1
		"$BINDGEN" --version
	} | sha256sum | cut -c1-16
}

# The directory of the built kernel for the current inputs.
kernel_dir() {
	echo "$SELFMIG_CACHE/kernel-$(kernel_key)"
}
