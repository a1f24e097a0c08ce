// SPDX-License-Identifier: GPL-2.0
/*
 * The static inline kernel helpers self_migrate needs, as real functions
 * (bindgen cannot reach static inlines). Wrapped by shim.rs.
 */
#include <linux/memory_hotplug.h>
#include <linux/mm.h>
#include <linux/netdevice.h>
#include <linux/page-flags.h>
#include <linux/pagemap.h>
#include <linux/rcupdate.h>
#include <linux/sched/mm.h>
#include <linux/sched/signal.h>
#include <linux/virtio.h>
#include <asm/tlbflush.h>

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
 * The end of the free buddy block that holds pfn (not necessarily as its
 * first frame), or 0 if pfn is not free in the buddy allocator. A free
 * block of order k starts at a frame aligned to 2^k, so its first frame is
 * pfn rounded down to some power of two. Unlocked, like
 * selfmig_free_block_pages().
 */
unsigned long selfmig_free_block_end(unsigned long pfn)
{
	unsigned int order;

	for (order = 0; order <= MAX_PAGE_ORDER; order++) {
		unsigned long head = pfn & ~((1UL << order) - 1);
		unsigned long size = selfmig_free_block_pages(head);

		if (size && head + size > pfn)
			return head + size;
	}
	return 0;
}

/*
 * Whether pfn's page has no references and is not the tail of a compound
 * page: a free page on a per-CPU list (or on its way there), or a page of a
 * multi-page allocation other than the first.
 */
bool selfmig_page_unreferenced(unsigned long pfn)
{
	struct page *page = pfn_to_online_page(pfn);

	if (!page)
		return false;
	return !PageTail(page) && !page_ref_count(page);
}

/*
 * Of the count frames from pfn (at most 64), those selfmig_page_unreferenced()
 * holds for, one bit each (bit 0: pfn).
 */
unsigned long long selfmig_unreferenced_mask(unsigned long pfn, unsigned int count)
{
	unsigned long long mask = 0;
	unsigned int i;

	for (i = 0; i < count && i < 64; i++)
		if (selfmig_page_unreferenced(pfn + i))
			mask |= 1ULL << i;
	return mask;
}

/*
 * Where pfn's struct page is in the memory map's linear mapping (vmemmap),
 * or 0 without one (the memory map is then reached through its sections).
 */
unsigned long selfmig_memmap_addr(unsigned long pfn)
{
	if (!IS_ENABLED(CONFIG_SPARSEMEM_VMEMMAP))
		return 0;
	return (unsigned long)pfn_to_page(pfn);
}

/*
 * What a frame holds, roughly, for the checkpoint's account of what it
 * staged: 0 other, 1 page table, 2 slab, 3 anonymous, 4 page cache,
 * 5 reserved (kernel image, memblock allocations such as the memory map),
 * 6 free or unreferenced.
 */
