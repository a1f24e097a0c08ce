// SPDX-License-Identifier: GPL-2.0

//! The time-stamp counter, for timing across the jump into an image (the
//! loader reads it before, the resumed image after, on the same CPU).

use crate::bindings;

/// The time-stamp counter of this CPU.
pub(crate) fn rdtsc() -> u64 {
    // SAFETY: RDTSC has no preconditions on x86-64 (CR4.TSD is clear in
    // the kernel).
    unsafe { core::arch::x86_64::_rdtsc() }
}

/// The counter's frequency in kHz, as this kernel calibrated it.
#[allow(dead_code)]
pub(crate) fn khz() -> u64 {
    // SAFETY: Plain read of a variable set at boot.
    u64::from(unsafe { bindings::tsc_khz })
}
