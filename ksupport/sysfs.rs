// SPDX-License-Identifier: GPL-2.0

//! A sysfs directory under `/sys/kernel/` with typed attribute callbacks.
//!
//! A module describes its attributes once, as a `static` table of [`Attr`];
//! [`SysfsDir::new`] creates the directory and one `kobj_attribute` per
//! entry, all dispatching through two trampolines that find their table entry
//! from the attribute pointer. Removing the directory (on drop) waits for
//! callbacks in flight, so a callback never outlives the module's state.

use crate::bindings;
use core::fmt;
use core::ptr::NonNull;
use kernel::prelude::*;
use kernel::str::CStr;

/// Size of the buffer sysfs hands to `show` and the most `store` receives.
const SYSFS_BUF_LEN: usize = 4096;

/// Output of a `show` callback: at most one page of text.
pub(crate) struct ShowBuf<'a> {
    buf: &'a mut [u8],
    len: usize,
}

impl fmt::Write for ShowBuf<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let end = self.len.checked_add(s.len()).ok_or(fmt::Error)?;
        if end > self.buf.len() {
            return Err(fmt::Error);
        }
        self.buf[self.len..end].copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

impl ShowBuf<'_> {
    /// Appends one formatted line; `ENOSPC` past one page.
    pub(crate) fn line(&mut self, args: fmt::Arguments<'_>) -> Result {
        use fmt::Write;
        self.write_fmt(args)
            .and_then(|()| self.write_str("\n"))
            .map_err(|_| ENOSPC)
    }

    /// Appends an endpoint, or `none`.
    pub(crate) fn endpoint(&mut self, ep: Option<crate::proto::uapi::Endpoint>) -> Result {
        match ep {
            Some(ep) => self.line(format_args!("{ep}")),
            None => self.line(format_args!("none")),
        }
    }
}