int selfmig_page_kind(unsigned long pfn)
{
	struct page *page = pfn_to_online_page(pfn);

	if (!page)
		return 0;
	if (PageTable(page))
		return 1;
	if (PageSlab(page))
		return 2;
	if (PageReserved(page))
		return 5;
	if (!page_ref_count(compound_head(page)))
		return 6;
	if (PageAnon(page))
		return 3;
	if (page_folio(page)->mapping)
		return 4;
	return 0;
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

/* rcu_read_lock() and rcu_read_unlock(), for walking the task list. */
void selfmig_rcu_read_lock(void)
{
	rcu_read_lock();
}

void selfmig_rcu_read_unlock(void)
{
	rcu_read_unlock();
}

/* The next thread-group leader after p (under RCU; init_task ends it). */
struct task_struct *selfmig_next_task(struct task_struct *p)
{
	return next_task(p);
}

/* The next thread of p's group, or NULL after the last (under RCU). */
struct task_struct *selfmig_next_thread(struct task_struct *p)
{
	return __next_thread(p);
}

/* The folio of pfn, or NULL when pfn has no struct page. */
struct folio *selfmig_pfn_folio(unsigned long pfn)
{
	return pfn_valid(pfn) ? pfn_folio(pfn) : NULL;
}

/* Takes a reference on a folio unless it is being freed. */
bool selfmig_folio_try_get(struct folio *folio)
{
	return folio_try_get(folio);
}

/* Drops a reference taken by selfmig_folio_try_get(). */
void selfmig_folio_put(struct folio *folio)
{
	folio_put(folio);
}

/* Locks a folio, sleeping until it is free. */
void selfmig_folio_lock(struct folio *folio)
{
	folio_lock(folio);
}

/*
 * A task's address space and scheduling parameters. Read here, in C:
 * bindgen's layout of struct task_struct does not match the kernel's.
 */
struct mm_struct *selfmig_task_mm(struct task_struct *p)
{
	return READ_ONCE(p->mm);
}

void selfmig_task_sched(struct task_struct *p, unsigned int *policy, int *nice,
			unsigned int *rt_priority)
{
	*policy = READ_ONCE(p->policy);
	*nice = task_nice(p);
	*rt_priority = READ_ONCE(p->rt_priority);
}

/* The physical address of an address space's page-table root. */
unsigned long selfmig_mm_pgd_pa(struct mm_struct *mm)
{
	return __pa(mm->pgd);
}

/* local_irq_save() and local_irq_restore(). */
unsigned long selfmig_irq_save(void)
{
	unsigned long flags;

	local_irq_save(flags);
	return flags;
}

void selfmig_irq_restore(unsigned long flags)
{
	local_irq_restore(flags);
}

/* Takes and drops a reference on a task. */
void selfmig_get_task(struct task_struct *p)
{
	get_task_struct(p);
}

void selfmig_put_task(struct task_struct *p)
{
	put_task_struct(p);
}

/* Logs what the kernel knows of pfn's page (for a tracker miss). */
void selfmig_dump_pfn(unsigned long pfn)
{
	if (pfn_valid(pfn))
		dump_page(pfn_to_page(pfn), "selfmig: paging tracker missed a write");
}

/* Locks and unlocks a virtio device's list of virtqueues. */
void selfmig_vqs_lock(struct virtio_device *vdev)
{
	spin_lock(&vdev->vqs_list_lock);
}

void selfmig_vqs_unlock(struct virtio_device *vdev)
{
	spin_unlock(&vdev->vqs_list_lock);
}

/*
 * Sets whether the PM core's device callbacks skip @dev (as they skip
 * devices handled by syscore operations); returns the previous setting.
 */
bool selfmig_pm_syscore(struct device *dev, bool skip)
{
	bool was = dev->power.syscore;

	dev_pm_syscore_device(dev, skip);
	return was;
}

/*
 * Calls @visit(pfn, order, data) for every block on this CPU's per-CPU free
 * lists. Only with interrupts off and the other CPUs offline (their lists
 * are drained as they go), as in the checkpoint: nothing else touches the
 * lists then. A list's order follows from its index as pindex_to_order()
 * (mm/page_alloc.c, static) computes it.
 */
void selfmig_pcp_for_each(void (*visit)(unsigned long pfn, unsigned int order, void *data),
			  void *data)
{
	int nid;

	for_each_online_node(nid) {
		struct pglist_data *pgdat = NODE_DATA(nid);
		struct zone *zone;

		for (zone = pgdat->node_zones; zone < pgdat->node_zones + MAX_NR_ZONES; zone++) {
			struct per_cpu_pages *pcp;
			unsigned int i;

			if (!populated_zone(zone) || !zone->per_cpu_pageset)
				continue;
			pcp = this_cpu_ptr(zone->per_cpu_pageset);
			for (i = 0; i < NR_PCP_LISTS; i++) {
				unsigned int order = i / MIGRATE_PCPTYPES;
				struct page *page;

#ifdef CONFIG_TRANSPARENT_HUGEPAGE
				if (i >= NR_LOWORDER_PCP_LISTS)
					order = HPAGE_PMD_ORDER;
#endif
				list_for_each_entry(page, &pcp->lists[i], pcp_list)
					visit(page_to_pfn(page), order, data);
			}
		}
	}
}

/* The crypto API's static inline helpers (ksupport/crypto.rs). */
#include "../ksupport/crypto_shim.c"

/* Page-table helpers shared with inflate_loader (ksupport/pagetable.rs). */
#include "../ksupport/paging_shim.c"
