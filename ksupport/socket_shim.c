// SPDX-License-Identifier: GPL-2.0
/*
 * Socket fields Rust reads through a function: struct sock's layout is not
 * bindgen's to guess. Included by the module's shim.c.
 */
#include "socket_shim.h"

/* Bytes of this socket's packets not yet released by the device (the
 * count starts at 1: the socket's own reference). */
unsigned int selfmig_sk_wmem_alloc(const struct sock *sk)
{
	return refcount_read(&sk->sk_wmem_alloc);
}
