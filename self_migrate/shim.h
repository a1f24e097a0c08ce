/* SPDX-License-Identifier: GPL-2.0 */
/* Prototypes of shim.c, for shim.c itself and for bindgen. */
#ifndef SELF_MIGRATE_SHIM_H
#define SELF_MIGRATE_SHIM_H

unsigned long selfmig_free_block_pages(unsigned long pfn);
unsigned long selfmig_kaddr_to_pfn(const void *addr);
struct net_device;
void selfmig_dev_put(struct net_device *dev);

#endif
