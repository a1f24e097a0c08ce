# SPDX-License-Identifier: GPL-2.0
# Tokens for the two-guest tests (source after scripts/vm.sh): the harness
# plays the provider. harness_init has made $HARNESS_DIR.
#
#   provider_key                      a fresh provider key (hex) in
#                                     $HARNESS_DIR/provider.key; prints it
#   mint_token NAME [MINT ARGS...]    a token bundle in $HARNESS_DIR/NAME.token
#                                     (hex); prints it. Default grant: the
#                                     guests' RAM (SELFMIG_MEM, 512 MiB),
#                                     2 vCPUs, valid for an hour.
#   loader_key GUEST                  gives GUEST's loader the provider key

TOKEN_CLI=${TOKEN_CLI:-$("$SELFMIG_TOP/scripts/build-cli.sh")}

provider_key() {
	[ -s "$HARNESS_DIR/provider.key" ] ||
		od -An -tx1 -N32 /dev/urandom | tr -d ' \n' > "$HARNESS_DIR/provider.key"
	cat "$HARNESS_DIR/provider.key"
}

mint_token() {
	local name=$1 out
	shift
	provider_key > /dev/null
	out="$HARNESS_DIR/$name.token"
	local args=("$@")
	[[ " ${args[*]} " == *" --ram-mib "* || " ${args[*]} " == *" --pages "* ]] ||
		args+=(--ram-mib "${SELFMIG_MEM:-512}")
	[[ " ${args[*]} " == *" --vcpus "* ]] || args+=(--vcpus 2)
	[[ " ${args[*]} " == *" --expir"* ]] || args+=(--expires-in 3600)
	"$TOKEN_CLI" token mint --key "$HARNESS_DIR/provider.key" --out "$out" --force "${args[@]}" 2>/dev/null ||
		return 1
	cat "$out"
}

loader_key() {
	vm_exec "$1" "echo $(provider_key) > /sys/kernel/inflate_loader/key" >/dev/null
}
