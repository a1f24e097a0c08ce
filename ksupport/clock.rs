// SPDX-License-Identifier: GPL-2.0

//! The monotonic clock, for deadlines and for timing the migration.

use crate::bindings;

/// Monotonic time in nanoseconds (`ktime_get`).
pub(crate) fn now_ns() -> i64 {
    // SAFETY: `ktime_get` has no preconditions; it may be called in any
    // context except while timekeeping is suspended, which this module
    // never calls it during.
    unsafe { bindings::ktime_get() }
}
