// SPDX-License-Identifier: GPL-2.0
/*
 * The static inline page-table and mapping helpers relocate.rs needs to
 * move the loader's code to other frames, as real functions.
 */
#include <linux/mm.h>
#include <linux/vmalloc.h>
#include <asm/pgtable.h>

#include "text_shim.h"

/* The present 4 KiB kernel entry mapping addr, or NULL (none, or large). */
pte_t *selfmig_kernel_pte_4k(unsigned long addr)
{
	unsigned int level;
	pte_t *ptep = lookup_address(addr, &level);

	if (!ptep || level != PG_LEVEL_4K || !pte_present(*ptep))
		return NULL;
	return ptep;
}

/* The frame an entry maps. */
unsigned long selfmig_pte_pfn(const pte_t *ptep)
{
	return pte_pfn(READ_ONCE(*ptep));
}

/* Points an entry at another frame, keeping its permissions. */
void selfmig_pte_set_pfn(pte_t *ptep, unsigned long pfn)
{
	pte_t old = READ_ONCE(*ptep);

	set_pte(ptep, pfn_pte(pfn, pte_pgprot(old)));
}

/* A writable, non-executable mapping of count pages. */
void *selfmig_vmap_rw(struct page **pages, unsigned int count)
{
	return vmap(pages, count, VM_MAP, PAGE_KERNEL);
}

/* Takes a reference to a page unless it is free. */
bool selfmig_try_get_page(struct page *page)
{
	return get_page_unless_zero(page);
}

/* Drops a reference taken by selfmig_try_get_page(). */
void selfmig_put_page(struct page *page)
{
	put_page(page);
}
