// SPDX-License-Identifier: GPL-2.0

//! Stopping this machine's devices before the jump.
//!
//! Hibernation's restore quiesces every device
//! (`dpm_suspend_start(PMSG_QUIESCE)` and `dpm_suspend_end()`) so that none
//! writes memory once the image is in place. Under TCG that takes 14-18 ms,
//! nearly all of it virtio-net's freeze tearing down queues, interrupts and
//! receive buffers that nothing will use again: the image's own restore
//! resets the devices and sets them up from scratch. When every PCI device
//! with a driver is a virtio device, a reset of each (device status 0: the
//! device stops using its queues and raises nothing) is all the jump needs.
//! With any other driver bound, the full quiesce runs.

use crate::bindings;
use crate::devices::{self, bound_virtio, driver_name, for_each_pci_device};
use crate::failure::Failure;
use crate::pm::{self, Msg};
use crate::rehearsal;
use core::ffi::c_void;
use kernel::prelude::*;

/// Virtio devices at most (more: the full quiesce).
const MAX_VIRTIO: usize = 16;

/// What the scan of PCI devices found.
struct Scan {
    /// The virtio devices, each held by a reference.
    virtio: KVec<*mut bindings::virtio_device>,
    /// Whether a PCI device has another driver (or too many virtio ones).
    other: bool,
}

/// How the devices were stopped.
pub(crate) enum Stopped {
    /// Every device with a driver was a virtio device; these were reset.
    Reset(KVec<*mut bindings::virtio_device>),
    /// The PM core quiesced every device.
    Quiesced,
}

/// Records the bound virtio device `child` is, if it is one.
///
/// # Safety
///
/// `child` must be a live device and `data` a `*mut Scan`, as
/// `device_for_each_child()` passes from [`scan_device`].
unsafe extern "C" fn scan_child(child: *mut bindings::device, data: *mut c_void) -> i32 {
    // SAFETY: By the function's safety requirements.
    let scan = unsafe { &mut *data.cast::<Scan>() };
    // SAFETY: As above.
    if let Some(vdev) = unsafe { bound_virtio(child) } {
        if scan.virtio.len() < scan.virtio.capacity() {
            // SAFETY: A live device; the reference is dropped by
            // `release` (or stays with a kernel that is left behind).
            unsafe { bindings::get_device(child) };
            // Within capacity: no allocation.
            let _ = scan.virtio.push(vdev, GFP_NOWAIT);
        } else {
            scan.other = true;
        }
    }
    0
}

/// Sorts one PCI device: no driver (no DMA), virtio-pci (its virtio child
/// is recorded) or another driver.
///
/// # Safety
///
/// `dev` must be a live PCI device and `data` a `*mut Scan`, as
/// `bus_for_each_dev()` passes from [`stop`].
unsafe extern "C" fn scan_device(dev: *mut bindings::device, data: *mut c_void) -> i32 {
    // SAFETY: By the function's safety requirements.
    let driver = unsafe { driver_name(dev) };
    match driver.as_bytes() {
        b"none" => {}
        b"virtio-pci" => {
            // SAFETY: `dev` is live; `scan_child` takes the same `data`.
            unsafe { bindings::device_for_each_child(dev, data, Some(scan_child)) };
        }
        _ => {
            // SAFETY: By the function's safety requirements.
            unsafe { (*data.cast::<Scan>()).other = true };
        }
    }
    0
}

/// Drops the references the scan took.
fn release(virtio: &KVec<*mut bindings::virtio_device>) {
    for &vdev in virtio.iter() {
        // SAFETY: The scan took a reference on each device.
        unsafe { bindings::put_device(core::ptr::addr_of_mut!((*vdev).dev)) };
    }
}

/// Stops every device from writing memory. Process context, with the
/// system sleep lock held.
pub(crate) fn stop() -> Result<Stopped, Failure> {
    let mut scan = Scan {
        virtio: KVec::with_capacity(MAX_VIRTIO, GFP_KERNEL)
            .map_err(|_| Failure::new(ENOMEM, "cannot list the devices"))?,
        other: false,
    };
    // SAFETY: `scan_device` takes a `*mut Scan`, which outlives the walk.
    unsafe { for_each_pci_device((&mut scan as *mut Scan).cast(), scan_device) };
    if !scan.other {
        for &vdev in scan.virtio.iter() {
            // SAFETY: A live, bound virtio device (referenced).
            unsafe { bindings::virtio_reset_device(vdev) };
        }
        return Ok(Stopped::Reset(scan.virtio));
    }
    release(&scan.virtio);
    if let Err(e) = pm::dpm_suspend_start(Msg::Quiesce) {
        pm::dpm_resume_end(Msg::Recover);
        return Err(Failure::new(e, "a device refused to quiesce"));
    }
    if let Err(e) = pm::dpm_suspend_end(Msg::Quiesce) {
        pm::dpm_resume_start(Msg::Recover);
        pm::dpm_resume_end(Msg::Recover);
        return Err(Failure::new(e, "a device refused to quiesce (late)"));
    }
    Ok(Stopped::Quiesced)
}

/// Rehearses the jump and the image's resume on this machine's devices
/// (see [`crate::rehearsal`]): every device frozen and, with the system
/// core suspended and resumed in between, restored as the resumed image
/// restores them (`PMSG_RESTORE`), which also runs what [`stop`] runs. The
/// image is the same kernel build at the same addresses, so under an
/// emulator that translates code its resume finds that code translated.
pub(crate) fn rehearse() -> Result<rehearsal::Times, Failure> {
    if !devices::virtio_pm_ok("not rehearsing the image's resume") {
        return Err(Failure::new(
            crate::errno::errno(crate::proto::uapi::EOPNOTSUPP),
            "a virtio driver cannot freeze and restore its device",
        ));
    }
    let _sleep = pm::SleepLock::lock();
    let _rcu = pm::ExpeditedRcu::start();
    rehearsal::rehearse(Msg::Restore, || {})
}

/// Brings the devices back after a jump that did not happen.
pub(crate) fn resume(stopped: Stopped) {
    match stopped {
        Stopped::Reset(virtio) => {
            for &vdev in virtio.iter() {
                // SAFETY: A live virtio device (referenced) whose driver
                // is bound: freezing tears its queues down, restoring
                // sets it up from a reset, as after hibernation.
                unsafe {
                    bindings::virtio_device_freeze(vdev);
                    bindings::virtio_device_restore(vdev);
                }
            }
            release(&virtio);
        }
        Stopped::Quiesced => {
            pm::dpm_resume_start(Msg::Recover);
            pm::dpm_resume_end(Msg::Recover);
        }
    }
}
