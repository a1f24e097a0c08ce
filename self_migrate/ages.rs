// SPDX-License-Identifier: GPL-2.0

//! Which kernel page tables a harvest may skip: the Accessed bits of the
//! entries that point to them.
//!
//! The CPU sets the Accessed bit of every entry it uses on the way to a
//! translation. A live harvest first clears the Accessed bits of all the
//! 2 MiB-level entries that point to 4 KiB tables, remembering which were
//! set, and flushes every CPU's TLB (paging-structure caches included).
//! From then on a CPU can set a Dirty bit in such a table only after
//! walking through the entry again, which sets its Accessed bit. So the
//! harvest then walks a table only if its entry's bit was set before the
//! clearing (writes up to the flush, through cached translations) or is
//! set again (writes since).
//!
//! Only live harvests skip. The checkpoint's harvest walks every table: a
//! Dirty bit a live harvest did not see is still set then, so whatever
//! this reasoning missed, the checkpoint still finds (at about 2 ms more
//! on a 1 GiB guest).
//!
//! The harvest also marks the frames behind read-only entries (text,
//! changed only through `text_poke()`'s own mapping, not through the
//! table). So a table that held read-only entries when last walked is
//! walked every time, and so is a table whose own frame was seen dirty
//! since it was last walked: the kernel changed its entries, and may have
//! made some read-only. Every frame `text_poke()` changes is also mapped
//! read-only outside the direct map (kernel image, modules), and the walk
//! reads the direct map's Dirty bits (which show writes to tables) before
//! it reaches those mappings.

use crate::paging::DirtyMap;
use kernel::prelude::*;

/// What the harvests know about the kernel's 4 KiB tables, by frame.
pub(crate) struct TableAges {
    /// Tables whose entry's Accessed bit the last live harvest found set
    /// (and cleared).
    recent: DirtyMap,
    /// Tables that held read-only entries when last walked.
    has_ro: DirtyMap,
    /// Frames seen dirty through a kernel mapping since the table at that
    /// frame (if it is one) was last walked.
    written: DirtyMap,
    /// Live harvests begun; until one has, everything is walked.
    harvests: u64,
}

impl TableAges {
    /// Empty sets for frames `[0, frames)`.
    pub(crate) fn new(frames: u64) -> Result<Self> {
        Ok(Self {
            recent: DirtyMap::new(frames)?,
            has_ro: DirtyMap::new(frames)?,
            written: DirtyMap::new(frames)?,
            harvests: 0,
        })
    }

    /// At the start of a live harvest, before the Accessed bits are
    /// cleared.
    pub(crate) fn begin(&mut self) {
        self.recent.clear();
        self.harvests += 1;
    }

    /// The entry to the table at `table` had its Accessed bit set when the
    /// live harvest cleared it.
    pub(crate) fn was_accessed(&mut self, table: u64) {
        self.recent.mark(table, 1);
    }

    /// Whether a live harvest (after [`Self::begin`]) must walk the table
    /// at frame `table`, given the Accessed bit of the entry pointing to it
    /// now.
    pub(crate) fn must_walk(&self, table: u64, accessed: bool) -> bool {
        accessed
            || self.harvests <= 1
            || self.recent.test(table)
            || self.has_ro.test(table)
            || self.written.test(table)
    }

    /// A live harvest walks the table at `table` now.
    pub(crate) fn walking(&mut self, table: u64) {
        self.has_ro.unmark(table);
        self.written.unmark(table);
    }

    /// The table at `table` holds a read-only entry.
    pub(crate) fn saw_read_only(&mut self, table: u64) {
        self.has_ro.mark(table, 1);
    }

    /// Frames `[pfn, pfn + pages)` were written through a kernel mapping.
    pub(crate) fn saw_written(&mut self, pfn: u64, pages: u64) {
        self.written.mark(pfn, pages);
    }

    /// The sets' storage, to leave out of the image (the checkpoint's
    /// harvest writes them).
    pub(crate) fn storage(&self) -> [(*const u8, usize); 3] {
        [
            self.recent.storage(),
            self.has_ro.storage(),
            self.written.storage(),
        ]
    }
}
