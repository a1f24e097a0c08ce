// SPDX-License-Identifier: GPL-2.0

//! The monotonic clock, for deadlines and for timing the migration,
//! sleeping, and letting other tasks run.

use crate::bindings;

/// Monotonic time in nanoseconds (`ktime_get`).
pub(crate) fn now_ns() -> i64 {
    // SAFETY: `ktime_get` has no preconditions; it may be called in any
    // context except while timekeeping is suspended, which this module
    // never calls it during.
    unsafe { bindings::ktime_get() }
}

/// Sleeps at least `ms` milliseconds.
///
/// Process context only, with no spinlock held and not in an RCU read-side
/// section: every caller is a kernel thread or a sysfs or ioctl handler
/// between its locks. (The loader includes this file and does not sleep
/// this way.)
#[allow(dead_code)]
pub(crate) fn sleep_ms(ms: u32) {
    // SAFETY: `msleep` may sleep, which the contract above allows.
    unsafe { bindings::msleep(ms) }
}

/// Sleeps between `min_us` and `max_us` microseconds on a high-resolution
/// timer (`usleep_range`): `msleep` rounds up to whole jiffies, 4-8 ms at
/// `HZ=250`.
///
/// Process context only, as [`sleep_ms`].
#[allow(dead_code)]
pub(crate) fn sleep_us(min_us: u32, max_us: u32) {
    // SAFETY: `usleep_range_state` may sleep, which the contract above
    // allows; an uninterruptible sleep is what `usleep_range` does.
    unsafe {
        bindings::usleep_range_state(
            min_us as usize,
            max_us.max(min_us) as usize,
            bindings::TASK_UNINTERRUPTIBLE,
        )
    }
}

/// Lets other tasks run if this one has used its turn.
///
/// Process context only, with no lock held, as [`sleep_ms`]: with
/// `CONFIG_PREEMPT_NONE` a kernel thread that walks page tables, hashes,
/// compresses and seals would otherwise starve the guest's own tasks (seen
/// from outside as a network outage while the migration is set up and
/// during pre-copy).
pub(crate) fn cond_resched() {
    // SAFETY: `__cond_resched` may sleep, which the contract above allows.
    unsafe { bindings::__cond_resched() };
}
