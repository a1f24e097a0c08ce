// SPDX-License-Identifier: GPL-2.0

//! The monotonic clock, for deadlines and for timing the migration, and
//! sleeping.

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
