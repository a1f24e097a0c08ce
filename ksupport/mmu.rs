// SPDX-License-Identifier: GPL-2.0

//! The MMU state the page-table code reads and the TLB flush it needs,
//! through `paging_shim.c`.

use crate::bindings;

/// The physical address of the page-table root this CPU runs on.
pub(crate) fn cr3_pa() -> u64 {
    // SAFETY: Reading CR3 has no preconditions in kernel mode.
    unsafe { bindings::selfmig_cr3_pa() as u64 }
}

/// Whether the kernel runs with 5-level paging.
pub(crate) fn la57() -> bool {
    // SAFETY: Reads a variable set at boot.
    unsafe { bindings::selfmig_la57() }
}

/// Whether frame `pfn` holds a page table.
pub(crate) fn page_is_table(pfn: u64) -> bool {
    // SAFETY: The helper checks that `pfn` is online; it reads flags only.
    unsafe { bindings::selfmig_page_is_table(pfn as _) }
}

/// Whether frame `pfn` holds a slab, or page cache that no process maps
/// (see `paging_shim.c`). A hint: the page may change state right after.
#[allow(dead_code, reason = "used by inflate_loader only")]
pub(crate) fn direct_map_only(pfn: u64) -> bool {
    // SAFETY: The helper checks that `pfn` is online and only reads the
    // page's state; a stale answer is the caller's to tolerate.
    unsafe { bindings::selfmig_direct_map_only(pfn as _) }
}

/// Flushes the TLB of every online CPU, global entries included, and waits
/// until all have.
pub(crate) fn flush_tlb_everywhere() {
    // SAFETY: The callback runs in IPI context on each online CPU (and
    // directly on this one); `wait` makes this return after all ran.
    unsafe {
        bindings::on_each_cpu_cond_mask(
            None,
            Some(bindings::selfmig_flush_tlb_all_local),
            core::ptr::null_mut(),
            true,
            core::ptr::addr_of!(bindings::__cpu_online_mask),
        )
    };
}
