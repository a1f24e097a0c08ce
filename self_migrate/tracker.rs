// SPDX-License-Identifier: GPL-2.0

//! The dirty tracker: a 64-bit hash of every page as last sent, and in
//! paging mode the Dirty bits of the page tables as a filter in front of it.
//!
//! A page whose current hash differs from the recorded one has changed since
//! it was sent (or was never sent) and must be sent again. The hash is taken
//! over the exact bytes that went on the wire, so a page torn by a
//! concurrent writer while it was copied still compares unequal later.
//!
//! Alone (`tracker=hash`), the hash costs a full memory scan per round and
//! in the checkpoint; it catches every write, DMA included, which makes it
//! the oracle the paging tracker is tested against. In paging mode
//! (`tracker=paging`) only the *candidates* are hashed: frames marked by a
//! harvest of the Dirty bits (see [`crate::paging`]) and frames never sent.

use crate::memmap::MemmapIndex;
use crate::page_hash::page_hash;
use crate::paging::{DirtyMap, Found, Harvester};
use crate::proto::machine::MachineDesc;
use crate::proto::wire::PAGE_SIZE;
use crate::shim;
use kernel::prelude::*;

/// Recorded value of a page never sent (`page_hash` never returns it).
const NEVER_SENT: u64 = 0;
/// Recorded value of a page that is never part of the image (our buffers;
/// `page_hash` never returns it either).
const EXCLUDED: u64 = u64::MAX;

/// The paging mode's state.
struct Paging {
    /// Frames marked by harvests and not yet taken by a round.
    dirty: DirtyMap,
    /// Marks a round found on free frames and kept (see
    /// [`Tracker::keep_marks`]).
    kept: DirtyMap,
    /// RAM frames never sent and not excluded (the ones whose hash is
    /// `NEVER_SENT`), for [`Tracker::candidates`].
    unsent: DirtyMap,
    /// Reads the Dirty bits.
    harvester: Harvester,
    /// Frames whose page has no references and is on no free list, as of
    /// the last harvest (see [`Tracker::unreferenced`]); valid once
    /// `unref_known`.
    unref: DirtyMap,
    /// Whether every frame was asked once (after the first harvest).
    unref_known: bool,
    /// The memory map's frames, to ask again only the frames whose
    /// `struct page` changed; `None`: the checkpoint asks every frame.
    memmap: Option<MemmapIndex>,
    /// The guest's RAM.
    desc: MachineDesc,
}

impl Paging {
    /// After a harvest into `dirty` (or a peek in the checkpoint, with
    /// `live` false): brings `unref` up to date. The first time, live,
    /// every frame is asked; then only the frames whose `struct page`s lie
    /// in a memory-map frame the harvest marked, since a `struct page`
    /// changes only through its mapping, whose Dirty bits the harvest
    /// read.
    fn refresh_unreferenced(&mut self, live: bool) {
        let Some(index) = self.memmap.as_ref() else {
            return;
        };
        if self.unref_known {
            let (dirty, unref) = (&self.dirty, &mut self.unref);
            index.for_each_described(
                |frame| dirty.test(frame),
                |pfn, count| unref.assign(pfn, count, shim::unreferenced_mask(pfn, count)),
            );
            return;
        }
        if !live {
            return;
        }
        for range in self.desc.ranges() {
            let mut pfn = range.start_pfn & !63;
            while pfn < range.end_pfn() {
                self.unref.assign(pfn, 64, shim::unreferenced_mask(pfn, 64));
                pfn += 64;
                if pfn % (64 * 64) == 0 {
                    crate::clock::cond_resched();
                }
            }
        }
        self.unref_known = true;
    }
}

/// Per-page hashes, indexed by page frame number, and in paging mode the
/// dirty map.
pub(crate) struct Tracker {
    hashes: KVVec<u64>,
    paging: Option<Paging>,
    /// The kernel page tables holding the entries that map excluded
    /// buffers (see [`Self::exclude`]).
    owner_tables: KVec<u64>,
}

impl Tracker {
    /// A tracker for every frame of `desc`, none sent yet; with `paging`,
    /// one that hashes only the frames the Dirty bits point at.
    pub(crate) fn new(desc: &MachineDesc, paging: bool) -> Result<Self> {
        let end = desc.ranges().last().map_or(0, |r| r.end_pfn());
        let paging = match paging {
            true => {
                let mut unsent = DirtyMap::new(end)?;
                for range in desc.ranges() {
                    unsent.mark(range.start_pfn, range.end_pfn() - range.start_pfn);
                }
                Some(Paging {
                    dirty: DirtyMap::new(end)?,
                    kept: DirtyMap::new(end)?,
                    unsent,
                    harvester: Harvester::new(end)?,
                    unref: DirtyMap::new(end)?,
                    unref_known: false,
                    memmap: MemmapIndex::new(desc),
                    desc: *desc,
                })
            }
            false => None,
        };
        Ok(Self {
            hashes: KVVec::from_elem(NEVER_SENT, end as usize, GFP_KERNEL)?,
            paging,
            owner_tables: KVec::new(),
        })
    }

