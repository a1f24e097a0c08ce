// SPDX-License-Identifier: GPL-2.0

//! Network devices that stay live through the checkpoint.
//!
//! Freezing a virtio-net device for the checkpoint, as hibernation does,
//! tears down its queues, interrupts and receive buffers, and thawing it
//! to send the staged pages builds them again: under TCG that was most of
//! the source's 25-30 ms of device work, and the teardown itself dirtied a
//! few hundred pages that then had to be staged and sent inside the
//! downtime. The image does not need it: on the target the device is a
//! different, freshly reset one, and the driver's state has to be rebuilt
//! there whatever state it was saved in.
//!
//! So the PM core skips the PCI functions of virtio-net devices during the
//! checkpoint (the flag it keeps for devices that syscore operations
//! handle), and the NIC keeps working on the source: it sends the staged
//! pages at once. Their configuration space is saved first. On the target,
//! before interrupts come back on, [`LiveNics::break_devices`] marks their
//! virtqueues broken: the rings in the image are whatever the device had
//! written when the copy passed them, and nothing may read them. After the
//! other devices are restored, [`LiveNics::restart`] restores each
//! function's configuration space (BARs, command, MSI-X as the image knows
//! them) and runs the driver's freeze and restore, which free what the
//! image held (buffers still queued on the source's device are dropped, as
//! a reset NIC drops them) and set the device up again. The rings are
//! written by the device directly, outside the paging tracker's view; the
//! tracker marks their frames in every harvest ([`crate::dma`]), so the
//! checkpoint copies them too and `verify=1` holds.
//!
//! Other devices, virtio or not, are frozen and thawed as before: a lost
//! packet is retransmitted, a lost disk request is not.

use crate::bindings;
use crate::devices::{bound_virtio, driver_name, for_each_pci_device, name};
use core::ffi::c_void;
use kernel::prelude::*;

/// Most NICs kept live; more are frozen as usual.
const MAX_NICS: usize = 4;

/// One virtio-net device kept live: its PCI function and its virtio
/// device, each held by a reference.
#[derive(Clone, Copy)]
struct LiveNic {
    pci: *mut bindings::pci_dev,
    vdev: *mut bindings::virtio_device,
    /// Whether the PM core skipped the function before.
    was_skipped: bool,
}

/// The virtio-net devices kept live through one checkpoint; the PM core
/// handles them normally again once this is dropped.
pub(crate) struct LiveNics {
    nics: [Option<LiveNic>; MAX_NICS],
}

/// What [`find_nic`] collects during the walk.
struct Found {
    nics: [Option<(*mut bindings::pci_dev, *mut bindings::virtio_device)>; MAX_NICS],
}

/// Records the virtio-net child of a virtio-pci function.
///
/// # Safety
///
/// `child` must be a live device and `data` a `*mut *mut virtio_device`,
/// as `device_for_each_child()` passes from [`find_nic`].
unsafe extern "C" fn find_net_child(child: *mut bindings::device, data: *mut c_void) -> i32 {
    // SAFETY: By the function's safety requirements.
    let Some(vdev) = (unsafe { bound_virtio(child) }) else {
        return 0;
    };
    // SAFETY: As above.
    if unsafe { driver_name(child) }.as_bytes() != b"virtio_net" {
        return 0;
    }
    // SAFETY: As above.
    unsafe { *data.cast::<*mut bindings::virtio_device>() = vdev };
    1
}

/// Records a PCI function bound to virtio-pci whose virtio device is a
/// NIC; takes a reference on both.
///
/// # Safety
///
/// `dev` must be a live device and `data` a `*mut Found`, as
/// `bus_for_each_dev()` passes from [`LiveNics::keep`].
unsafe extern "C" fn find_nic(dev: *mut bindings::device, data: *mut c_void) -> i32 {
    // SAFETY: By the function's safety requirements.
    let found = unsafe { &mut *data.cast::<Found>() };
    // SAFETY: As above.
    if unsafe { driver_name(dev) }.as_bytes() != b"virtio-pci" {
        return 0;
    }
    let mut vdev: *mut bindings::virtio_device = core::ptr::null_mut();
    // SAFETY: `dev` is live for the walk; the callback matches and gets a
    // `*mut *mut virtio_device` that outlives the call.
    unsafe {
        bindings::device_for_each_child(
            dev,
            (&mut vdev as *mut *mut bindings::virtio_device).cast(),
            Some(find_net_child),
        )
    };
    if vdev.is_null() {
        return 0;
    }
    let Some(free) = found.nics.iter_mut().find(|n| n.is_none()) else {
        return 1;
    };
    let offset = core::mem::offset_of!(bindings::pci_dev, dev);
    // SAFETY: Every device on the PCI bus is the `dev` member of a
    // `struct pci_dev`; both devices are live here and the references keep
    // them so until `LiveNics` is dropped.
    unsafe {
        bindings::get_device(dev);
        bindings::get_device(core::ptr::addr_of_mut!((*vdev).dev));
        *free = Some((dev.cast::<u8>().sub(offset).cast(), vdev));
    }
    0
}

