// SPDX-License-Identifier: GPL-2.0

//! Module-lifetime state reachable from C callbacks.
//!
//! sysfs and file-operation callbacks receive no pointer to the module's
//! state. A [`Global`] is a `static` slot that a [`Published`] value (owned
//! by the module struct) fills at init and empties on drop; callbacks reach
//! the state through [`Global::with`], which locks it.

use core::sync::atomic::{AtomicPtr, Ordering};
use kernel::prelude::*;
use kernel::sync::Mutex;

/// A `static` slot for a mutex-protected state published by the module.
pub(crate) struct Global<T> {
    ptr: AtomicPtr<Mutex<T>>,
}

impl<T> Global<T> {
    /// An empty slot.
    pub(crate) const fn new() -> Self {
        Self {
            ptr: AtomicPtr::new(core::ptr::null_mut()),
        }
    }

    /// Runs `f` with the state locked; `ENODEV` when nothing is published.
    ///
    /// Callers must be callbacks of interfaces that are torn down before the
    /// [`Published`] value is dropped (the module struct declares them
    /// first), so the state cannot be freed under them.
    pub(crate) fn with<R>(&'static self, f: impl FnOnce(&mut T) -> R) -> Result<R> {
        let ptr = self.ptr.load(Ordering::Acquire);
        if ptr.is_null() {
            return Err(ENODEV);
        }
        // SAFETY: A non-null pointer was stored by `Published::new` and
        // points into the pinned box that `Published` owns; by the caller
        // contract above, that box outlives this call.
        let mutex = unsafe { &*ptr };
        let mut guard = mutex.lock();
        Ok(f(&mut guard))
    }
}

/// Owns the state behind a [`Global`] and keeps it published.
pub(crate) struct Published<T: 'static> {
    slot: &'static Global<T>,
    state: Pin<KBox<Mutex<T>>>,
}

impl<T: 'static> Published<T> {
    /// Allocates the state with `init` and publishes it in `slot`.
    pub(crate) fn new(slot: &'static Global<T>, init: impl PinInit<Mutex<T>>) -> Result<Self> {
        let state = KBox::pin_init(init, GFP_KERNEL)?;
        let ptr: *const Mutex<T> = &*state;
        slot.ptr.store(ptr.cast_mut(), Ordering::Release);
        Ok(Self { slot, state })
    }
}

impl<T: 'static> Drop for Published<T> {
    fn drop(&mut self) {
        let ptr: *const Mutex<T> = &*self.state;
        let _ = self.slot.ptr.compare_exchange(
            ptr.cast_mut(),
            core::ptr::null_mut(),
            Ordering::AcqRel,
            Ordering::Acquire,
        );
    }
}
