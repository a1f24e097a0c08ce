// SPDX-License-Identifier: GPL-2.0

//! A kernel thread that runs one function and then waits to be stopped.
//!
//! Because the thread never exits on its own, `kthread_stop()` on drop is
//! always safe without holding an extra task reference, and dropping the
//! handle is the one way the thread ends: it returns once the function has
//! returned. Callers make the function return (abort flags, socket
//! shutdown) before dropping the handle.

use crate::bindings;
use core::ffi::c_void;
use core::ptr::NonNull;
use kernel::c_str;
use kernel::prelude::*;

/// Runs the thread's function, then parks until `kthread_stop()`.
///
/// # Safety
///
/// `data` must point to a `'static` `fn()`, as [`KThread::spawn`] passes.
unsafe extern "C" fn trampoline(data: *mut c_void) -> i32 {
    // SAFETY: By the function's safety requirement.
    let entry = unsafe { *data.cast::<fn()>() };
    entry();
    // SAFETY: Called from a kernel thread, as required.
    while !unsafe { bindings::kthread_should_stop() } {
        // SAFETY: Sleeping is allowed here: no locks are held.
        unsafe { bindings::schedule_timeout_interruptible(bindings::__msecs_to_jiffies(100) as _) };
    }
    0
}

/// A running kernel thread.
///
/// # Invariants
///
/// `task` is a thread started by [`KThread::spawn`] that has not been
/// stopped; it does not exit before it is stopped (see `trampoline`).
pub(crate) struct KThread {
    task: NonNull<bindings::task_struct>,
}

// SAFETY: `kthread_stop()` may be called from any thread.
unsafe impl Send for KThread {}
// SAFETY: `KThread` has no methods that take `&self`.
unsafe impl Sync for KThread {}

impl KThread {
    /// Starts a thread named `name` running `entry`.
    pub(crate) fn spawn(name: &'static CStr, entry: &'static fn()) -> Result<Self> {
        let data: *const fn() = entry;
        // SAFETY: `trampoline` matches the thread function type and `data`
        // points to a `'static` `fn()`; the format string takes one string.
        let task = unsafe {
            bindings::kthread_create_on_node(
                Some(trampoline),
                data.cast_mut().cast(),
                bindings::NUMA_NO_NODE,
                c_str!("%s").as_char_ptr(),
                name.as_char_ptr(),
            )
        };
        let addr = task as usize;
        if addr >= (-(bindings::MAX_ERRNO as isize)) as usize {
            return Err(Error::from_errno(addr as isize as i32));
        }
        let task = NonNull::new(task).ok_or(ENOMEM)?;
        // SAFETY: `task` is a newly created, not yet running kthread.
        unsafe { bindings::wake_up_process(task.as_ptr()) };
        // INVARIANT: started above; it parks instead of exiting.
        Ok(Self { task })
    }
}

impl Drop for KThread {
    fn drop(&mut self) {
        // SAFETY: By the type invariant the thread is alive and not stopped.
        unsafe { bindings::kthread_stop(self.task.as_ptr()) };
    }
}
