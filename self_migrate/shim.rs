// SPDX-License-Identifier: GPL-2.0

//! Safe wrappers over `shim.c`, the static inline helpers made callable.

use crate::bindings;

/// If `pfn` starts a free buddy block, the number of pages in it; else 0.
///
/// The answer is a snapshot taken without the zone lock: the block may be
/// allocated right after. Pre-copy only uses it to skip pages that, if
/// allocated later, will be written and hence sent in a later round.
pub(crate) fn free_block_pages(pfn: u64) -> u64 {
    // SAFETY: The helper accepts any pfn; it checks the page is online.
    unsafe { bindings::selfmig_free_block_pages(pfn as _) as u64 }
}

/// If `pfn` lies in a free buddy block, the frame after that block's end;
/// else 0. A snapshot, as [`free_block_pages`].
pub(crate) fn free_block_end(pfn: u64) -> u64 {
    // SAFETY: The helper accepts any pfn; it checks each page is online.
    unsafe { bindings::selfmig_free_block_end(pfn as _) as u64 }
}

/// What frame `pfn` holds, roughly (see `selfmig_page_kind` in shim.c):
/// an index into [`PAGE_KINDS`].
pub(crate) fn page_kind(pfn: u64) -> usize {
    // SAFETY: The shim checks `pfn` and only reads the page's flags.
    let kind = unsafe { bindings::selfmig_page_kind(pfn as _) };
    usize::try_from(kind).unwrap_or(0).min(PAGE_KINDS.len() - 1)
}

/// Names of the kinds [`page_kind`] tells apart.
pub(crate) const PAGE_KINDS: [&str; 7] = [
    "other",
    "page tables",
    "slab",
    "anonymous",
    "page cache",
    "reserved",
    "free",
];

/// Whether the checkpoint hashes `pfn`'s page whatever the tracker found:
/// a page with no references that is not a compound tail (a page of a
/// multi-page allocation other than the first, or one on its way to a free
/// list).
pub(crate) fn page_unreferenced(pfn: u64) -> bool {
    // SAFETY: The helper accepts any pfn; it checks the page is online.
    unsafe { bindings::selfmig_page_unreferenced(pfn as _) }
}

/// Of the `count` frames from `pfn` (at most 64), those [`page_unreferenced`]
/// holds for, one bit each (bit 0: `pfn`).
pub(crate) fn unreferenced_mask(pfn: u64, count: u32) -> u64 {
    // SAFETY: The helper accepts any pfn; it checks each page is online.
    unsafe { bindings::selfmig_unreferenced_mask(pfn as _, count) }
}

/// Where `pfn`'s `struct page` is in the memory map's linear mapping
/// (vmemmap), or `None` for a kernel without one.
pub(crate) fn memmap_addr(pfn: u64) -> Option<u64> {
    // SAFETY: The helper only computes an address (`pfn_to_page`).
    match unsafe { bindings::selfmig_memmap_addr(pfn as _) } {
        0 => None,
        addr => Some(addr as u64),
    }
}

/// The page frame of a kernel address in the linear map or vmalloc space.
pub(crate) fn kaddr_to_pfn(addr: usize) -> u64 {
    // SAFETY: The helper only translates the address; callers pass
    // addresses of live kernel buffers.
    unsafe { bindings::selfmig_kaddr_to_pfn(addr as *const _) as u64 }
}

/// The frame of the kernel page table holding the leaf entry that maps
/// `addr`, if it is mapped.
pub(crate) fn leaf_table_pfn(addr: usize) -> Option<u64> {
    let mut level = 0u32;
    // SAFETY: Only walks the kernel page tables; callers pass addresses of
    // live kernel buffers, whose tables are not freed meanwhile.
    let entry = unsafe { bindings::lookup_address(addr as _, &mut level) };
    // Below the top level, tables are reached through the direct map.
    (!entry.is_null()).then(|| kaddr_to_pfn(entry as usize))
}

/// Drops a net device reference taken by `dev_get_by_index()`.
pub(crate) fn dev_put(dev: *mut bindings::net_device) {
    // SAFETY: Callers pass a device they hold a reference to.
    unsafe { bindings::selfmig_dev_put(dev) };
}

/// Enters an RCU read-side critical section; pair with
/// [`rcu_read_unlock`].
pub(crate) fn rcu_read_lock() {
    // SAFETY: No preconditions; the caller pairs it with an unlock.
    unsafe { bindings::selfmig_rcu_read_lock() };
}

/// Leaves the RCU read-side critical section [`rcu_read_lock`] entered.
pub(crate) fn rcu_read_unlock() {
    // SAFETY: Callers pair it with an earlier `rcu_read_lock`.
    unsafe { bindings::selfmig_rcu_read_unlock() };
}

/// The thread-group leader after `p` on the task list (`init_task` after
/// the last). Call under [`rcu_read_lock`] with a task from the list.
pub(crate) fn next_task(p: *mut bindings::task_struct) -> *mut bindings::task_struct {
    // SAFETY: Callers hold the RCU read lock and pass a listed task, which
    // RCU keeps valid.
    unsafe { bindings::selfmig_next_task(p) }
}

