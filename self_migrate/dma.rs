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
//!
//! The paging tracker sees device writes only through those copies, so it
//! requires every device with a driver to have its DMA bounced
//! (`swiotlb=force`) and every virtio device to go through the DMA API at
//! all (`VIRTIO_F_ACCESS_PLATFORM`, QEMU's `iommu_platform=on`): a virtio
//! device without it writes guest memory directly, behind the tracker's
//! back. [`check_paging`] refuses a start that would break this.
//!
//! One kind of device write is never bounced: into coherent DMA memory,
//! which is where virtio keeps its rings. The device writes the used ring
//! (and a packed ring's descriptors) directly. [`DeviceRings`] records
//! where every virtqueue's rings are, and the paging tracker treats those
//! frames as changed in every harvest. (At the checkpoint other virtio
//! devices are frozen, which frees their rings; the frames stay marked so
//! that the checkpoint's copy matches what the target will hold. A NIC
//! stays live, see [`crate::live_nic`], and its rings are copied as they
//! are.)

use crate::bindings;
use crate::devices::{bound_virtio, driver_name, for_each_pci_device, name};
use core::ffi::c_void;
use kernel::c_str;
use kernel::prelude::*;

/// Feature bit: the device uses the platform's DMA translation (the DMA
/// API) for every access.
const VIRTIO_F_ACCESS_PLATFORM: u32 = 33;

/// Finds a child of a PCI device that is a bound virtio device without
/// `VIRTIO_F_ACCESS_PLATFORM`; stores it in the `*mut device` behind
/// `data` and stops the walk.
///
/// # Safety
///
/// `child` must be a live device and `data` a `*mut *mut device`, as
/// `device_for_each_child()` passes from [`check_device`].
unsafe extern "C" fn find_direct_virtio(child: *mut bindings::device, data: *mut c_void) -> i32 {
    // SAFETY: By the function's safety requirements.
    let Some(vdev) = (unsafe { bound_virtio(child) }) else {
        return 0;
    };
    // SAFETY: `bound_virtio` returns the live device containing `child`.
    if unsafe { (*vdev).features } & (1u64 << VIRTIO_F_ACCESS_PLATFORM) != 0 {
        return 0;
    }
    // SAFETY: By the function's safety requirements.
    unsafe { *data.cast::<*mut bindings::device>() = child };
    1
}

/// Most ring ranges recorded for one migration.
const MAX_RINGS: usize = 256;

/// Frame ranges `(first, count)` holding virtqueue rings, recorded over a
/// migration.
pub(crate) struct DeviceRings {
    ranges: KVVec<(u64, u64)>,
    /// More rings than [`MAX_RINGS`] were found.
    overflow: bool,
}

impl DeviceRings {
    /// An empty record with room for [`MAX_RINGS`] ranges.
    pub(crate) fn new() -> Result<Self> {
        Ok(Self {
            ranges: KVVec::with_capacity(MAX_RINGS, GFP_KERNEL)?,
            overflow: false,
        })
    }

    /// Adds the rings of every virtio device behind a PCI device to the
    /// record (rings seen before stay). Process context. Fails with
    /// `E2BIG` when there are more than [`MAX_RINGS`].
    pub(crate) fn collect(&mut self) -> Result {
        // SAFETY: `rings_of_device` takes a `*mut DeviceRings`: `self`,
        // which outlives the call.
        unsafe { for_each_pci_device((self as *mut Self).cast(), rings_of_device) };
        match self.overflow {
            true => Err(E2BIG),
            false => Ok(()),
        }
    }

    /// The recorded ranges.
    pub(crate) fn ranges(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.ranges.iter().copied()
    }

    /// Records the frames of `len` bytes of ring at DMA address `addr`
    /// (with the DMA API going straight to memory, a physical address).
    fn add(&mut self, addr: u64, len: u64) {
        let first = addr >> 12;
        let range = (first, (addr + len).div_ceil(4096) - first);
        if self.ranges.contains(&range) {
            return;
        }
        if self.ranges.len() == self.ranges.capacity() {
            self.overflow = true;
            return;
        }
        // Within capacity: no allocation.
        let _ = self.ranges.push(range, GFP_NOWAIT);
    }
}

/// Records the rings of the virtio devices among a PCI device's children.
///
/// # Safety
///
/// `dev` must be a live device and `data` a `*mut DeviceRings`, as
/// `bus_for_each_dev()` passes from [`DeviceRings::collect`].
unsafe extern "C" fn rings_of_device(dev: *mut bindings::device, data: *mut c_void) -> i32 {
    // SAFETY: `dev` is live for the walk; the callback matches and gets
    // `data`, as required.
    unsafe { bindings::device_for_each_child(dev, data, Some(rings_of_child)) };
    0
}

