// SPDX-License-Identifier: GPL-2.0

//! The page hash both sides agree on: xxh64 (seed 0) of the 4 KiB page,
//! never 0 (which means "no page") nor `u64::MAX` (the source's "excluded"
//! marker), as `wire::VerifyHashes` specifies.

use crate::bindings;
use crate::proto::wire::PAGE_SIZE;

/// Hash of a page, never 0 nor `u64::MAX`.
pub(crate) fn page_hash(page: &[u8; PAGE_SIZE]) -> u64 {
    // SAFETY: `page` is a readable buffer of the given length.
    let h = unsafe { bindings::xxh64(page.as_ptr().cast(), PAGE_SIZE, 0) };
    match h {
        0 => 1,
        u64::MAX => u64::MAX - 1,
        h => h,
    }
}
