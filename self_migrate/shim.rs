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

/// The page frame of a kernel address in the linear map or vmalloc space.
pub(crate) fn kaddr_to_pfn(addr: usize) -> u64 {
    // SAFETY: The helper only translates the address; callers pass
    // addresses of live kernel buffers.
    unsafe { bindings::selfmig_kaddr_to_pfn(addr as *const _) as u64 }
}

/// Drops a net device reference taken by `dev_get_by_index()`.
pub(crate) fn dev_put(dev: *mut bindings::net_device) {
    // SAFETY: Callers pass a device they hold a reference to.
    unsafe { bindings::selfmig_dev_put(dev) };
}
