// SPDX-License-Identifier: GPL-2.0

//! LZ4 for page batches: the kernel's `lib/lz4`, block format, one page per
//! block. The source compresses (a page that does not shrink below
//! [`MAX_LZ4_LEN`] travels as data); the target decompresses into the
//! page's frame and refuses any block that is not exactly one page
//! (`LZ4_decompress_safe()` never reads or writes outside the buffers it
//! is given, whatever the input).

use crate::bindings;
use crate::proto::wire::{MAX_LZ4_LEN, PAGE_SIZE};
use kernel::prelude::*;

/// An LZ4 compressor and its work area.
#[allow(dead_code, reason = "used by self_migrate only")]
pub(crate) struct Compressor {
    /// `LZ4_MEM_COMPRESS` bytes, 8-byte aligned as LZ4's state needs.
    work: KVVec<u64>,
}

#[allow(dead_code, reason = "used by self_migrate only")]
impl Compressor {
    /// Allocates the work area.
    pub(crate) fn new() -> Result<Self> {
        let bytes = bindings::SELFMIG_LZ4_MEM_COMPRESS;
        Ok(Self {
            work: KVVec::from_elem(0u64, bytes.div_ceil(8), GFP_KERNEL)?,
        })
    }

    /// The work area, to keep it out of the image.
    pub(crate) fn work_area(&self) -> (*const u8, usize) {
        (self.work.as_ptr().cast(), self.work.len() * 8)
    }

    /// Compresses `page` into `out`; returns the block's length, or 0 if
    /// it would not fit in `out` or in [`MAX_LZ4_LEN`] bytes.
    pub(crate) fn compress(&mut self, page: &[u8; PAGE_SIZE], out: &mut [u8]) -> usize {
        let room = out.len().min(MAX_LZ4_LEN);
        // SAFETY: `page` is readable for `PAGE_SIZE` bytes, `out` writable
        // for `room`, and the work area is `LZ4_MEM_COMPRESS` bytes, aligned;
        // LZ4 stays within all three and returns 0 when `out` is too small.
        let len = unsafe {
            bindings::LZ4_compress_default(
                page.as_ptr().cast(),
                out.as_mut_ptr().cast(),
                PAGE_SIZE as i32,
                room as i32,
                self.work.as_mut_ptr().cast(),
            )
        };
        usize::try_from(len).unwrap_or(0).min(room)
    }
}

/// Decompresses `block` into `out`; fails unless it makes exactly one page.
#[allow(dead_code, reason = "used by inflate_loader only")]
pub(crate) fn decompress(block: &[u8], out: &mut [u8; PAGE_SIZE]) -> Result {
    if block.is_empty() || block.len() > MAX_LZ4_LEN {
        return Err(EINVAL);
    }
    // SAFETY: `block` is readable for its length and `out` writable for
    // `PAGE_SIZE` bytes; the safe decoder never goes beyond either.
    let len = unsafe {
        bindings::LZ4_decompress_safe(
            block.as_ptr().cast(),
            out.as_mut_ptr().cast(),
            block.len() as i32,
            PAGE_SIZE as i32,
        )
    };
    match usize::try_from(len) {
        Ok(PAGE_SIZE) => Ok(()),
        _ => Err(EINVAL),
    }
}
