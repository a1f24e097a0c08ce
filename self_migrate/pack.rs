// SPDX-License-Identifier: GPL-2.0

//! How a page goes into a batch: a snapshot, then a zero marker, the words
//! that changed since it was last sent (a patch, for a page kept in
//! [`Resent`]), the list of its few nonzero words, an LZ4 block or the
//! plain page.
//!
//! The page is first copied into a scratch page: a live page may change
//! while it is read, and what is hashed (for the tracker) must be exactly
//! what the target will hold. Pages are compressed when that shrinks them
//! (the seal, AES-GCM, costs per byte, and under TCG it is the slowest step
//! of the stream: 30-40 MB/s against about 165 MB/s for LZ4); a page that
//! does not shrink below [`MAX_LZ4_LEN`] bytes travels plain. A page with
//! at most [`MAX_SPARSE_WORDS`] nonzero words (a page table, a buffer a
//! task writes one word of per page) travels as those words and their
//! places: found by the same scan that finds zero pages, ten times cheaper
//! than LZ4 under TCG (which costs about 25 us for any page).
//!
//! [`MAX_SPARSE_WORDS`]: crate::proto::wire::MAX_SPARSE_WORDS
//!
//! [`MAX_LZ4_LEN`]: crate::proto::wire::MAX_LZ4_LEN

use crate::failure::Failure;
use crate::lz4::Compressor;
use crate::page_hash::page_hash;
use crate::precopy::Tally;
use crate::proto::wire::{sparse_words, BatchWriter, MAX_SPARSE_WORDS, PAGE_SIZE};
use crate::resent::Resent;
use crate::tracker::Tracker;
use kernel::prelude::*;

/// The hash the tracker records for a page sent as a zero marker.
static ZERO_PAGE: [u8; PAGE_SIZE] = [0; PAGE_SIZE];

/// Packs pages into batches; owns the scratch page, the compressor and
/// the pages kept for patches.
pub(crate) struct Packer {
    scratch: KVVec<u8>,
    lz4: Compressor,
    /// Compress pages (the `compress` setting): LZ4, sparse pages and
    /// patches.
    compress: bool,
    /// Hash of the zero page.
    zero_hash: u64,
    /// The version last sent of pages sent more than once.
    resent: Resent,
    /// Whether pages sent now are kept in `resent` (from round 1 on).
    keep: bool,
}

impl Packer {
    /// A packer for a guest of `frames` page frames; `compress` selects
    /// patches, sparse pages and LZ4 for pages that shrink.
    pub(crate) fn new(compress: bool, frames: u64) -> Result<Self> {
        Ok(Self {
            scratch: KVVec::from_elem(0u8, PAGE_SIZE, GFP_KERNEL)?,
            lz4: Compressor::new()?,
            compress,
            zero_hash: page_hash(&ZERO_PAGE),
            resent: Resent::new(frames)?,
            keep: false,
        })
    }

    /// The packer's own buffers, to keep them out of the image.
    pub(crate) fn buffers(&self) -> [(*const u8, usize); 5] {
        let [pages, frames, slots] = self.resent.buffers();
        [
            (self.scratch.as_ptr(), self.scratch.len()),
            self.lz4.work_area(),
            pages,
            frames,
            slots,
        ]
    }

    /// A pre-copy round begins: from round 1 on, every page sent is kept
    /// for a patch of its next version.
    pub(crate) fn begin_round(&mut self, round: u32) {
        self.keep = round >= 1;
    }

    /// Appends `pfn`'s `page` to `batch`, records in the tracker what was
    /// sent and in `tally` what kind of page it was.
    pub(crate) fn push(
        &mut self,
        batch: &mut BatchWriter<'_>,
        tracker: &mut Tracker,
        pfn: u64,
        page: &[u8; PAGE_SIZE],
        tally: &mut Tally,
    ) -> Result<(), Failure> {
        let scratch: &mut [u8; PAGE_SIZE] = (&mut self.scratch[..])
            .try_into()
            .map_err(|_| Failure::new(EINVAL, "scratch page has the wrong size"))?;
        scratch.copy_from_slice(page);
        let old = self.resent.get(pfn);
        let hash = match pack(
            &mut self.lz4,
            self.compress,
            batch,
            pfn,
            scratch,
            old,
            tally,
        )? {
            true => self.zero_hash,
            false => page_hash(scratch),
        };
        self.resent.sent(pfn, scratch, self.keep);
        tally.new += u64::from(tracker.record_hash(pfn, hash));
        Ok(())
    }

    /// Appends a page copied in the checkpoint (`page` does not change),
    /// after which the tracker is never consulted again: no snapshot, no
    /// hash, only the record that the frame is part of the image (to pay
    /// for it if it is new).
    pub(crate) fn push_final(
        &mut self,
        batch: &mut BatchWriter<'_>,
        tracker: &mut Tracker,
        pfn: u64,
        page: &[u8; PAGE_SIZE],
        tally: &mut Tally,
    ) -> Result<(), Failure> {
        let old = self.resent.get(pfn);
        pack(&mut self.lz4, self.compress, batch, pfn, page, old, tally)?;
        // Only an entry the ring has: a checkpoint abandoned later leaves
        // the target holding this version.
        self.resent.sent(pfn, page, false);
        tally.new += u64::from(tracker.mark_sent(pfn));
        Ok(())
    }
}

/// Appends `page`, which does not change meanwhile, to `batch`: a zero
/// marker, with `compress` the words that changed since `old` (what the
/// target holds for the frame, if known) or its nonzero words, whichever
/// are fewer, or an LZ4 block (when it shrinks), or the plain page; counts
/// it in `tally`. Returns whether the page was zero.
fn pack(
    lz4: &mut Compressor,
    compress: bool,
    batch: &mut BatchWriter<'_>,
    pfn: u64,
    page: &[u8; PAGE_SIZE],
    old: Option<&[u8; PAGE_SIZE]>,
    tally: &mut Tally,
) -> Result<bool, Failure> {
    let bad = |_| Failure::new(EINVAL, "bad page frame");
    let words = sparse_words(page);
    if words == 0 {
        batch.push_zero(pfn).map_err(bad)?;
        tally.zero += 1;
        return Ok(true);
    }
    // A patch only if it is shorter than the sparse page would be: fewer
    // changed words than nonzero ones.
    if let Some(old) = old.filter(|_| compress) {
        if batch.push_patch(pfn, old, page, words - 1).map_err(bad)? {
            tally.compressed += 1;
            tally.patched += 1;
            return Ok(false);
        }
    }
    let compressed = if !compress {
        batch.push_data(pfn, page).map_err(bad)?;
        false
    } else if words <= MAX_SPARSE_WORDS {
        batch.push_sparse(pfn, page).map_err(bad)?
    } else {
        batch
            .push_compressed(pfn, page, |p, out| lz4.compress(p, out))
            .map_err(bad)?
    };
    tally.compressed += u64::from(compressed);
    Ok(false)
}
