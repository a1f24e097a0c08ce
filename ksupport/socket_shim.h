/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Prototypes of socket_shim.c, for the shim itself and for bindgen (the
 * loader's bindings_helper.h includes this header).
 */
#ifndef SELFMIG_SOCKET_SHIM_H
#define SELFMIG_SOCKET_SHIM_H

#include <net/sock.h>

unsigned int selfmig_sk_wmem_alloc(const struct sock *sk);

#endif
