#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Build the selfmig CLI (tools/selfmig) as a static executable, for the
# busybox test guests and for copying into any guest; prints its path.
# Quick when nothing changed (cargo's own incremental build).
# Usage: build-cli.sh
set -euo pipefail
. "$(dirname "$0")/lib.sh"

target=x86_64-unknown-linux-gnu
dir="$SELFMIG_TOP/tools/selfmig"
RUSTFLAGS="-C target-feature=+crt-static" \
	cargo build --quiet --locked --release --target "$target" --manifest-path "$dir/Cargo.toml" >&2 ||
	die "cannot build the selfmig CLI (tools/selfmig)"
bin="$dir/target/$target/release/selfmig"
if command -v file >/dev/null && ! file -L "$bin" | grep -Eq "statically linked|static-pie linked"; then
	die "$bin is not static"
fi
echo "$bin"
