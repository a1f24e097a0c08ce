// SPDX-License-Identifier: GPL-2.0
/*
 * The static inline kernel helpers self_migrate needs, as real functions
 * (bindgen cannot reach static inlines). Wrapped by shim.rs.
 */
#include <linux/memory_hotplug.h>
#include <linux/mm.h>
#include <linux/netdevice.h>
#include <linux/page-flags.h>

#include "shim.h"

/*
 * If pfn starts a free buddy block, the number of pages in it, else 0.
 * Unlocked: the answer may be stale by the time it is used, which is fine
 * for pre-copy (a page allocated later is written, hence dirty, hence sent).
 */
unsigned long selfmig_free_block_pages(unsigned long pfn)
{
	struct page *page = pfn_to_online_page(pfn);
	unsigned long order;

	if (!page || !PageBuddy(page))
		return 0;
	order = READ_ONCE(page_private(page));
	if (order > MAX_PAGE_ORDER)
		return 0;
	return 1UL << order;
}

/*
 * The page frame of a kernel address: in the linear map, or mapped page by
 * page (vmalloc, modules).
 */
unsigned long selfmig_kaddr_to_pfn(const void *addr)
{
	if (virt_addr_valid(addr))
		return __pa(addr) >> PAGE_SHIFT;
	return vmalloc_to_pfn(addr);
}

/* Drops a reference taken by dev_get_by_index(). */
void selfmig_dev_put(struct net_device *dev)
{
	dev_put(dev);
}

/* The crypto API's static inline helpers (ksupport/crypto.rs). */
#include "../ksupport/crypto_shim.c"
