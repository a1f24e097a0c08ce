// SPDX-License-Identifier: GPL-2.0

//! The paging tracker: the CPU's Dirty bits as the record of writes.
//!
//! Every CPU write goes through a page-table entry, and the CPU sets that
//! entry's Dirty bit on the first write after the bit was cleared. A
//! harvest walks the kernel half of the page tables (direct map, kernel
//! image, vmalloc and modules, vmemmap) and the user half of every address
//! space, marks the frames behind every dirty leaf in a [`DirtyMap`], and
//! in a live round clears the bits, then flushes every CPU's TLB before the
//! marked pages are read: a write that raced with the clearing lands
//! before the flush, hence before the read, or sets the bit again.
//!
//! What the bits do not show is marked too:
//! - every page table of the user half walked, the root, every kernel
//!   table holding a dirty leaf, and every kernel table of entries whose
//!   Accessed bits a harvest clears (the CPU sets Accessed and Dirty bits
//!   in tables without going through any mapping of them; kernel entries
//!   are made with Accessed set);
//! - every frame a present read-only kernel mapping points at (kernel and
//!   module text is only ever changed through the temporary mapping of
//!   `text_poke()`, whose entry is cleared after use), in every harvest
//!   or, once [`crate::text_poke`] found that mapping's page table, in a
//!   harvest that finds the table written;
//! - every frame of a virtio ring, which devices write directly (see
//!   [`crate::dma::DeviceRings`]).
//!
//! A user entry is dirty when its Dirty or its Saved Dirty bit is set (the
//! kernel moves Dirty to Saved Dirty when it write-protects an entry). A
//! user entry's cleared Dirty bit moves into its folio
//! (`folio_mark_dirty()`), as the kernel does when it write-protects or
//! unmaps a page, or writeback and swap would take the page for clean.
//! A dirty large page marks all its frames, and the tracker's content hash
//! decides which of them really changed; [`crate::split`] maps RAM with
//! 4 KiB pages for the migration so that few are large (see
//! `Documentation/selfmig/design.rst`, "Dirty tracking", for the costs and
//! the races).

use crate::address_spaces::{AddressSpaces, MAX_ADDRESS_SPACES};
use crate::ages::TableAges;
use crate::bindings;
use crate::dma::DeviceRings;
#[cfg(CONFIG_MMU_NOTIFIER)]
use crate::notifier::Notifiers;
use crate::pagetable::{
    self, Leaf, Paging, Visitor, ACCESSED, DIRTY, PRESENT, RW, SAVED_DIRTY, SPECIAL,
};
use crate::pm;
use crate::shim::FolioRef;
use core::sync::atomic::{AtomicU64, Ordering};
use kernel::prelude::*;

/// One bit per frame: set when the frame may have changed since the bits
/// were last consumed.
pub(crate) struct DirtyMap {
    words: KVVec<u64>,
    frames: u64,
}

impl DirtyMap {
    /// A map of frames `[0, frames)`, all clear.
    pub(crate) fn new(frames: u64) -> Result<Self> {
        Ok(Self {
            words: KVVec::from_elem(0u64, frames.div_ceil(64) as usize, GFP_KERNEL)?,
            frames,
        })
    }

    /// Marks frames `[pfn, pfn + count)`, clipped to the map.
    pub(crate) fn mark(&mut self, pfn: u64, count: u64) {
        self.update_range(pfn, pfn.saturating_add(count), |w, mask| *w |= mask);
    }

    /// Applies `f` to every word holding frames `[start, end)` (clipped to
    /// the map), with the mask of those frames in it.
    fn update_range(&mut self, start: u64, end: u64, f: impl Fn(&mut u64, u64)) {
        let end = end.min(self.frames);
        let mut p = start;
        while p < end {
            let (word, bit) = ((p / 64) as usize, p % 64);
            let n = (64 - bit).min(end - p);
            let mask = if n == 64 {
                u64::MAX
            } else {
                ((1u64 << n) - 1) << bit
            };
            if let Some(w) = self.words.get_mut(word) {
                f(w, mask);
            }
            p += n;
        }
    }