/// Records the rings of one child device if it is a bound virtio device.
///
/// # Safety
///
/// `child` must be a live device and `data` a `*mut DeviceRings`.
unsafe extern "C" fn rings_of_child(child: *mut bindings::device, data: *mut c_void) -> i32 {
    // SAFETY: By the function's safety requirements.
    let Some(vdev) = (unsafe { bound_virtio(child) }) else {
        return 0;
    };
    // SAFETY: By the function's safety requirements.
    let rings = unsafe { &mut *data.cast::<DeviceRings>() };
    // SAFETY: The list lock keeps the virtqueue list stable while it is
    // walked; every entry is the `list` member (the first) of a live
    // `struct virtqueue`.
    unsafe {
        bindings::selfmig_vqs_lock(vdev);
        let head = core::ptr::addr_of_mut!((*vdev).vqs);
        let mut node = (*head).next;
        while node != head {
            let vq = node.cast::<bindings::virtqueue>();
            let num = u64::from(bindings::virtqueue_get_vring_size(vq));
            // Generous bounds: a split ring's areas are smaller, a packed
            // ring's descriptors are 16 bytes each.
            let len = 16 * num + 64;
            rings.add(bindings::virtqueue_get_desc_addr(vq), len);
            rings.add(bindings::virtqueue_get_avail_addr(vq), len);
            rings.add(bindings::virtqueue_get_used_addr(vq), len);
            node = (*node).next;
        }
        bindings::selfmig_vqs_unlock(vdev);
    }
    0
}

/// What [`check_device`] found so far.
struct Scan {
    /// Devices that break the precondition.
    offenders: u32,
    /// The first of them, its virtio child if that is the culprit, and
    /// why; the devices are held by a reference.
    first: Option<(*mut bindings::device, *mut bindings::device, &'static str)>,
}

/// Checks one PCI device; keeps a reference to the first offender.
///
/// # Safety
///
/// `dev` must be a live device and `data` a `*mut Scan`, as
/// `bus_for_each_dev()` passes from [`check_paging`].
unsafe extern "C" fn check_device(dev: *mut bindings::device, data: *mut c_void) -> i32 {
    // SAFETY: By the function's safety requirements.
    let (d, scan) = unsafe { (&*dev, &mut *data.cast::<Scan>()) };
    if d.driver.is_null() {
        // No driver, no DMA.
        return 0;
    }
    let mut direct: *mut bindings::device = core::ptr::null_mut();
    // SAFETY: `dev` is live for the walk; the callback matches and gets a
    // `*mut *mut device` that outlives the call.
    unsafe {
        bindings::device_for_each_child(
            dev,
            (&mut direct as *mut *mut bindings::device).cast(),
            Some(find_direct_virtio),
        )
    };
    let mem = d.dma_io_tlb_mem;
    // SAFETY: A device's IO TLB pointer stays valid for its lifetime.
    let bounced = !mem.is_null() && unsafe { (*mem).force_bounce };
    let reason = if !direct.is_null() {
        "it writes memory outside the DMA API (virtio without VIRTIO_F_ACCESS_PLATFORM)"
    } else if !bounced {
        "its DMA is not bounced through swiotlb (boot with swiotlb=force)"
    } else {
        return 0;
    };
    scan.offenders += 1;
    if scan.first.is_none() {
        // SAFETY: Both devices are live here; the references keep them so
        // until `check_paging` drops them.
        unsafe {
            bindings::get_device(dev);
            if !direct.is_null() {
                bindings::get_device(direct);
            }
        }
        scan.first = Some((dev, direct, reason));
    }
    0
}

/// Checks that every PCI device's DMA is visible to the paging tracker.
/// Fails with `EOPNOTSUPP` after one dmesg line naming the first device
/// that breaks it and how many do.
pub(crate) fn check_paging(op: &str) -> Result {
    let mut scan = Scan {
        offenders: 0,
        first: None,
    };
    // SAFETY: `check_device` takes a `*mut Scan`: `scan`, which outlives
    // the call.
    unsafe { for_each_pci_device((&mut scan as *mut Scan).cast(), check_device) };
    let Some((dev, child, reason)) = scan.first else {
        return Ok(());
    };
    // SAFETY: `check_device` holds a reference on both devices.
    let (pci, pci_driver) = unsafe { (name(dev), driver_name(dev)) };
    let (virtio, virtio_driver) = match child.is_null() {
        // SAFETY: As above.
        false => unsafe { (name(child), driver_name(child)) },
        true => (c_str!("-"), c_str!("-")),
    };
    pr_warn!(
        "{}: the paging tracker cannot see DMA of device {} ({}; virtio {} {}): {}; {} device(s) in all; use tracker=hash, or give virtio devices iommu_platform=on\n",
        op,
        pci,
        pci_driver,
        virtio,
        virtio_driver,
        reason,
        scan.offenders
    );
    // SAFETY: Drops the references `check_device` took.
    unsafe {
        if !child.is_null() {
            bindings::put_device(child);
        }
        bindings::put_device(dev);
    }
    Err(crate::errno::errno(
        crate::proto::uapi::ControlError::DmaOutsideTracker.errno(),
    ))
}

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
    // SAFETY: `find_pool` takes a `*mut Option<(u64, u64)>`: `found`,
    // which outlives the call.
    unsafe { for_each_pci_device((&mut found as *mut Option<(u64, u64)>).cast(), find_pool) };
    found
}
