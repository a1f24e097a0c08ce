#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Install everything selfmig needs, from the package registries only:
# Debian packages, bindgen-cli from crates.io and virtme-ng from PyPI, each
# at a pinned version. Idempotent: on a ready machine it only checks.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

debs=(
	"$KERNEL_SRC_PKG" rustc-web rust-web-src rust-web-clippy
	clang lld llvm libclang-dev
	make flex bison bc libelf-dev libssl-dev cpio kmod xz-utils zstd
	busybox-static gcc libc6-dev qemu-system-x86 iproute2 socat python3-pip udev file bc iputils-ping
	dkms
)

missing=()
for p in "${debs[@]}"; do
	dpkg-query -W -f '${Status}\n' "$p" 2>/dev/null | grep -q "ok installed" ||
		missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
	say "installing Debian packages: ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! "$BINDGEN" --version 2>/dev/null | grep -qx "bindgen $BINDGEN_VERSION"; then
	say "installing bindgen-cli $BINDGEN_VERSION from crates.io"
	cargo install --quiet --locked --force bindgen-cli --version "$BINDGEN_VERSION"
fi

if ! vng --version 2>/dev/null | grep -q "$VNG_VERSION"; then
	say "installing virtme-ng $VNG_VERSION from PyPI"
	python3 -m pip install --quiet --root-user-action=ignore "virtme-ng==$VNG_VERSION"
fi

say "toolchain ready: $("$RUSTC" --version), $("$BINDGEN" --version), vng $(vng --version 2>&1 | head -n 1)"
