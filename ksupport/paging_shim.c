// SPDX-License-Identifier: GPL-2.0
/*
 * The static inline kernel helpers the page-table code in ksupport
 * (pagetable.rs, split.rs, text_poke.rs, through mmu.rs) needs, as real
 * functions. Included by each module's shim.c, so each module has its own
 * copy, and its own static call below.
 */
#include <linux/mm.h>
#include <linux/pagemap.h>
#include <linux/page-flags.h>
#include <linux/static_call.h>
#include <asm/tlbflush.h>

#include "paging_shim.h"

/* The physical address of the page-table root this CPU runs on. */
unsigned long selfmig_cr3_pa(void)
{
	return __read_cr3() & CR3_ADDR_MASK;
}

/* Whether the kernel runs with 5-level paging. */
bool selfmig_la57(void)
{
	return pgtable_l5_enabled();
}

/* Flushes this CPU's TLB, global entries included (an IPI callback). */
void selfmig_flush_tlb_all_local(void *unused)
{
	__flush_tlb_all();
}

/* Whether pfn is an online frame holding a page table. */
bool selfmig_page_is_table(unsigned long pfn)
{
	struct page *page = pfn_to_online_page(pfn);

	return page && PageTable(page);
}

/*
 * Whether pfn holds a slab, or page cache that no process maps: memory
 * written only through the direct map from now on, where every new
 * mapping of it, its freeing and any reuse change its struct page (see
 * inflate_loader/unwritten.rs). Read without locks: a page changing state
 * meanwhile changes its struct page too, which the caller watches.
 */
bool selfmig_direct_map_only(unsigned long pfn)
{
	struct page *page = pfn_to_online_page(pfn);
	struct folio *folio;

	if (!page || PageReserved(page) || PageTable(page))
		return false;
	if (PageSlab(page))
		return true;
	folio = page_folio(page);
	return !folio_test_anon(folio) && folio_mapping(folio) &&
	       !folio_mapped(folio);
}

/*
 * A static call of this module, whose trampoline (in this module's text)
 * static_call_update() rewrites through text_poke(): text_poke.rs pokes it
 * to find the page table of text_poke()'s temporary mapping.
 * DEFINE_STATIC_CALL and static_call_update are macros, hence here.
 */
static void selfmig_poke_a(void)
{
}

static void selfmig_poke_b(void)
{
}

DEFINE_STATIC_CALL(selfmig_poke, selfmig_poke_a);

/* Rewrites the trampoline twice (to b and back), through text_poke(). */
void selfmig_text_poke_probe(void)
{
	static_call_update(selfmig_poke, selfmig_poke_b);
	static_call_update(selfmig_poke, selfmig_poke_a);
}