/// Reads an attribute into a [`ShowBuf`].
pub(crate) type ShowFn = fn(&mut ShowBuf<'_>) -> Result;

/// Handles a write of the given bytes to an attribute.
pub(crate) type StoreFn = fn(&[u8]) -> Result;

/// One attribute of a sysfs directory.
pub(crate) struct Attr {
    /// File name.
    pub(crate) name: &'static CStr,
    /// Permission bits, e.g. `0o644`.
    pub(crate) mode: u16,
    /// Read handler; `None` for write-only attributes.
    pub(crate) show: Option<ShowFn>,
    /// Write handler; `None` for read-only attributes.
    pub(crate) store: Option<StoreFn>,
}

/// A registered attribute: the C structure sysfs sees, then its table entry.
///
/// `repr(C)` with `kattr` first, so a `*mut kobj_attribute` handed back by
/// sysfs is also a pointer to its `Slot`.
#[repr(C)]
struct Slot {
    kattr: bindings::kobj_attribute,
    def: &'static Attr,
}

/// Calls an attribute's `show` handler for sysfs.
///
/// # Safety
///
/// `attr` must be the `kattr` field of a live [`Slot`] and `buf` must point to
/// a writable page, as sysfs guarantees for attributes registered by
/// [`SysfsDir::new`].
unsafe extern "C" fn show_trampoline(
    _kobj: *mut bindings::kobject,
    attr: *mut bindings::kobj_attribute,
    buf: *mut u8,
) -> isize {
    // SAFETY: By the function's safety requirements `attr` is the first field
    // of a live `Slot`, which is `repr(C)`.
    let slot = unsafe { &*attr.cast::<Slot>() };
    // SAFETY: sysfs passes a buffer of one page (`SYSFS_BUF_LEN`) that nothing
    // else accesses during the callback.
    let page = unsafe { core::slice::from_raw_parts_mut(buf, SYSFS_BUF_LEN) };
    let Some(show) = slot.def.show else {
        return EIO.to_errno() as isize;
    };
    let mut out = ShowBuf { buf: page, len: 0 };
    match show(&mut out) {
        Ok(()) => out.len as isize,
        Err(e) => e.to_errno() as isize,
    }
}

/// Calls an attribute's `store` handler for sysfs.
///
/// # Safety
///
/// `attr` must be the `kattr` field of a live [`Slot`] and `buf` must point to
/// `count` readable bytes, as sysfs guarantees for attributes registered by
/// [`SysfsDir::new`].
unsafe extern "C" fn store_trampoline(
    _kobj: *mut bindings::kobject,
    attr: *mut bindings::kobj_attribute,
    buf: *const u8,
    count: usize,
) -> isize {
    // SAFETY: As in `show_trampoline`.
    let slot = unsafe { &*attr.cast::<Slot>() };
    // SAFETY: sysfs passes `count` readable bytes (at most one page).
    let input = unsafe { core::slice::from_raw_parts(buf, count) };
    let Some(store) = slot.def.store else {
        return EIO.to_errno() as isize;
    };
    match store(input) {
        Ok(()) => count as isize,
        Err(e) => e.to_errno() as isize,
    }
}

/// A directory `/sys/kernel/<name>/` with its attributes.
///
/// # Invariants
///
/// `kobj` is a kobject created by `kobject_create_and_add` that this value
/// holds the only reference to, and `group` is registered on it; both stay
/// registered until drop. `slots` and `ptrs` are never resized after
/// registration, so the pointers sysfs holds into them stay valid.
pub(crate) struct SysfsDir {
    kobj: NonNull<bindings::kobject>,
    group: KBox<bindings::attribute_group>,
    _ptrs: KVec<*mut bindings::attribute>,
    _slots: KVec<Slot>,
}

// SAFETY: The raw pointers only refer to memory owned by this value or by
// sysfs, and sysfs synchronises its own access; dropping from another thread
// is fine.
unsafe impl Send for SysfsDir {}
// SAFETY: `SysfsDir` has no methods that take `&self`.
unsafe impl Sync for SysfsDir {}

impl SysfsDir {
    /// Creates `/sys/kernel/<name>/` with the attributes in `attrs`.
    pub(crate) fn new(name: &'static CStr, attrs: &'static [Attr]) -> Result<Self> {
        let mut slots = KVec::with_capacity(attrs.len(), GFP_KERNEL)?;
        for def in attrs {
            let mut kattr = bindings::kobj_attribute::default();
            kattr.attr.name = def.name.as_char_ptr();
            kattr.attr.mode = def.mode;
            kattr.show = Some(show_trampoline);
            kattr.store = Some(store_trampoline);
            slots.push(Slot { kattr, def }, GFP_KERNEL)?;
        }
        let mut ptrs = KVec::with_capacity(attrs.len() + 1, GFP_KERNEL)?;
        for slot in slots.iter_mut() {
            ptrs.push(&mut slot.kattr.attr as *mut bindings::attribute, GFP_KERNEL)?;
        }
        ptrs.push(core::ptr::null_mut(), GFP_KERNEL)?;
        let mut group = KBox::new(bindings::attribute_group::default(), GFP_KERNEL)?;
        group.attrs = ptrs.as_mut_ptr();

        // SAFETY: `name` is a NUL-terminated string that outlives the
        // kobject; `kernel_kobj` is the kobject of `/sys/kernel`, created at
        // boot and never freed.
        let kobj =
            unsafe { bindings::kobject_create_and_add(name.as_char_ptr(), bindings::kernel_kobj) };
        let kobj = NonNull::new(kobj).ok_or(ENOMEM)?;
        // SAFETY: `kobj` is live; `group` and everything it points to stay
        // allocated and unchanged until `drop` removes the group.
        let ret = unsafe { bindings::sysfs_create_group(kobj.as_ptr(), &*group) };
        if ret != 0 {
            // SAFETY: We hold the only reference, taken by
            // `kobject_create_and_add` above.
            unsafe { bindings::kobject_put(kobj.as_ptr()) };
            return Err(Error::from_errno(ret));
        }
        // INVARIANT: `kobj` was created above and `group` is registered on it.
        Ok(Self {
            kobj,
            group,
            _ptrs: ptrs,
            _slots: slots,
        })
    }
}

impl Drop for SysfsDir {
    fn drop(&mut self) {
        // SAFETY: By the type invariant the group is registered on the live
        // `kobj`. Removing it waits for callbacks in flight; putting the
        // last reference then removes the directory.
        unsafe {
            bindings::sysfs_remove_group(self.kobj.as_ptr(), &*self.group);
            bindings::kobject_put(self.kobj.as_ptr());
        }
    }
}
