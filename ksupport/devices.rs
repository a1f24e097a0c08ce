// SPDX-License-Identifier: GPL-2.0

//! Walking the device model: PCI devices, their names and drivers, and the
//! virtio devices below them.

use crate::bindings;
use core::ffi::c_void;
use kernel::c_str;
use kernel::prelude::*;
use kernel::str::CStr;

/// A callback of `bus_for_each_dev()`: a device and the caller's data;
/// returns non-zero to stop the walk.
pub(crate) type DeviceFn = unsafe extern "C" fn(*mut bindings::device, *mut c_void) -> i32;

/// Calls `f(dev, data)` for every PCI device until it returns non-zero.
///
/// # Safety
///
/// `f` must accept `data` for every device: `data` points at what `f`
/// expects and outlives the call.
pub(crate) unsafe fn for_each_pci_device(data: *mut c_void, f: DeviceFn) {
    // SAFETY: `pci_bus_type` is a static bus type; the rest is the
    // caller's guarantee.
    unsafe {
        bindings::bus_for_each_dev(
            core::ptr::addr_of!(bindings::pci_bus_type),
            core::ptr::null_mut(),
            data,
            Some(f),
        )
    };
}

/// A device's name, for messages.
///
/// # Safety
///
/// `dev` must be a live device.
pub(crate) unsafe fn name<'a>(dev: *const bindings::device) -> &'a CStr {
    // SAFETY: By the function's safety requirements; a registered device
    // has a NUL-terminated kobject name.
    let name = unsafe { (*dev).kobj.name };
    if name.is_null() {
        return c_str!("?");
    }
    // SAFETY: Non-null, NUL-terminated, and lives as long as the device.
    unsafe { CStr::from_char_ptr(name) }
}

/// The name of the driver bound to `dev`, or "none".
///
/// # Safety
///
/// `dev` must be a live device.
pub(crate) unsafe fn driver_name<'a>(dev: *const bindings::device) -> &'a CStr {
    // SAFETY: By the function's safety requirements.
    let drv = unsafe { (*dev).driver };
    // SAFETY: A bound driver outlives its binding; its name is a static
    // string.
    if drv.is_null() || unsafe { (*drv).name }.is_null() {
        return c_str!("none");
    }
    // SAFETY: As above.
    unsafe { CStr::from_char_ptr((*drv).name) }
}

/// The virtio device `dev` is, if it is one with a driver bound.
///
/// # Safety
///
/// `dev` must be a live device.
pub(crate) unsafe fn bound_virtio(
    dev: *mut bindings::device,
) -> Option<*mut bindings::virtio_device> {
    // SAFETY: By the function's safety requirements.
    let d = unsafe { &*dev };
    // SAFETY: A registered device's bus type and its name are static.
    if d.bus.is_null() || d.driver.is_null() || unsafe { (*d.bus).name }.is_null() {
        return None;
    }
    // SAFETY: As above.
    let bus = unsafe { CStr::from_char_ptr((*d.bus).name) };
    if bus.as_bytes() != b"virtio" {
        return None;
    }
    let offset = core::mem::offset_of!(bindings::virtio_device, dev);
    // SAFETY: Every device on the virtio bus is the `dev` member of a
    // `struct virtio_device`.
    Some(unsafe {
        dev.cast::<u8>()
            .sub(offset)
            .cast::<bindings::virtio_device>()
    })
}

/// What [`virtio_pm_ok`] looks for and found.
struct PmScan<'a> {
    /// What a device without PM callbacks prevents, for the message.
    what: &'a str,
    /// Whether one was found.
    found: bool,
}

/// Checks the virtio device `child` is, if it is one.
///
/// # Safety
///
/// `child` must be a live device and `data` a `*mut PmScan`, as
/// `device_for_each_child()` passes from [`pm_scan_device`].
unsafe extern "C" fn pm_scan_child(child: *mut bindings::device, data: *mut c_void) -> i32 {
    // SAFETY: By the function's safety requirements.
    let scan = unsafe { &mut *data.cast::<PmScan<'_>>() };
    // SAFETY: As above.
    let Some(vdev) = (unsafe { bound_virtio(child) }) else {
        return 0;
    };
    let offset = core::mem::offset_of!(bindings::virtio_driver, driver);
    // SAFETY: `vdev` is bound: its `dev.driver` is the `driver` member of
    // the `struct virtio_driver` that bound it, which outlives the binding.
    let drv = unsafe {
        &*(*vdev)
            .dev
            .driver
            .cast::<u8>()
            .sub(offset)
            .cast::<bindings::virtio_driver>()
    };
    if drv.freeze.is_none() || drv.restore.is_none() {
        // SAFETY: `child` is live (see above).
        let (dev, driver) = unsafe { (name(child), driver_name(child)) };
        pr_warn!(
            "{}: the driver of virtio device {} ({}) cannot freeze and restore it\n",
            scan.what,
            dev.to_str().unwrap_or("?"),
            driver.to_str().unwrap_or("?")
        );
        scan.found = true;
        return 1;
    }
    0
}

/// Checks the virtio devices below the PCI device `dev`.
///
/// # Safety
///
/// `dev` must be a live PCI device and `data` a `*mut PmScan`, as
/// `bus_for_each_dev()` passes from [`virtio_pm_ok`].
unsafe extern "C" fn pm_scan_device(dev: *mut bindings::device, data: *mut c_void) -> i32 {
    // SAFETY: By the function's safety requirements; `pm_scan_child` takes
    // the same `data`.
    unsafe { bindings::device_for_each_child(dev, data, Some(pm_scan_child)) }
}

/// Whether every bound virtio device's driver can freeze and restore it.
///
/// A device PM cycle (a checkpoint, its rehearsal, the image's resume)
/// resets every virtio device; a driver without `freeze` and `restore`
/// callbacks (9p, for one) is left without its queues. The first such
/// device is logged with `what`, what it prevents.
pub(crate) fn virtio_pm_ok(what: &str) -> bool {
    let mut scan = PmScan { what, found: false };
    // SAFETY: `pm_scan_device` takes a `*mut PmScan`, which outlives the
    // walk.
    unsafe { for_each_pci_device((&mut scan as *mut PmScan<'_>).cast(), pm_scan_device) };
    !scan.found
}