    /// In paging mode, finds what tells when kernel text changed (see
    /// [`crate::text_poke`]). Before the first round, with the direct map
    /// split. May sleep.
    pub(crate) fn watch_text(&mut self) {
        if let Some(p) = self.paging.as_mut() {
            p.harvester.watch_text();
        }
    }

    /// Before a live round: harvests the Dirty bits (clearing them) into
    /// the dirty map. Does nothing for the hash tracker.
    pub(crate) fn harvest(&mut self) -> Result<Option<Found>> {
        match self.paging.as_mut() {
            Some(p) => {
                let found = p.harvester.harvest(&mut p.dirty)?;
                p.refresh_unreferenced(true);
                Ok(Some(found))
            }
            None => Ok(None),
        }
    }

    /// In the checkpoint (interrupts off, one CPU): adds to the dirty map
    /// what the Dirty bits show, clearing nothing. Release what it holds
    /// with [`Self::release`] afterwards.
    pub(crate) fn peek(&mut self) -> Result<Option<Found>> {
        match self.paging.as_mut() {
            Some(p) => {
                let found = p.harvester.peek(&mut p.dirty)?;
                for &table in self.owner_tables.iter() {
                    p.dirty.mark(table, 1);
                }
                p.refresh_unreferenced(false);
                Ok(Some(found))
            }
            None => Ok(None),
        }
    }

    /// The user entries mapping `pfn` as the last peek saw them.
    pub(crate) fn mappings_of(&self, pfn: u64) -> [u64; 4] {
        self.paging
            .as_ref()
            .map_or([0; 4], |p| p.harvester.mappings_of(pfn))
    }

    /// The address spaces that dirtied the most in the last harvest (none
    /// for the hash tracker). Valid until [`Self::release`].
    pub(crate) fn heavy_dirtiers(
        &self,
        out: &mut KVVec<*mut crate::bindings::mm_struct>,
    ) -> Result {
        match &self.paging {
            Some(p) => p.harvester.heavy_dirtiers(out),
            None => Ok(()),
        }
    }

    /// Drops the references a harvest or a [`Self::peek`] took. May sleep.
    pub(crate) fn release(&mut self) {
        if let Some(p) = self.paging.as_mut() {
            p.harvester.release();
        }
    }

    /// In a live round, for a candidate frame the round reads (see
    /// [`Self::candidate`]): forgets its marks.
    pub(crate) fn take(&mut self, pfn: u64) {
        if let Some(p) = self.paging.as_mut() {
            p.dirty.unmark(pfn);
            p.kept.unmark(pfn);
        }
    }

    /// Whether only a kept mark makes `pfn` a candidate.
    pub(crate) fn kept_only(&self, pfn: u64) -> bool {
        self.paging.as_ref().is_some_and(|p| {
            p.kept.test(pfn)
                && !p.dirty.test(pfn)
                && !matches!(self.hashes.get(pfn as usize), Some(&NEVER_SENT))
        })
    }

    /// After a live round: keeps the marks of the frames the round did not
    /// read. Those are frames it skipped because they were free (or had no
    /// mapping to read through). Such a frame may have been written after
    /// it was last sent and before it was freed, and then be allocated
    /// again and not written (the unused part of a page fragment): it then
    /// holds what it held when it was freed, no Dirty bit says so, and only
    /// its kept mark makes the next round or the checkpoint send it.
    /// Marks outside `desc`'s RAM ranges (a harvest that cannot tell
    /// what changed marks every frame) are dropped. Returns how many marks
    /// are kept.
    pub(crate) fn keep_marks(&mut self, desc: &MachineDesc) -> u64 {
        match self.paging.as_mut() {
            Some(p) => {
                p.kept.add(&p.dirty);
                p.dirty.clear();
                let mut hole = 0;
                for range in desc.ranges() {
                    p.kept.unmark_range(hole, range.start_pfn);
                    hole = range.end_pfn();
                }
                p.kept.count()
            }
            None => 0,
        }
    }

    /// How many frames are marked now.
    pub(crate) fn marked(&self) -> u64 {
        self.paging.as_ref().map_or(0, |p| p.dirty.count())
    }

    /// Whether `pfn` may have changed since it was sent: always for the
    /// hash tracker; in paging mode if it is marked or was never sent.
    pub(crate) fn candidate(&self, pfn: u64) -> bool {
        match &self.paging {
            None => true,
            Some(p) => {
                p.dirty.test(pfn)
                    || p.kept.test(pfn)
                    || matches!(self.hashes.get(pfn as usize), Some(&NEVER_SENT))
            }
        }
    }

