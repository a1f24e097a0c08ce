// SPDX-License-Identifier: GPL-2.0
/*
 * The static inline kernel helpers inflate_loader needs, as real functions
 * (bindgen cannot reach static inlines): the crypto API's, for
 * ksupport/crypto.rs, and a socket field, for ksupport/listener.rs.
 */
#include "../ksupport/crypto_shim.c"
#include "../ksupport/socket_shim.c"