    /// Marks every frame `other` marks (a map of the same size).
    pub(crate) fn add(&mut self, other: &DirtyMap) {
        for (w, o) in self.words.iter_mut().zip(other.words.iter()) {
            *w |= *o;
        }
    }

    /// Clears the marks of frames `[start, end)`, clipped to the map.
    pub(crate) fn unmark_range(&mut self, start: u64, end: u64) {
        self.update_range(start, end, |w, mask| *w &= !mask);
    }

    /// Sets the marks of the `count` frames from `pfn` (at most 64) to the
    /// bits of `bits` (bit 0: `pfn`), clipped to the map.
    pub(crate) fn assign(&mut self, pfn: u64, count: u32, bits: u64) {
        let count = u64::from(count.min(64));
        let (first, shift) = ((pfn / 64) as usize, pfn % 64);
        let valid = match count {
            64 => u64::MAX,
            n => (1u64 << n) - 1,
        };
        let bits = bits & valid;
        // The frames straddle at most two words.
        if let Some(w) = self.words.get_mut(first) {
            *w = (*w & !(valid << shift)) | (bits << shift);
        }
        if shift > 0 && count > 64 - shift {
            if let Some(w) = self.words.get_mut(first + 1) {
                *w = (*w & !(valid >> (64 - shift))) | (bits >> (64 - shift));
            }
        }
        // Frames beyond the map are not marked.
        let tail = self.frames % 64;
        if pfn + count > self.frames && tail != 0 {
            if let Some(w) = self.words.get_mut((self.frames / 64) as usize) {
                *w &= (1u64 << tail) - 1;
            }
        }
    }

    /// Clears the mark of `pfn`.
    pub(crate) fn unmark(&mut self, pfn: u64) {
        if let Some(w) = self.words.get_mut((pfn / 64) as usize) {
            *w &= !(1 << (pfn % 64));
        }
    }

    /// The marks of frames `64 * index` to `64 * index + 63`, one bit
    /// each (0 beyond the map).
    pub(crate) fn word(&self, index: usize) -> u64 {
        self.words.get(index).copied().unwrap_or(0)
    }

    /// Whether `pfn` is marked.
    pub(crate) fn test(&self, pfn: u64) -> bool {
        self.words
            .get((pfn / 64) as usize)
            .is_some_and(|w| w & (1 << (pfn % 64)) != 0)
    }

    #[cfg(CONFIG_MMU_NOTIFIER)]
    /// Sets the bits `bits` in the map's word `index` (frames
    /// `64 * index` to `64 * index + 63`).
    pub(crate) fn mark_word(&mut self, index: usize, bits: u64) {
        if let Some(w) = self.words.get_mut(index) {
            *w |= bits;
        }
    }

    #[cfg(CONFIG_MMU_NOTIFIER)]
    /// Marks every frame.
    pub(crate) fn mark_all(&mut self) {
        self.mark(0, self.frames);
    }

    /// Clears every mark.
    pub(crate) fn clear(&mut self) {
        self.words.iter_mut().for_each(|w| *w = 0);
    }

    /// How many frames are marked.
    pub(crate) fn count(&self) -> u64 {
        self.words.iter().map(|w| u64::from(w.count_ones())).sum()
    }

    /// The map's storage, to leave it out of the image.
    pub(crate) fn storage(&self) -> (*const u8, usize) {
        (self.words.as_ptr().cast(), self.words.len() * 8)
    }
}

/// Folio references taken with interrupts off, whose dirty bit moves into
/// the folio once they are back on.
const PENDING: usize = 256;