impl LiveNics {
    /// Finds the virtio-net devices, saves their PCI functions'
    /// configuration space and has the PM core skip those functions.
    /// Process context, before the devices are frozen.
    pub(crate) fn keep() -> Self {
        let mut found = Found {
            nics: [None; MAX_NICS],
        };
        // SAFETY: `find_nic` takes a `*mut Found`: `found`, which outlives
        // the call.
        unsafe { for_each_pci_device((&mut found as *mut Found).cast(), find_nic) };
        let mut live = Self {
            nics: [None; MAX_NICS],
        };
        for (slot, f) in live.nics.iter_mut().zip(found.nics) {
            let Some((pci, vdev)) = f else {
                continue;
            };
            // SAFETY: `pci` is live (referenced); saving its configuration
            // space only reads the device.
            let saved = unsafe { bindings::pci_save_state(pci) };
            // SAFETY: As above.
            let dev = unsafe { core::ptr::addr_of_mut!((*pci).dev) };
            if saved != 0 {
                // SAFETY: As above.
                let pci_name = unsafe { name(dev) };
                pr_warn!(
                    "cannot save the configuration of {} ({}); it is frozen for the checkpoint\n",
                    pci_name,
                    saved
                );
                // SAFETY: Drops the references `find_nic` took.
                unsafe {
                    bindings::put_device(core::ptr::addr_of_mut!((*vdev).dev));
                    bindings::put_device(dev);
                }
                continue;
            }
            // SAFETY: `dev` is live; the PM core reads the flag only while
            // the system sleep lock, which the checkpoint holds, is taken.
            let was_skipped = unsafe { bindings::selfmig_pm_syscore(dev, true) };
            *slot = Some(LiveNic {
                pci,
                vdev,
                was_skipped,
            });
        }
        live
    }

    /// The devices kept live.
    fn iter(&self) -> impl Iterator<Item = &LiveNic> {
        self.nics.iter().flatten()
    }

    /// On the target, with interrupts still off: marks every virtqueue of
    /// the kept devices broken, so that nothing reads the rings (as saved,
    /// they belong to the source's device) before [`LiveNics::restart`].
    pub(crate) fn break_devices(&self) {
        for nic in self.iter() {
            // SAFETY: The device is live (referenced); breaking it only
            // takes its virtqueue list's spinlock and sets flags.
            unsafe { bindings::virtio_break_device(nic.vdev) };
        }
    }

    /// On the target, after the other devices are restored: restores each
    /// kept function's configuration space and re-initialises its driver
    /// (freeze, then restore). A failure leaves that NIC down and is
    /// logged; the guest runs on.
    pub(crate) fn restart(&self) {
        for nic in self.iter() {
            // SAFETY: The function is live (referenced) and its state was
            // saved in `keep`, before the image was made.
            unsafe { bindings::pci_restore_state(nic.pci) };
            // SAFETY: The virtio device is live (referenced) and bound;
            // process context, as the PM core calls these.
            let err = unsafe {
                match bindings::virtio_device_freeze(nic.vdev) {
                    0 => bindings::virtio_device_restore(nic.vdev),
                    e => e,
                }
            };
            if err != 0 {
                // SAFETY: As above.
                let dev = unsafe { core::ptr::addr_of_mut!((*nic.vdev).dev) };
                // SAFETY: As above.
                let vdev_name = unsafe { name(dev) };
                pr_err!(
                    "cannot restart network device {} on the target ({}); it stays down\n",
                    vdev_name,
                    err
                );
            }
        }
    }
}

impl Drop for LiveNics {
    fn drop(&mut self) {
        for nic in self.iter() {
            // SAFETY: Both devices are live until the references taken in
            // `find_nic` are dropped here; the flag goes back to what it
            // was.
            unsafe {
                let dev = core::ptr::addr_of_mut!((*nic.pci).dev);
                bindings::selfmig_pm_syscore(dev, nic.was_skipped);
                bindings::put_device(core::ptr::addr_of_mut!((*nic.vdev).dev));
                bindings::put_device(dev);
            }
        }
    }
}
