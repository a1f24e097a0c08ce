// SPDX-License-Identifier: GPL-2.0
/*
 * The static inline kernel helpers inflate_loader needs, as real functions
 * (bindgen cannot reach static inlines): the crypto API's, for
 * ksupport/crypto.rs, a socket field, for ksupport/listener.rs, and the
 * page-table helpers, for ksupport/pagetable.rs and its users, and the
 * mapping helpers relocate.rs needs.
 */
#include "../ksupport/crypto_shim.c"
#include "../ksupport/socket_shim.c"
#include "../ksupport/paging_shim.c"
#include "text_shim.c"
