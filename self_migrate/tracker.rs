// SPDX-License-Identifier: GPL-2.0

//! The content-hash tracker: a 64-bit hash of every page as last sent.
//!
//! A page whose current hash differs from the recorded one has changed since
//! it was sent (or was never sent) and must be sent again. The hash is taken
//! over the exact bytes that went on the wire, so a page torn by a
//! concurrent writer while it was copied still compares unequal later. It
//! costs a full memory scan per round; it catches every write, DMA included,
//! which makes it the correctness oracle for the paging tracker.

use crate::page_hash::page_hash;
use crate::proto::machine::MachineDesc;
use crate::proto::wire::PAGE_SIZE;
use crate::shim;
use kernel::prelude::*;

/// Recorded value of a page never sent (`page_hash` never returns it).
const NEVER_SENT: u64 = 0;
/// Recorded value of a page that is never part of the image (our buffers;
/// `page_hash` never returns it either).
const EXCLUDED: u64 = u64::MAX;

/// Per-page hashes, indexed by page frame number.
pub(crate) struct Tracker {
    hashes: KVVec<u64>,
}

impl Tracker {
    /// A tracker for every frame of `desc`, none sent yet.
    pub(crate) fn new(desc: &MachineDesc) -> Result<Self> {
        let end = desc.ranges().last().map_or(0, |r| r.end_pfn()) as usize;
        Ok(Self {
            hashes: KVVec::from_elem(NEVER_SENT, end, GFP_KERNEL)?,
        })
    }

    /// Leaves the frames backing `len` bytes at `addr` (a vmalloc or
    /// linear-map buffer) out of the image: they hold migration state, not
    /// guest state, and change while the checkpoint is taken.
    pub(crate) fn exclude(&mut self, addr: *const u8, len: usize) {
        let mut page = addr as usize & !(PAGE_SIZE - 1);
        while page < addr as usize + len {
            let pfn = shim::kaddr_to_pfn(page) as usize;
            if let Some(h) = self.hashes.get_mut(pfn) {
                *h = EXCLUDED;
            }
            page += PAGE_SIZE;
        }
    }

    /// Leaves the frames `[start, end)` out of the image.
    pub(crate) fn exclude_frames(&mut self, start: u64, end: u64) {
        for pfn in start..end {
            if let Some(h) = self.hashes.get_mut(pfn as usize) {
                *h = EXCLUDED;
            }
        }
    }

    /// Excludes the tracker's own storage.
    pub(crate) fn exclude_self(&mut self) {
        let len = self.hashes.len() * core::mem::size_of::<u64>();
        self.exclude(self.hashes.as_ptr().cast(), len);
    }

    /// Whether `pfn` must be (re)sent given its current contents.
    pub(crate) fn changed(&self, pfn: u64, page: &[u8; PAGE_SIZE]) -> bool {
        match self.hashes.get(pfn as usize) {
            Some(&EXCLUDED) | None => false,
            Some(&NEVER_SENT) => true,
            Some(&h) => h != page_hash(page),
        }
    }

    /// Whether `pfn` must be (re)sent given the hash of its current
    /// contents.
    pub(crate) fn changed_hash(&self, pfn: u64, hash: u64) -> bool {
        match self.hashes.get(pfn as usize) {
            Some(&EXCLUDED) | None => false,
            Some(&h) => h != hash,
        }
    }

    /// Whether `pfn` is left out of the image.
    pub(crate) fn is_excluded(&self, pfn: u64) -> bool {
        !matches!(self.hashes.get(pfn as usize), Some(h) if *h != EXCLUDED)
    }

    /// Records the bytes just sent for `pfn`; returns whether the frame
    /// was never sent before (a new frame of the image, to be paid for).
    pub(crate) fn record(&mut self, pfn: u64, sent: &[u8; PAGE_SIZE]) -> bool {
        match self.hashes.get_mut(pfn as usize) {
            Some(h) if *h != EXCLUDED => {
                let new = *h == NEVER_SENT;
                *h = page_hash(sent);
                new
            }
            _ => false,
        }
    }
}