/// Drops every pending folio reference. May sleep.
fn clear_pending(pending: &mut KVVec<FolioRef>) {
    let n = pending.len();
    // SAFETY: The length drops to 0 first, so each element is read out
    // exactly once and then dropped here, never again by the vector.
    unsafe {
        pending.set_len(0);
        let base = pending.as_mut_ptr();
        for i in 0..n {
            drop(core::ptr::read(base.add(i)));
        }
    }
}

/// What one harvest found.
#[derive(Default, Clone, Copy)]
pub(crate) struct Found {
    /// Leaf entries with the Dirty bit set.
    pub(crate) dirty_leaves: u64,
    /// Page tables walked.
    pub(crate) tables: u64,
    /// Address spaces walked.
    pub(crate) address_spaces: u64,
    /// Kernel 4 KiB tables skipped (see [`crate::ages`]).
    pub(crate) tables_skipped: u64,
    /// Whether kernel text may have changed since the last harvest (always
    /// if that cannot be told), hence read-only frames were marked.
    pub(crate) text_marked: bool,
    /// Whether every frame was marked: the MMU notifiers could not tell
    /// what an invalidation that raced with a harvest unmapped.
    pub(crate) all_marked: bool,
}

/// Walks the page tables and reads (and in live rounds clears) their Dirty
/// bits.
pub(crate) struct Harvester {
    paging: Paging,
    /// The address spaces of the last harvest, referenced.
    spaces: AddressSpaces,
    /// The ones of the harvest before (or of the checkpoint's), kept until
    /// they have been walked once more.
    older: AddressSpaces,
    pending: KVVec<FolioRef>,
    rings: DeviceRings,
    /// Dirty user entries per listed address space, from the last harvest.
    counts: KVVec<u64>,
    /// What the kernel unmapped between harvests.
    #[cfg(CONFIG_MMU_NOTIFIER)]
    notifiers: Notifiers,
    /// Which kernel tables can be skipped.
    ages: TableAges,
    /// The frame of `text_poke()`'s page table, if found (see
    /// [`crate::text_poke`]).
    poke_table: Option<u64>,
    /// Every frame seen behind a read-only kernel mapping, marked only
    /// when text may have changed (with `poke_table` known).
    read_only: DirtyMap,
}

impl Harvester {
    /// A harvester for the running kernel's paging mode, for frames
    /// `[0, frames)`.
    pub(crate) fn new(frames: u64) -> Result<Self> {
        #[cfg(not(CONFIG_MMU_NOTIFIER))]
        {
            pr_warn!(
                "kernel without CONFIG_MMU_NOTIFIER: a page written through a shared mapping that is unmapped between rounds can be missed (verify=1 would catch it)\n"
            );
        }
        Ok(Self {
            paging: Paging::current(),
            spaces: AddressSpaces::new()?,
            older: AddressSpaces::new()?,
            pending: KVVec::with_capacity(PENDING, GFP_KERNEL)?,
            rings: DeviceRings::new()?,
            counts: KVVec::from_elem(0, MAX_ADDRESS_SPACES, GFP_KERNEL)?,
            #[cfg(CONFIG_MMU_NOTIFIER)]
            notifiers: Notifiers::new(frames)?,
            ages: TableAges::new(frames)?,
            poke_table: None,
            read_only: DirtyMap::new(frames)?,
        })
    }

    /// Finds the page table that tells when kernel text changed (see
    /// [`crate::text_poke`]); until it is found, or if it is not, every
    /// harvest marks every frame behind a read-only kernel mapping. Call
    /// before the first harvest, with the direct map split. May sleep.
    pub(crate) fn watch_text(&mut self) {
        self.poke_table = crate::text_poke::find_poke_table();
        match self.poke_table {
            Some(pfn) => pr_info!(
                "text_poke()'s page table is frame {:#x}: read-only kernel pages are hashed only after a text change\n",
                pfn
            ),
            None => pr_info!(
                "text_poke()'s page table not found: read-only kernel pages are hashed in every round\n"
            ),
        }
    }

