// SPDX-License-Identifier: GPL-2.0

//! Device DMA and the image.
//!
//! With `swiotlb=force`, every DMA-API device reads and writes through the
//! software IO TLB's bounce buffers, and the CPU copies between them and
//! the real buffers, where the trackers see it. The bounce buffers
//! themselves change with every packet, including the migration's own, so
//! pre-copy would never converge if they were part of the image. Their
//! contents do not matter across a checkpoint: devices are frozen (no DMA in
//! flight) and re-initialised on resume. They are left out.

use crate::bindings;
use core::ffi::c_void;

/// Records the default bounce-buffer pool of the first PCI device that has
/// one into the `Option<(u64, u64)>` behind `data`; stops the walk then.
///
/// # Safety
///
/// `dev` must be a live device and `data` a `*mut Option<(u64, u64)>`, as
/// `bus_for_each_dev()` passes from [`swiotlb_pool`].
unsafe extern "C" fn find_pool(dev: *mut bindings::device, data: *mut c_void) -> i32 {
    // SAFETY: By the function's safety requirements.
    let (dev, out) = unsafe { (&*dev, &mut *data.cast::<Option<(u64, u64)>>()) };
    let mem = dev.dma_io_tlb_mem;
    if mem.is_null() {
        return 0;
    }
    // SAFETY: A device's IO TLB pointer stays valid for the device's
    // lifetime; the default pool's bounds never change after boot.
    let pool = unsafe { &(*mem).defpool };
    if pool.end <= pool.start {
        return 0;
    }
    *out = Some((pool.start / 4096, pool.end.div_ceil(4096)));
    1
}

/// The frames `[start, end)` of the software IO TLB's default pool, if a
/// PCI device uses one.
pub(crate) fn swiotlb_pool() -> Option<(u64, u64)> {
    let mut found: Option<(u64, u64)> = None;
    // SAFETY: `pci_bus_type` is a static bus type; `find_pool` matches the
    // callback type and gets `&mut found`, which outlives the call.
    unsafe {
        bindings::bus_for_each_dev(
            core::ptr::addr_of!(bindings::pci_bus_type),
            core::ptr::null_mut(),
            (&mut found as *mut Option<(u64, u64)>).cast(),
            Some(find_pool),
        )
    };
    found
}