/// The thread after `p` in its group, or null after the last. Call under
/// [`rcu_read_lock`] with a listed task.
pub(crate) fn next_thread(p: *mut bindings::task_struct) -> *mut bindings::task_struct {
    // SAFETY: As for `next_task`.
    unsafe { bindings::selfmig_next_thread(p) }
}

/// A counted reference to a folio (a page or a compound page).
pub(crate) struct FolioRef(*mut bindings::folio);

// SAFETY: A folio reference may be used and dropped on any thread.
unsafe impl Send for FolioRef {}

impl FolioRef {
    /// A reference to the folio holding `pfn`, unless the frame has no
    /// struct page or its folio is being freed.
    ///
    /// The folio can be split or freed and reused between finding it and
    /// taking the reference; callers check afterwards that the mapping that
    /// led them here still maps `pfn`, as GUP-fast does.
    pub(crate) fn try_get(pfn: u64) -> Option<Self> {
        // SAFETY: The helper checks `pfn_valid` first.
        let folio = unsafe { bindings::selfmig_pfn_folio(pfn as _) };
        if folio.is_null() {
            return None;
        }
        // SAFETY: A valid pfn's struct page is never freed; taking a
        // reference fails on a folio whose count reached zero.
        if unsafe { bindings::selfmig_folio_try_get(folio) } {
            Some(Self(folio))
        } else {
            None
        }
    }

    /// Moves a dirty bit cleared from a page-table entry into the folio,
    /// under the folio lock (which keeps truncation out), as
    /// `zap_pte_range()` does. May sleep.
    pub(crate) fn mark_dirty(&self) {
        // SAFETY: We hold a reference; the lock is taken and released here.
        unsafe {
            bindings::selfmig_folio_lock(self.0);
            bindings::folio_mark_dirty(self.0);
            bindings::folio_unlock(self.0);
        }
    }
}

impl Drop for FolioRef {
    fn drop(&mut self) {
        // SAFETY: `try_get` took this reference.
        unsafe { bindings::selfmig_folio_put(self.0) };
    }
}

/// Logs the kernel's view of the page at `pfn` (flags, mapping, counts).
pub(crate) fn dump_page(pfn: u64) {
    // SAFETY: The helper checks `pfn_valid` first.
    unsafe { bindings::selfmig_dump_pfn(pfn as _) };
}

/// Takes a reference on a task. Call with a task that is valid (e.g. under
/// [`rcu_read_lock`]).
pub(crate) fn get_task(p: *mut bindings::task_struct) {
    // SAFETY: Callers pass a valid task.
    unsafe { bindings::selfmig_get_task(p) };
}

/// Drops a reference taken by [`get_task`].
pub(crate) fn put_task(p: *mut bindings::task_struct) {
    // SAFETY: Callers pass a task they hold a reference on.
    unsafe { bindings::selfmig_put_task(p) };
}

/// A task's address space pointer, for comparison only (it may change or
/// go away right after). Call with a valid task.
pub(crate) fn task_mm(p: *mut bindings::task_struct) -> *mut bindings::mm_struct {
    // SAFETY: Callers pass a valid task; the helper only reads a field.
    unsafe { bindings::selfmig_task_mm(p) }
}

/// A task's scheduling parameters.
pub(crate) struct Sched {
    /// Scheduling policy (`SCHED_*`).
    pub(crate) policy: u32,
    /// Nice value.
    pub(crate) nice: i32,
    /// Real-time priority.
    pub(crate) rt_priority: u32,
}

/// A task's scheduling parameters. Call with a valid task.
pub(crate) fn task_sched(p: *mut bindings::task_struct) -> Sched {
    let mut s = Sched {
        policy: 0,
        nice: 0,
        rt_priority: 0,
    };
    // SAFETY: Callers pass a valid task; the helper writes the three
    // out-parameters, which live on this stack.
    unsafe { bindings::selfmig_task_sched(p, &mut s.policy, &mut s.nice, &mut s.rt_priority) };
    s
}

/// The physical address of the page-table root of `mm`. Call with an
/// address space you hold a reference on.
pub(crate) fn mm_pgd_pa(mm: *mut bindings::mm_struct) -> u64 {
    // SAFETY: Callers hold a reference on `mm`, which keeps its `pgd`.
    unsafe { bindings::selfmig_mm_pgd_pa(mm) as u64 }
}

#[cfg(CONFIG_MMU_NOTIFIER)]
/// Disables interrupts on this CPU; returns the state to restore with
/// [`irq_restore`].
pub(crate) fn irq_save() -> u64 {
    // SAFETY: No preconditions; the caller pairs it with `irq_restore`.
    unsafe { bindings::selfmig_irq_save() as u64 }
}

#[cfg(CONFIG_MMU_NOTIFIER)]
/// Restores the interrupt state [`irq_save`] returned.
pub(crate) fn irq_restore(flags: u64) {
    // SAFETY: `flags` came from `irq_save` on this CPU.
    unsafe { bindings::selfmig_irq_restore(flags as _) };
}