    /// A live round's harvest, in process context: marks what changed
    /// since the last harvest, clears the Dirty bits (moving user ones into
    /// their folios) and flushes every CPU's TLB. Pages marked are to be
    /// read only after this returns.
    ///
    /// The address spaces listed by the previous harvest stay referenced
    /// until this one has walked them too: a process that exited in between
    /// still has its page tables, Dirty bits included (our reference keeps
    /// `exit_mmap()` from running). They are dropped at the end; the new
    /// list stays referenced (for [`Self::heavy_dirtiers`]) until the next
    /// harvest or [`Self::release`].
    pub(crate) fn harvest(&mut self, map: &mut DirtyMap) -> Result<Found> {
        core::mem::swap(&mut self.spaces, &mut self.older);
        let collected = self.spaces.collect();
        let mut found = Found {
            address_spaces: self.spaces.len() as u64,
            ..Found::default()
        };
        if let Err(e) = collected {
            self.older.release();
            return Err(e);
        }
        #[cfg(CONFIG_MMU_NOTIFIER)]
        {
            for i in 0..self.spaces.len() {
                self.notifiers.watch(self.spaces.get(i))?;
            }
            if self.notifiers.consume(map, false) {
                map.mark_all();
                found.all_marked = true;
            }
        }
        self.rings.collect()?;
        self.mark_rings(map);
        for i in 0..self.spaces.len() {
            let before = found.dirty_leaves;
            self.harvest_user(self.spaces.root(i), map, &mut found);
            if let Some(c) = self.counts.get_mut(i) {
                *c = found.dirty_leaves - before;
            }
        }
        for i in 0..self.older.len() {
            if !self.spaces.contains(self.older.get(i)) {
                self.harvest_user(self.older.root(i), map, &mut found);
            }
        }
        self.older.release();
        self.ages.begin();
        let mut aging = Aging {
            map: &mut *map,
            ages: &mut self.ages,
        };
        pagetable::walk_kernel_irqs_off(self.paging, &mut aging);
        // From here on, a Dirty bit set in a 4 KiB kernel table takes a
        // walk through its entry, which sets the Accessed bit again.
        crate::mmu::flush_tlb_everywhere();
        self.harvest_kernel(map, true, &mut found);
        crate::mmu::flush_tlb_everywhere();
        Ok(found)
    }

    /// Walks the kernel half (see [`KernelHalf`]): in a live harvest
    /// (`clear`, interrupts on, turned off for the walk) clearing the Dirty
    /// bits, in the checkpoint (interrupts already off) only reading them.
    fn harvest_kernel(&mut self, map: &mut DirtyMap, clear: bool, found: &mut Found) {
        let paging = self.paging;
        let mut kernel = KernelHalf {
            map,
            clear,
            root_marked: false,
            found,
            ages: &mut self.ages,
            last_child: u64::MAX,
            poke_table: self.poke_table,
            poked: false,
            read_only: &mut self.read_only,
        };
        match clear {
            true => pagetable::walk_kernel_irqs_off(paging, &mut kernel),
            false => pagetable::walk_kernel(paging, &mut kernel),
        }
        kernel.finish();
    }

    /// Harvests and clears the user half rooted at `root`, in pieces with
    /// interrupts off, moving cleared bits into the folios in between.
    fn harvest_user(&mut self, root: u64, map: &mut DirtyMap, found: &mut Found) {
        let end = self.paging.half();
        let mut start = 0;
        loop {
            let mut user = UserHalf {
                map: &mut *map,
                pending: &mut self.pending,
                clear: true,
                found: &mut *found,
            };
            // Interrupts off keep the tables walked from being freed: page
            // tables are freed after an RCU grace period or an IPI to every
            // CPU (MMU_GATHER_RCU_TABLE_FREE), and this CPU holds off both.
            pm::irqs_off();
            let stopped = pagetable::walk(self.paging, root, start, end, &mut user);
            pm::irqs_on();
            for folio in self.pending.iter() {
                folio.mark_dirty();
            }
            clear_pending(&mut self.pending);
            match stopped {
                Some(next) => start = next,
                None => break,
            }
        }
    }

