// SPDX-License-Identifier: GPL-2.0
/*
 * The static inline kernel helpers inflate_loader needs, as real functions
 * (bindgen cannot reach static inlines): so far only the crypto API's, for
 * ksupport/crypto.rs.
 */
#include "../ksupport/crypto_shim.c"