    /// Whether [`Self::unreferenced`] knows the answer for every frame (the
    /// paging tracker, with a linear memory map, after its first harvest):
    /// the checkpoint then need not ask each frame.
    pub(crate) fn tracks_unreferenced(&self) -> bool {
        self.paging
            .as_ref()
            .is_some_and(|p| p.unref_known && p.memmap.is_some())
    }

    /// Whether `pfn`'s page had no references and was on no free list at
    /// the last harvest or peek (see `shim::page_unreferenced`): another
    /// page of a multi-page allocation, or one on its way to a free list,
    /// whose last writes may have gone through a user mapping torn down
    /// since. The checkpoint hashes such pages whatever their marks.
    pub(crate) fn unreferenced(&self, pfn: u64) -> bool {
        self.paging.as_ref().is_some_and(|p| p.unref.test(pfn))
    }

    /// [`Self::unreferenced`] for frames `64 * index` to `64 * index + 63`,
    /// one bit each.
    pub(crate) fn unreferenced_word(&self, index: usize) -> u64 {
        self.paging.as_ref().map_or(0, |p| p.unref.word(index))
    }

    /// Whether this is the paging tracker (else the content-hash one).
    pub(crate) fn is_paging(&self) -> bool {
        self.paging.is_some()
    }

    /// The candidates (see [`Self::candidate`]) among frames `64 * index`
    /// to `64 * index + 63`, one bit each, for walking marks a word at a
    /// time; every frame for the hash tracker. Frames outside RAM are
    /// never sent but may carry a mark: the caller checks the RAM map.
    pub(crate) fn candidates(&self, index: usize) -> u64 {
        match &self.paging {
            None => u64::MAX,
            Some(p) => p.dirty.word(index) | p.kept.word(index) | p.unsent.word(index),
        }
    }

    /// Leaves the frames backing `len` bytes at `addr` (a vmalloc or
    /// linear-map buffer) out of the image: they hold migration state, not
    /// guest state, and change while the checkpoint is taken.
    ///
    /// The page tables mapping the buffer stay in the image, and the
    /// checkpoint's own writes to the buffer change them (the CPU sets the
    /// entries' Dirty bits) after its harvest: they are hashed in every
    /// checkpoint.
    pub(crate) fn exclude(&mut self, addr: *const u8, len: usize) {
        let mut page = addr as usize & !(PAGE_SIZE - 1);
        while page < addr as usize + len {
            let pfn = shim::kaddr_to_pfn(page) as usize;
            if let Some(h) = self.hashes.get_mut(pfn) {
                *h = EXCLUDED;
            }
            if let Some(p) = self.paging.as_mut() {
                p.unsent.unmark(pfn as u64);
            }
            if let Some(table) = shim::leaf_table_pfn(page) {
                if !self.owner_tables.contains(&table) {
                    // Without it a checkpoint could send such a table
                    // without the Dirty bits set after the harvest, which
                    // nothing reads but `verify=1` would flag.
                    let _ = self.owner_tables.push(table, GFP_KERNEL);
                }
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
        if let Some(p) = self.paging.as_mut() {
            p.unsent.unmark_range(start, end);
        }
    }

    /// Excludes the tracker's own storage.
    pub(crate) fn exclude_self(&mut self) {
        let len = self.hashes.len() * core::mem::size_of::<u64>();
        self.exclude(self.hashes.as_ptr().cast(), len);
        if let Some(p) = self.paging.as_ref() {
            let (dirty, kept) = (p.dirty.storage(), p.kept.storage());
            let (unsent, unref) = (p.unsent.storage(), p.unref.storage());
            self.exclude(dirty.0, dirty.1);
            self.exclude(kept.0, kept.1);
            self.exclude(unsent.0, unsent.1);
            self.exclude(unref.0, unref.1);
        }
        let mut buffers = KVec::new();
        if let Some(p) = self.paging.as_ref() {
            p.harvester.for_each_storage(|addr, len| {
                // At most a handful: the reservation cannot fail for real.
                let _ = buffers.push((addr, len), GFP_KERNEL);
            });
        }
        for (addr, len) in buffers {
            self.exclude(addr, len);
        }
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

    /// Records that `pfn` was sent in the final round, whose pages are not
    /// hashed (the tracker is not consulted after it); returns whether the
    /// frame was never sent before.
    pub(crate) fn mark_sent(&mut self, pfn: u64) -> bool {
        // Any value but the two reserved ones: it is never compared.
        self.record_hash(pfn, NEVER_SENT + 1)
    }

    /// Records the hash of the bytes just sent for `pfn`; returns whether
    /// the frame was never sent before (a new frame of the image, to be
    /// paid for).
    pub(crate) fn record_hash(&mut self, pfn: u64, hash: u64) -> bool {
        let new = match self.hashes.get_mut(pfn as usize) {
            Some(h) if *h != EXCLUDED => {
                let new = *h == NEVER_SENT;
                *h = hash;
                new
            }
            _ => false,
        };
        if new {
            if let Some(p) = self.paging.as_mut() {
                p.unsent.unmark(pfn);
            }
        }
        new
    }
}