    /// The checkpoint's harvest: interrupts off, the other CPUs offline.
    /// Marks what changed since the last harvest without clearing anything
    /// (the bits stay for the next round if the checkpoint is abandoned).
    /// Neither allocates nor sleeps; the references it takes on address
    /// spaces are dropped by [`Self::release`], in process context.
    pub(crate) fn peek(&mut self, map: &mut DirtyMap) -> Result<Found> {
        let mut found = Found::default();
        // The last harvest's list is still referenced (processes that
        // exited since keep their tables); list the current ones too.
        self.older.collect()?;
        found.address_spaces = self.older.len() as u64;
        #[cfg(CONFIG_MMU_NOTIFIER)]
        if self.notifiers.consume(map, true) {
            map.mark_all();
            found.all_marked = true;
        }
        self.mark_rings(map);
        let end = self.paging.half();
        for (list, other) in [(&self.older, None), (&self.spaces, Some(&self.older))] {
            for i in 0..list.len() {
                if other.is_some_and(|o| o.contains(list.get(i))) {
                    continue;
                }
                let mut user = UserHalf {
                    map: &mut *map,
                    pending: &mut self.pending,
                    clear: false,
                    found: &mut found,
                };
                pagetable::walk(self.paging, list.root(i), 0, end, &mut user);
            }
        }
        self.harvest_kernel(map, false, &mut found);
        Ok(found)
    }

    /// Calls `f` with each buffer a harvest writes (the notifiers' marks,
    /// the table ages), to leave out of the image.
    pub(crate) fn for_each_storage(&self, mut f: impl FnMut(*const u8, usize)) {
        #[cfg(CONFIG_MMU_NOTIFIER)]
        {
            let (addr, len) = self.notifiers.storage();
            f(addr, len);
        }
        for (addr, len) in self.ages.storage() {
            f(addr, len);
        }
        let (addr, len) = self.read_only.storage();
        f(addr, len);
    }

    /// Marks every frame of a virtio ring recorded so far.
    fn mark_rings(&self, map: &mut DirtyMap) {
        for (pfn, count) in self.rings.ranges() {
            map.mark(pfn, count);
        }
    }

    /// The user entries mapping `pfn` in the address spaces the last
    /// [`Self::peek`] walked (up to 4), for explaining a miss. Interrupts
    /// off, as in the checkpoint.
    pub(crate) fn mappings_of(&self, pfn: u64) -> [u64; 4] {
        let mut finder = Finder {
            pfn,
            found: [0; 4],
            n: 0,
        };
        for list in [&self.spaces, &self.older] {
            for i in 0..list.len() {
                pagetable::walk(
                    self.paging,
                    list.root(i),
                    0,
                    self.paging.half(),
                    &mut finder,
                );
            }
        }
        finder.found
    }

    /// The address spaces of the last harvest that dirtied the most: each
    /// at least a tenth of all dirty user entries, and at least 256.
    /// Valid until [`Self::release`].
    pub(crate) fn heavy_dirtiers(&self, out: &mut KVVec<*mut bindings::mm_struct>) -> Result {
        let mms = self.spaces.as_slice();
        let counts = &self.counts[..mms.len()];
        let total: u64 = counts.iter().sum();
        for (&mm, &count) in mms.iter().zip(counts) {
            if count >= 256 && count >= total / 10 {
                out.push(mm, GFP_KERNEL)?;
            }
        }
        Ok(())
    }

    /// Drops the address-space references harvests and [`Self::peek`]
    /// took. May sleep.
    pub(crate) fn release(&mut self) {
        self.spaces.release();
        self.older.release();
    }
}

/// A user entry is dirty if either bit is set (a write-protected entry
/// keeps its Dirty bit as Saved Dirty); a harvest clears both.
const USER_DIRTY: u64 = DIRTY | SAVED_DIRTY;

