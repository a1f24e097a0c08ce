// SPDX-License-Identifier: GPL-2.0

//! The version last sent of pages that pre-copy sends again, so that their
//! next version can travel as a patch: the words that changed.
//!
//! The pages a pre-copy round sends again (from round 1 on) are the ones
//! the guest keeps writing, and the checkpoint stages mostly such pages:
//! under the benchmark's probe traffic, about 200 of the 330 pages a
//! checkpoint staged had been sent in a later round, the others were
//! dirtied by the checkpoint itself (device structures the PM core moves
//! between its lists, which the rehearsal, run after round 0, dirties the
//! same way). Most of them differ from their last version in a few words:
//! a list pointer, a counter, a flag. A patch of `n` words costs `10n + 10`
//! bytes on the wire and one comparison of two pages, where LZ4 costs about
//! 25 us a page under TCG and the seal costs per byte.
//!
//! A ring of [`PAGES`] pages with an index from frame to ring entry; when
//! the ring wraps, the oldest entry is dropped. An entry always holds what
//! the target holds for its frame: it is rewritten whenever that frame is
//! sent, in whatever encoding.

use crate::proto::wire::PAGE_SIZE;
use kernel::prelude::*;

/// Pages kept (16 MiB).
pub(crate) const PAGES: usize = 4096;

/// No entry (in `slot_of`) or no frame (in `frame_of`).
const NONE: u32 = u32::MAX;

/// The pages kept, as last sent.
pub(crate) struct Resent {
    /// [`PAGES`] pages.
    pages: KVVec<u8>,
    /// The frame each entry holds, or [`NONE`].
    frame_of: KVVec<u32>,
    /// The entry holding each frame, or [`NONE`].
    slot_of: KVVec<u32>,
    /// The entry the next new frame takes.
    next: usize,
}

impl Resent {
    /// An empty ring for a guest of `frames` page frames.
    pub(crate) fn new(frames: u64) -> Result<Self> {
        let frames = usize::try_from(frames).map_err(|_| EINVAL)?;
        if frames > NONE as usize {
            return Err(EINVAL);
        }
        Ok(Self {
            pages: KVVec::from_elem(0u8, PAGES * PAGE_SIZE, GFP_KERNEL)?,
            frame_of: KVVec::from_elem(NONE, PAGES, GFP_KERNEL)?,
            slot_of: KVVec::from_elem(NONE, frames, GFP_KERNEL)?,
            next: 0,
        })
    }

    /// The ring's buffers, to keep them out of the image: they change with
    /// every page sent, and the target never needs them.
    pub(crate) fn buffers(&self) -> [(*const u8, usize); 3] {
        [
            (self.pages.as_ptr(), self.pages.len()),
            (
                self.frame_of.as_ptr().cast(),
                self.frame_of.len() * core::mem::size_of::<u32>(),
            ),
            (
                self.slot_of.as_ptr().cast(),
                self.slot_of.len() * core::mem::size_of::<u32>(),
            ),
        ]
    }

    /// The page of entry `slot`.
    fn page(&self, slot: usize) -> Option<&[u8; PAGE_SIZE]> {
        self.pages
            .get(slot * PAGE_SIZE..(slot + 1) * PAGE_SIZE)?
            .try_into()
            .ok()
    }

    /// What the target holds for frame `pfn`, if it is kept.
    pub(crate) fn get(&self, pfn: u64) -> Option<&[u8; PAGE_SIZE]> {
        match *self.slot_of.get(usize::try_from(pfn).ok()?)? {
            NONE => None,
            slot => self.page(slot as usize),
        }
    }

    /// Records that `page` was sent for frame `pfn`: rewrites its entry, or
    /// with `keep` makes one (dropping the oldest when the ring is full).
    pub(crate) fn sent(&mut self, pfn: u64, page: &[u8; PAGE_SIZE], keep: bool) {
        let Some(index) = usize::try_from(pfn)
            .ok()
            .filter(|&i| i < self.slot_of.len())
        else {
            return;
        };
        let slot = match self.slot_of[index] {
            NONE if !keep => return,
            NONE => {
                let slot = self.next;
                self.next = (self.next + 1) % PAGES;
                let old = self.frame_of[slot];
                if old != NONE {
                    self.slot_of[old as usize] = NONE;
                }
                self.frame_of[slot] = index as u32;
                self.slot_of[index] = slot as u32;
                slot
            }
            slot => slot as usize,
        };
        self.pages[slot * PAGE_SIZE..(slot + 1) * PAGE_SIZE].copy_from_slice(page);
    }
}
