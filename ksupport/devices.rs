// SPDX-License-Identifier: GPL-2.0

//! Walking the device model: PCI devices, their names and drivers, and the
//! virtio devices below them.

use crate::bindings;
use core::ffi::c_void;
use kernel::c_str;
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
#[allow(dead_code, reason = "used by self_migrate only")]
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