/// Visits the user half of one address space.
struct UserHalf<'a> {
    map: &'a mut DirtyMap,
    pending: &'a mut KVVec<FolioRef>,
    clear: bool,
    found: &'a mut Found,
}

impl Visitor for UserHalf<'_> {
    fn table(&mut self, pfn: u64) {
        self.found.tables += 1;
        self.map.mark(pfn, 1);
    }

    fn boring(&self, value: u64) -> bool {
        value & USER_DIRTY == 0
    }

    fn leaf(&mut self, leaf: Leaf<'_>) -> bool {
        if leaf.value & USER_DIRTY == 0 {
            return true;
        }
        if !self.clear {
            self.found.dirty_leaves += 1;
            self.map.mark(leaf.pfn, leaf.pages);
            return true;
        }
        if self.pending.len() == self.pending.capacity() {
            // Resume at this entry once the pending folios are done.
            return false;
        }
        self.found.dirty_leaves += 1;
        self.map.mark(leaf.pfn, leaf.pages);
        let folio = match leaf.value & SPECIAL {
            0 => FolioRef::try_get(leaf.pfn),
            _ => None,
        };
        // Clear the bit only in the entry as read (the CPU may set
        // Accessed meanwhile: retry then). If the entry now maps something
        // else, the page was unmapped and the kernel moved the bit itself.
        let mut value = leaf.value;
        for _ in 0..4 {
            match leaf.entry.compare_exchange(
                value,
                value & !USER_DIRTY,
                Ordering::AcqRel,
                Ordering::Relaxed,
            ) {
                Ok(_) => {
                    if let Some(folio) = folio {
                        // Within capacity (checked above): no allocation.
                        let _ = self.pending.push(folio, GFP_NOWAIT);
                    }
                    return true;
                }
                Err(now) if now & !(ACCESSED) == value & !(ACCESSED) => {
                    value = now;
                }
                Err(_) => break,
            }
        }
        if let Some(folio) = folio {
            // Mapping changed under us: the folio may or may not still be
            // dirty. Marking it dirty is harmless, losing it is not.
            let _ = self.pending.push(folio, GFP_NOWAIT);
        }
        true
    }
}

/// Visits the kernel half.
struct KernelHalf<'a> {
    map: &'a mut DirtyMap,
    clear: bool,
    /// Whether the root table (the first one visited) was marked.
    root_marked: bool,
    found: &'a mut Found,
    ages: &'a mut TableAges,
    /// The last table descended into: a run of entries pointing to the
    /// same table (espfix maps one page over 4 GiB this way) is walked
    /// once.
    last_child: u64,
    /// `text_poke()`'s page table, if known.
    poke_table: Option<u64>,
    /// Whether it was written since the last harvest.
    poked: bool,
    /// Frames behind read-only entries (with `poke_table` known).
    read_only: &'a mut DirtyMap,
}

impl KernelHalf<'_> {
    /// After the walk: if kernel text may have changed, marks every frame
    /// behind a read-only entry.
    fn finish(&mut self) {
        if self.poked {
            self.map.add(self.read_only);
        }
        self.found.text_marked = self.poked || self.poke_table.is_none();
    }
}

/// Span of an entry that points to a table of 4 KiB entries.
const PMD_SHIFT: u32 = 21;

