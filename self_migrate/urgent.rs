// SPDX-License-Identifier: GPL-2.0

//! The migration thread's priority while the guest is stopped.
//!
//! From the checkpoint on the guest's applications wait for the target,
//! but its tasks still run whenever the migration thread sleeps: while the
//! PM core's workers freeze and restore devices, and after the checkpoint,
//! while the source sends what it staged (their packets go nowhere: the
//! fence drops them). A task that keeps a CPU busy, or an echo server woken
//! by every packet the live NIC takes in, would take turns with the
//! migration thread and stretch the downtime; on the target, after the
//! NIC's restart, packets for the guest's address arrive before the
//! resume is over. So the thread runs as a real-time task (the lowest FIFO
//! priority, above every normal task, below threaded interrupt handlers)
//! from the checkpoint until the migration ends, on the source, or until
//! the resumed image has timed its downtime, on the target, and is a
//! normal kernel thread again afterwards.

use crate::bindings;

/// While it lives, the current thread runs with `SCHED_FIFO` priority 1.
/// Only for the migration's kernel thread, which was a normal thread with
/// nice 0 before and is again after.
pub(crate) struct Urgent(());

/// The task running this code.
fn current() -> *mut bindings::task_struct {
    // SAFETY: `get_current()` only reads this CPU's current-task pointer.
    unsafe { kernel::bindings::get_current() }.cast()
}

impl Urgent {
    /// Raises the current thread.
    pub(crate) fn raise() -> Self {
        // SAFETY: The current task is alive while it runs this.
        unsafe { bindings::sched_set_fifo_low(current()) };
        Self(())
    }
}

impl Drop for Urgent {
    fn drop(&mut self) {
        // SAFETY: As in `raise`: the same thread, alive while it runs this.
        unsafe { bindings::sched_set_normal(current(), 0) };
    }
}
