// SPDX-License-Identifier: GPL-2.0

//! The staging buffer: where the checkpoint copies the pages that changed
//! since they were sent, while the guest is stopped. Preallocated, so the
//! checkpoint allocates nothing.

use crate::proto::wire::PAGE_SIZE;
use crate::tracker::Tracker;
use kernel::prelude::*;

/// Pages copied at the checkpoint, with their frame numbers.
pub(crate) struct Staging {
    pages: KVVec<u8>,
    pfns: KVVec<u64>,
    count: usize,
}

impl Staging {
    /// A buffer for `capacity` pages.
    pub(crate) fn new(capacity: usize) -> Result<Self> {
        Ok(Self {
            pages: KVVec::from_elem(0u8, capacity * PAGE_SIZE, GFP_KERNEL)?,
            pfns: KVVec::from_elem(0u64, capacity, GFP_KERNEL)?,
            count: 0,
        })
    }

    /// Leaves the buffer's own frames out of the image.
    pub(crate) fn exclude_from(&self, tracker: &mut Tracker) {
        tracker.exclude(self.pages.as_ptr(), self.pages.len());
        tracker.exclude(self.pfns.as_ptr().cast(), self.pfns.len() * 8);
    }

    /// Empties the buffer.
    pub(crate) fn clear(&mut self) {
        self.count = 0;
    }

    /// Number of pages held.
    pub(crate) fn len(&self) -> usize {
        self.count
    }

    /// Copies a page in; `false` when the buffer is full.
    pub(crate) fn push(&mut self, pfn: u64, page: &[u8; PAGE_SIZE]) -> bool {
        if self.count == self.pfns.len() {
            return false;
        }
        let off = self.count * PAGE_SIZE;
        self.pages[off..off + PAGE_SIZE].copy_from_slice(page);
        self.pfns[self.count] = pfn;
        self.count += 1;
        true
    }

    /// The page copied in last.
    pub(crate) fn last(&self) -> Option<&[u8; PAGE_SIZE]> {
        self.get(self.count.checked_sub(1)?).map(|(_, page)| page)
    }

    /// The page at `index` with its frame number.
    pub(crate) fn get(&self, index: usize) -> Option<(u64, &[u8; PAGE_SIZE])> {
        if index >= self.count {
            return None;
        }
        let off = index * PAGE_SIZE;
        let page = self.pages[off..off + PAGE_SIZE].try_into().ok()?;
        Some((self.pfns[index], page))
    }
}