impl Visitor for KernelHalf<'_> {
    /// Marks only the root: it is an address space's top-level table,
    /// whose user half matters. Below it, every change to a kernel table is
    /// a write through the direct map or the kernel image mapping, whose
    /// Dirty bits this walk harvests, the CPU setting a leaf's Dirty bit,
    /// which marks the leaf's table in [`Self::leaf`], or the CPU setting
    /// an Accessed bit a harvest cleared (entries to 4 KiB tables only),
    /// which marks the table in [`Self::descend`] (kernel entries are made
    /// with Accessed set, so otherwise the CPU never sets it).
    fn table(&mut self, pfn: u64) {
        self.found.tables += 1;
        if !self.root_marked {
            self.root_marked = true;
            self.map.mark(pfn, 1);
        }
    }

    /// Absent, or writable and clean.
    fn boring(&self, value: u64) -> bool {
        value & PRESENT == 0 || value & (RW | DIRTY) == RW
    }

    /// In a live harvest, skips a 4 KiB table no CPU can have written
    /// through since it was last walked (see [`crate::ages`]); the
    /// checkpoint walks every table, each run of entries to one table once.
    fn descend(
        &mut self,
        _entry: &AtomicU64,
        value: u64,
        shift: u32,
        table: u64,
        child: u64,
    ) -> bool {
        if child == self.last_child {
            self.found.tables_skipped += 1;
            return false;
        }
        self.last_child = child;
        if shift != PMD_SHIFT {
            return true;
        }
        // The CPU sets Accessed bits here through no mapping.
        self.map.mark(table, 1);
        let accessed = value & ACCESSED != 0;
        if !self.clear {
            // The checkpoint walks everything (see `crate::ages`).
            return true;
        }
        if !self.ages.must_walk(child, accessed) {
            self.found.tables_skipped += 1;
            return false;
        }
        self.ages.walking(child);
        true
    }

    fn leaf(&mut self, leaf: Leaf<'_>) -> bool {
        if leaf.value & PRESENT == 0 {
            return true;
        }
        if leaf.value & RW == 0 {
            // Changed only through aliases the walk cannot see (text_poke).
            match self.poke_table {
                Some(_) => self.read_only.mark(leaf.pfn, leaf.pages),
                None => self.map.mark(leaf.pfn, leaf.pages),
            }
            self.ages.saw_read_only(leaf.table);
            return true;
        }
        if leaf.value & DIRTY == 0 {
            return true;
        }
        if self.poke_table == Some(leaf.pfn) && leaf.pages == 1 {
            self.poked = true;
        }
        self.found.dirty_leaves += 1;
        self.map.mark(leaf.pfn, leaf.pages);
        self.ages.saw_written(leaf.pfn, leaf.pages);
        // The CPU set that bit in the table, through no mapping.
        self.map.mark(leaf.table, 1);
        if self.clear {
            leaf.entry.fetch_and(!DIRTY, Ordering::AcqRel);
        }
        true
    }
}

/// Clears the Accessed bits of the kernel's entries to 4 KiB tables, the
/// first step of a live harvest (see [`crate::ages`]).
struct Aging<'a> {
    map: &'a mut DirtyMap,
    ages: &'a mut TableAges,
}

impl Visitor for Aging<'_> {
    fn table(&mut self, _pfn: u64) {}

    fn boring(&self, _value: u64) -> bool {
        true
    }

    fn descend(
        &mut self,
        entry: &AtomicU64,
        value: u64,
        shift: u32,
        table: u64,
        child: u64,
    ) -> bool {
        if shift != PMD_SHIFT {
            return true;
        }
        if value & ACCESSED != 0 && entry.fetch_and(!ACCESSED, Ordering::AcqRel) & ACCESSED != 0 {
            self.ages.was_accessed(child);
            // A software write, but the CPU may set the bit again at any
            // time through no mapping: the table goes with this round.
            self.map.mark(table, 1);
        }
        false
    }

    fn leaf(&mut self, _leaf: Leaf<'_>) -> bool {
        true
    }
}

/// Finds the entries that map one frame.
struct Finder {
    pfn: u64,
    found: [u64; 4],
    n: usize,
}

impl Visitor for Finder {
    fn table(&mut self, _pfn: u64) {}

    fn leaf(&mut self, leaf: Leaf<'_>) -> bool {
        if (leaf.pfn..leaf.pfn + leaf.pages).contains(&self.pfn) && self.n < self.found.len() {
            self.found[self.n] = leaf.value;
            self.n += 1;
        }
        true
    }
}
