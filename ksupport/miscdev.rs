// SPDX-License-Identifier: GPL-2.0

//! A misc character device (`/dev/<name>`) that only answers ioctls.
//!
//! `misc_open()` stores the `struct miscdevice` in `file->private_data`; the
//! ioctl trampoline goes from there to the [`Registration`] holding it and
//! calls the module's handler. The file operations carry the module as owner,
//! so an open file pins the module and deregistration cannot race a call.

use crate::bindings;
use kernel::prelude::*;
use kernel::str::CStr;
use kernel::ThisModule;

/// Handles one ioctl: command and raw argument; returns the value to return
/// to user space.
pub(crate) type IoctlFn = fn(cmd: u32, arg: usize) -> Result<isize>;

/// What the kernel holds pointers into while the device is registered.
///
/// `repr(C)` with `misc` first, so the `struct miscdevice *` in
/// `file->private_data` is also a pointer to its `Registration`.
#[repr(C)]
struct Inner {
    misc: bindings::miscdevice,
    fops: bindings::file_operations,
    ioctl: IoctlFn,
}

/// Forwards an ioctl to the handler of the device the file was opened on.
///
/// # Safety
///
/// `file` must be a file opened through `misc_open()` on a device registered
/// by [`Registration::new`], as the VFS guarantees for these file operations.
unsafe extern "C" fn ioctl_trampoline(file: *mut bindings::file, cmd: u32, arg: usize) -> isize {
    // SAFETY: `file` is a live open file; `misc_open()` set `private_data`
    // to our `miscdevice`, the first field of a live, `repr(C)` `Inner`.
    let inner = unsafe { &*(*file).private_data.cast::<Inner>() };
    match (inner.ioctl)(cmd, arg) {
        Ok(v) => v,
        Err(e) => e.to_errno() as isize,
    }
}

/// A registered misc device.
///
/// # Invariants
///
/// `inner.misc` is registered with `misc_register()` until drop, and
/// `inner` is never moved out of its box while registered.
pub(crate) struct Registration {
    inner: KBox<Inner>,
}

// SAFETY: The misc core synchronises its own access to the registration, and
// `Inner` holds only pointers to `'static` data.
unsafe impl Send for Registration {}
// SAFETY: `Registration` has no methods that take `&self`.
unsafe impl Sync for Registration {}

impl Registration {
    /// Registers `/dev/<name>` (mode 0600) answering ioctls with `ioctl`.
    pub(crate) fn new(
        name: &'static CStr,
        module: &'static ThisModule,
        ioctl: IoctlFn,
    ) -> Result<Self> {
        let mut inner = KBox::new(
            Inner {
                misc: bindings::miscdevice::default(),
                fops: bindings::file_operations::default(),
                ioctl,
            },
            GFP_KERNEL,
        )?;
        // The kernel crate's `struct module` is the same C type as ours.
        inner.fops.owner = module.as_ptr().cast();
        inner.fops.unlocked_ioctl = Some(ioctl_trampoline);
        inner.misc.minor = bindings::MISC_DYNAMIC_MINOR as i32;
        inner.misc.name = name.as_char_ptr();
        inner.misc.mode = 0o600;
        inner.misc.fops = &inner.fops;
        // SAFETY: `inner` is fully initialised, heap-allocated and stays put
        // until `drop` deregisters it.
        let ret = unsafe { bindings::misc_register(&mut inner.misc) };
        if ret != 0 {
            return Err(Error::from_errno(ret));
        }
        // INVARIANT: registered above; the box is only dropped after
        // deregistration.
        Ok(Self { inner })
    }
}

impl Registration {
    /// The device the misc core created for this registration.
    #[allow(dead_code)]
    pub(crate) fn device(&self) -> *mut bindings::device {
        self.inner.misc.this_device
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        // SAFETY: Registered by `new`, per the type invariant.
        unsafe { bindings::misc_deregister(&mut self.inner.misc) };
    }
}
