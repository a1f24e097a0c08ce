// SPDX-License-Identifier: GPL-2.0

//! Inflating the incoming image into this VM's memory.
//!
//! At admission the loader claims every free frame it can, then gives back,
//! from the middle of RAM, a reserve for this kernel's own needs while it
//! receives (see [`Blocks::give_back`] for why there). An incoming page whose
//! frame is claimed is written straight into that frame. A page whose frame
//! this kernel uses cannot be written yet: it goes into a *slot*, a claimed
//! frame the image does not use, and the trampoline copies it home just
//! before the jump (hibernation's "safe pages", `kernel/power/snapshot.c`).
//! If a page for a frame currently serving as a slot arrives, the slot's
//! contents move to another slot first.

use crate::bindings;
use crate::bitmap::Bitmap;
use crate::failure::Failure;
use crate::proto::wire::{PageContent, PAGE_SIZE};
use crate::unwritten::Armed;
use kernel::prelude::*;

/// Frames left to this kernel while it receives (16 MiB).
const RESERVE_PAGES: i64 = 4096;

/// What `si_mem_available()` may fall to while the loader claims memory,
/// before it gives the reserve back: nothing above the allocator's own
/// watermark reserves, which it keeps anyway. The reserve is back a few
/// milliseconds later.
const CLAIM_FLOOR_PAGES: i64 = 0;

/// Largest block claimed at once (order 10: 4 MiB).
const MAX_CLAIM_ORDER: u32 = 10;

/// "No frame" in the per-frame maps.
const NONE: u64 = u64::MAX;

/// In `owner_of`: a frame [`Image::take_spare`] handed out for something
/// other than a slot (the jump's page tables, copy list and trampoline).
const TAKEN: u64 = u64::MAX - 1;

/// The `struct page` of a frame (SPARSEMEM_VMEMMAP, as on x86-64).
pub(crate) fn pfn_to_page(pfn: u64) -> *mut bindings::page {
    // SAFETY: `vmemmap_base` is set at boot and never changes.
    let base = unsafe { bindings::vmemmap_base } as u64;
    (base + pfn * core::mem::size_of::<bindings::page>() as u64) as *mut bindings::page
}

/// The frame of a `struct page`.
pub(crate) fn page_to_pfn(page: *mut bindings::page) -> u64 {
    // SAFETY: As in `pfn_to_page`.
    let base = unsafe { bindings::vmemmap_base } as u64;
    (page as u64 - base) / core::mem::size_of::<bindings::page>() as u64
}

/// The direct-map address of a frame this kernel maps.
pub(crate) fn frame_ptr(pfn: u64) -> *mut u8 {
    // SAFETY: `page_offset_base` is set at boot and never changes.
    let base = unsafe { bindings::page_offset_base } as u64;
    (base + pfn * PAGE_SIZE as u64) as *mut u8
}

/// A block of `1 << order` frames from the page allocator, allocated with
/// `gfp` (not a compound page: freed with `__free_pages` and that order);
/// `None` if there is none.
pub(crate) fn alloc_block(gfp: bindings::gfp_t, order: u32) -> Option<*mut bindings::page> {
    // SAFETY: Plain allocation on the local node; the caller owns the
    // block and frees it.
    let page = unsafe { bindings::__alloc_pages_noprof(gfp, order, 0, core::ptr::null_mut()) };
    (!page.is_null()).then_some(page)
}

/// Blocks claimed from the page allocator, (first frame, order) each;
/// given back when dropped.
struct Blocks(KVec<(u64, u32)>);

impl Blocks {
    /// Takes free blocks, the largest first, until `si_mem_available()`
    /// reaches `floor` pages.
    fn grab(floor: i64) -> Result<Self> {
        let mut blocks = Self(KVec::new());
        let mut order = MAX_CLAIM_ORDER;
        loop {
            if mem_available() <= floor + (1 << order) {
                if order == 0 {
                    break;
                }
                order -= 1;
                continue;
            }
            // The flags forbid heavy reclaim and warnings; the block is
            // freed in `drop`.
            let Some(page) = alloc_block(bindings::SELFMIG_GFP_CLAIM, order) else {
                if order == 0 {
                    break;
                }
                order -= 1;
                continue;
            };
            let block = (page_to_pfn(page), order);
            if let Err(e) = blocks.0.push(block, GFP_KERNEL) {
                // SAFETY: Just allocated with this order, not recorded.
                unsafe { bindings::__free_pages(page, order) };
                return Err(e.into());
            }
        }
        Ok(blocks)
    }

    /// Gives blocks back until `si_mem_available()` reaches `reserve`
    /// pages, those nearest the middle of the `frames` first.
    ///
    /// Both kernels booted the same way, and a kernel's boot allocations
    /// sit at the bottom of memory (the kernel image, early allocations)
    /// and at its top (`memblock` allocates top-down: the memory map, page
    /// tables, per-CPU areas). The image's frames are there too; the
    /// middle of RAM is what neither kernel touched. What this kernel
    /// allocates while it receives then comes from frames the image is
    /// least likely to need: every image frame this kernel holds at the
    /// jump is copied home by the trampoline, inside the downtime.
    fn give_back(&mut self, frames: u64, reserve: i64) {
        let middle = frames / 2;
        let distance = |&(pfn, order): &(u64, u32)| (pfn + (1 << order) / 2).abs_diff(middle);
        let mut keep = self.0.len();
        while keep > 0 && mem_available() < reserve {
            // The kept block nearest the middle goes, and the last kept
            // one takes its place.
            let Some(kept) = self.0.get_mut(..keep) else {
                break;
            };
            let mut nearest = 0;
            for (i, b) in kept.iter().enumerate() {
                if distance(b) < kept.get(nearest).map_or(u64::MAX, distance) {
                    nearest = i;
                }
            }
            kept.swap(nearest, keep - 1);
            keep -= 1;
            if let Some(&(pfn, order)) = self.0.get(keep) {
                // SAFETY: Allocated in `grab` with this order; the entry
                // leaves the list below, so it is freed once.
                unsafe { bindings::__free_pages(pfn_to_page(pfn), order) };
            }
        }
        // SAFETY: `keep` is at most the length, and the entries are plain
        // data: shortening the vector only forgets the blocks given back.
        unsafe { self.0.set_len(keep) };
    }

    /// Takes up to `pages` single frames, while `si_mem_available()` stays
    /// above `floor`. Single frames come from the smallest free blocks
    /// first: after [`Blocks::grab`] those are the scattered remains the
    /// allocator kept back for its watermarks, not the large blocks just
    /// given back.
    fn grab_small(&mut self, pages: u64, floor: i64) -> Result {
        for _ in 0..pages {
            if mem_available() <= floor + 1 {
                break;
            }
            let Some(page) = alloc_block(bindings::SELFMIG_GFP_CLAIM_SMALL, 0) else {
                break;
            };
            if let Err(e) = self.0.push((page_to_pfn(page), 0), GFP_KERNEL) {
                // SAFETY: Just allocated, not recorded.
                unsafe { bindings::__free_pages(page, 0) };
                return Err(e.into());
            }
        }
        Ok(())
    }
}

impl Drop for Blocks {
    fn drop(&mut self) {
        for &(pfn, order) in self.0.iter() {
            // SAFETY: Allocated in `grab` with this order, freed once.
            unsafe { bindings::__free_pages(pfn_to_page(pfn), order) };
        }
    }
}

/// `si_mem_available()`: free and easily reclaimable pages.
fn mem_available() -> i64 {
    // SAFETY: No preconditions.
    unsafe { bindings::si_mem_available() as i64 }
}

/// Free pages in this kernel.
fn free_pages() -> u64 {
    let mut info = core::mem::MaybeUninit::<bindings::sysinfo>::zeroed();
    // SAFETY: `info` is a writable `struct sysinfo`.
    unsafe { bindings::si_meminfo(info.as_mut_ptr()) };
    // SAFETY: Zero-initialised, then filled in by `si_meminfo`.
    let info = unsafe { info.assume_init() };
    info.freeram as u64 * u64::from(info.mem_unit).max(1) / PAGE_SIZE as u64
}

/// Pages the image's own bookkeeping for `frames` frames takes.
fn bookkeeping_pages(frames: u64) -> i64 {
    // Three maps of one word per frame, three bitmaps.
    let bytes = frames * 3 * 8 + frames.div_ceil(64) * 8 * 3;
    bytes.div_ceil(PAGE_SIZE as u64) as i64
}

/// The image being inflated.
pub(crate) struct Image {
    /// Blocks claimed from the page allocator.
    blocks: Blocks,
    claimed: Bitmap,
    received: Bitmap,
    /// For each frame of the image held in a slot: the slot.
    slot_of: KVVec<u64>,
    /// The frames of the image held in slots (those with a `slot_of`), for
    /// [`Image::slots`] to find them 64 frames at a time.
    in_slot: Bitmap,
    /// For each slot: the frame whose contents it holds.
    owner_of: KVVec<u64>,
    /// Claimed frames not yet known to be used (candidates for slots),
    /// used as a stack of `spare_len` entries.
    spare: KVVec<u64>,
    spare_len: usize,
    frames: u64,
    /// Pages received, directly placed, and held in slots.
    pub(crate) pages: u64,
    /// Pages written straight into their frames.
    pub(crate) direct: u64,
    /// Pages currently held in slots.
    pub(crate) slotted: u64,
    /// Pages moved home from their slots between rounds.
    pub(crate) moved_home: u64,
    /// Which slotted pages are identical at home (see [`crate::unwritten`]).
    unwritten: Option<Armed>,
}

impl Image {
    /// Claims this kernel's free memory for an image of frames
    /// `0..frames`: all of it at first, then it gives back, from the
    /// middle of RAM, a reserve for this kernel's own needs while it
    /// receives and the room for the image's bookkeeping, which is
    /// allocated only then (see [`Blocks::give_back`]). `unwritten`, if
    /// given, learns of every page put in a slot.
    pub(crate) fn claim(frames: u64, unwritten: Option<Armed>) -> Result<Self> {
        let mut blocks = Blocks::grab(CLAIM_FLOOR_PAGES)?;
        // What the allocator kept back is scattered wherever this kernel
        // left it, often among the image's frames: take it in exchange
        // for more from the middle.
        let kept_back = free_pages();
        blocks.give_back(
            frames,
            RESERVE_PAGES + bookkeeping_pages(frames) + kept_back as i64,
        );
        blocks.grab_small(kept_back, RESERVE_PAGES + bookkeeping_pages(frames))?;
        let mut image = Self {
            blocks: Blocks(KVec::new()),
            claimed: Bitmap::new(frames)?,
            received: Bitmap::new(frames)?,
            slot_of: KVVec::from_elem(NONE, frames as usize, GFP_KERNEL)?,
            in_slot: Bitmap::new(frames)?,
            owner_of: KVVec::from_elem(NONE, frames as usize, GFP_KERNEL)?,
            spare: KVVec::from_elem(0u64, frames as usize, GFP_KERNEL)?,
            spare_len: 0,
            frames,
            pages: 0,
            direct: 0,
            slotted: 0,
            moved_home: 0,
            unwritten,
        };
        // Nothing is slotted yet: every frame becomes a spare one.
        image.adopt(blocks)?;
        Ok(image)
    }

    /// Number of frames claimed.
    pub(crate) fn claimed_frames(&self) -> u64 {
        self.blocks.0.iter().map(|&(_, o)| 1u64 << o).sum()
    }

    /// Once the image's frames are known, moves this kernel's reserve out
    /// of their way, and moves home the slotted pages whose frames it
    /// freed meanwhile. Called when a later pre-copy round begins: round 0
    /// has sent every page the source uses.
    ///
    /// [`Image::claim`] could only guess where the image lives (the middle
    /// of RAM is free in an idle guest, not in one whose tasks use most of
    /// it). Now everything free is claimed again, the reserve included, and
    /// whole claimed blocks holding no page of the image and no slot are
    /// given back instead, until the reserve is back; if there are too few,
    /// the rest comes from what was just taken. Returns how many pages
    /// moved home.
    pub(crate) fn settle(&mut self) -> Result<u64> {
        let mut more = Blocks::grab(CLAIM_FLOOR_PAGES)?;
        // What the allocator keeps back for its watermarks is exchanged
        // too, as in `claim`.
        let kept_back = free_pages();
        let target = RESERVE_PAGES + kept_back as i64;
        let mut keep = self.blocks.0.len();
        let mut i = 0;
        while i < keep && mem_available() < target {
            let Some(&(pfn, order)) = self.blocks.0.get(i) else {
                break;
            };
            let end = pfn + (1 << order);
            let unused = (pfn..end).all(|f| {
                f >= self.frames || (!self.received.get(f) && self.owner_of[f as usize] == NONE)
            });
            if !unused {
                i += 1;
                continue;
            }
            for f in pfn..end.min(self.frames) {
                self.claimed.unset(f);
            }
            // SAFETY: Claimed with this order and no longer listed once the
            // last kept block takes its place: freed once.
            unsafe { bindings::__free_pages(pfn_to_page(pfn), order) };
            keep = keep.saturating_sub(1);
            self.blocks.0.swap(i, keep);
        }
        // SAFETY: `keep` is at most the length, and the entries are plain
        // data: shortening the vector only forgets the blocks given back.
        unsafe { self.blocks.0.set_len(keep) };
        // Too few such blocks (an image spread over most of RAM): the rest
        // of the reserve comes from what was just taken, as `claim` would
        // choose it, so this kernel keeps its reserve whatever the image.
        more.give_back(self.frames, target);
        let mut moved = self.adopt(more)?;
        let mut small = Blocks(KVec::new());
        small.grab_small(kept_back, RESERVE_PAGES)?;
        moved += self.adopt(small)?;
        self.moved_home += moved;
        self.compact_spares();
        Ok(moved)
    }

    /// Drops from the spare stack the entries that can no longer be handed
    /// out (frames given back or written since) and the repeated ones (a
    /// frame given back in one round and claimed again in a later one is
    /// stacked again), keeping the order. Without it the stack fills with
    /// such entries round after round, and frames claimed later find no
    /// room in it. Repeats are harmless otherwise ([`Image::take_spare`]
    /// never hands a frame out twice), so without memory for the set of
    /// frames seen they stay.
    fn compact_spares(&mut self) {
        let mut seen = Bitmap::new(self.frames).ok();
        let mut kept = 0;
        for i in 0..self.spare_len {
            let f = self.spare[i];
            let repeated = seen.as_mut().is_some_and(|seen| {
                let was = seen.get(f);
                seen.set(f);
                was
            });
            if self.is_spare(f) && !repeated {
                self.spare[kept] = f;
                kept += 1;
            }
        }
        self.spare_len = kept;
    }

    /// Makes `more` part of the claimed memory: its frames become spares,
    /// or take home the page a slot held for them. Returns how many pages
    /// moved home.
    fn adopt(&mut self, mut more: Blocks) -> Result<u64> {
        self.blocks.0.reserve(more.0.len(), GFP_KERNEL)?;
        let mut moved = 0;
        for &(pfn, order) in more.0.iter() {
            // Within the capacity just reserved: cannot fail.
            let _ = self.blocks.0.push((pfn, order), GFP_KERNEL);
            for f in pfn..(pfn + (1 << order)).min(self.frames) {
                self.claimed.set(f);
                let slot = self.slot_of[f as usize];
                if slot == NONE {
                    self.push_spare(f);
                    continue;
                }
                // SAFETY: Both frames are claimed by this image, distinct,
                // and hold nothing else: `slot` holds `f`'s page.
                unsafe { core::ptr::copy_nonoverlapping(frame_ptr(slot), frame_ptr(f), PAGE_SIZE) };
                self.slot_of[f as usize] = NONE;
                self.in_slot.unset(f);
                self.owner_of[slot as usize] = NONE;
                if let Some(u) = self.unwritten.as_mut() {
                    u.forget(f);
                }
                self.push_spare(slot);
                self.slotted = self.slotted.saturating_sub(1);
                self.direct += 1;
                moved += 1;
            }
        }
        // SAFETY: Every block moved to `self.blocks` above; the entries
        // are plain data, so emptying the list only hands them over.
        unsafe { more.0.set_len(0) };
        Ok(moved)
    }

    /// Adds a claimed frame to the spare stack (if the stack is full the
    /// frame stays claimed but unused).
    fn push_spare(&mut self, f: u64) {
        if let Some(e) = self.spare.get_mut(self.spare_len) {
            *e = f;
            self.spare_len += 1;
        }
    }

    /// Whether `f` can be handed out: claimed, holding no page of the
    /// image, no slot and nothing else handed out.
    fn is_spare(&self, f: u64) -> bool {
        self.claimed.get(f) && !self.received.get(f) && self.owner_of[f as usize] == NONE
    }

    /// A claimed frame that holds nothing of the image and is no slot. It
    /// is marked as handed out, so that another entry for the same frame
    /// (a frame given back and claimed again is stacked again) cannot hand
    /// it out twice; [`Image::place`] marks a slot with its owner instead.
    pub(crate) fn take_spare(&mut self) -> Result<u64, Failure> {
        while self.spare_len > 0 {
            self.spare_len -= 1;
            let f = self.spare[self.spare_len];
            // Frames given back or used since they were stacked are skipped.
            if self.is_spare(f) {
                self.owner_of[f as usize] = TAKEN;
                return Ok(f);
            }
        }
        Err(Failure::new(
            ENOSPC,
            "the image does not fit beside this kernel",
        ))
    }

    /// Hands back frame `f`, taken with [`Image::take_spare`] and not used
    /// since (a rehearsal's, or a failed preparation's).
    pub(crate) fn put_back_spare(&mut self, f: u64) {
        if self.owner_of.get(f as usize) == Some(&TAKEN) {
            self.owner_of[f as usize] = NONE;
            self.push_spare(f);
        }
    }

    /// Rehearses the jump's write-watch filter on the copy list at `list`
    /// (see [`crate::restore::rehearse`]); nothing it learns is kept.
    pub(crate) fn rehearse_filter(&mut self, list: u64) {
        if let Some(u) = self.unwritten.as_mut() {
            u.rehearse(list);
        }
    }

    /// Writes `content` into frame `dst`, which holds the page's previous
    /// version if it is a patch. Fails, with the frame's contents
    /// undefined, if a compressed page does not decompress to one page.
    fn write(dst: u64, content: &PageContent<'_>) -> Result<(), Failure> {
        let ptr = frame_ptr(dst);
        match content {
            PageContent::Patch(pairs) => {
                // SAFETY: `dst` is a frame claimed by this image, mapped in
                // the direct map, a page long and owned by nobody else.
                let frame = unsafe { &mut *ptr.cast::<[u8; PAGE_SIZE]>() };
                crate::proto::wire::apply_patch(pairs, frame);
            }
            // SAFETY: `dst` is a frame claimed by this image, mapped in the
            // direct map and owned by nobody else.
            PageContent::Data(data) => unsafe {
                core::ptr::copy_nonoverlapping(data.as_ptr(), ptr, PAGE_SIZE)
            },
            // SAFETY: As above.
            PageContent::Zero => unsafe { core::ptr::write_bytes(ptr, 0, PAGE_SIZE) },
            PageContent::Sparse(pairs) => {
                // SAFETY: As above: the frame is ours, a page long.
                let frame = unsafe { &mut *ptr.cast::<[u8; PAGE_SIZE]>() };
                crate::proto::wire::fill_sparse(pairs, frame);
            }
            PageContent::Lz4(block) => {
                // SAFETY: As above: the frame is ours, a page long.
                let frame = unsafe { &mut *ptr.cast::<[u8; PAGE_SIZE]>() };
                crate::lz4::decompress(block, frame).map_err(|_| {
                    Failure::new(
                        crate::errno::errno(crate::proto::uapi::EBADMSG),
                        "a compressed page does not decompress to one page",
                    )
                })?;
            }
        }
        Ok(())
    }

    /// Places one incoming page of frame `pfn`.
    pub(crate) fn place(&mut self, pfn: u64, content: &PageContent<'_>) -> Result<(), Failure> {
        if pfn >= self.frames {
            return Err(Failure::new(EINVAL, "page outside the RAM map"));
        }
        let first = !self.received.get(pfn);
        if let PageContent::Patch(_) = content {
            // Changes to the page received before, wherever it is now.
            let at = self.location(pfn).ok_or_else(|| {
                Failure::new(
                    crate::errno::errno(crate::proto::uapi::EBADMSG),
                    "a patch for a page that never arrived",
                )
            })?;
            Self::write(at, content)?;
            if at != pfn {
                if let Some(u) = self.unwritten.as_mut() {
                    u.note(pfn, at);
                }
            }
            return Ok(());
        }
        self.received.set(pfn);
        if first {
            self.pages += 1;
        }
        if self.claimed.get(pfn) {
            // The frame may be serving as a slot: move that page out first.
            let owner = self.owner_of[pfn as usize];
            if owner == TAKEN {
                return Err(Failure::new(
                    EINVAL,
                    "page for a frame holding the jump's own structures",
                ));
            }
            if owner != NONE {
                let new = self.take_spare()?;
                // SAFETY: Both frames are claimed by this image and distinct.
                unsafe {
                    core::ptr::copy_nonoverlapping(frame_ptr(pfn), frame_ptr(new), PAGE_SIZE)
                };
                self.slot_of[owner as usize] = new;
                self.owner_of[new as usize] = owner;
                self.owner_of[pfn as usize] = NONE;
            }
            Self::write(pfn, content)?;
            if first {
                self.direct += 1;
            }
            return Ok(());
        }
        let slot = match self.slot_of[pfn as usize] {
            NONE => {
                let s = self.take_spare()?;
                self.slot_of[pfn as usize] = s;
                self.in_slot.set(pfn);
                self.owner_of[s as usize] = pfn;
                self.slotted += 1;
                s
            }
            s => s,
        };
        Self::write(slot, content)?;
        if let Some(u) = self.unwritten.as_mut() {
            u.note(pfn, slot);
        }
        Ok(())
    }

    /// Hands over what [`crate::unwritten`] learnt, for the jump; the
    /// slotted page of frame `keep` is always copied.
    pub(crate) fn take_unwritten(&mut self, keep: u64) -> Option<Armed> {
        let mut u = self.unwritten.take()?;
        u.forget(keep);
        Some(u)
    }

    /// Whether a page of the image for frame `pfn` has arrived.
    pub(crate) fn holds(&self, pfn: u64) -> bool {
        pfn < self.frames && self.received.get(pfn)
    }

    /// Where the image's page of frame `pfn` is now: its slot, or the frame
    /// itself when it was written in place; `None` if it never arrived.
    pub(crate) fn location(&self, pfn: u64) -> Option<u64> {
        match self.slot_of.get(pfn as usize) {
            Some(&NONE) if self.received.get(pfn) => Some(pfn),
            Some(&NONE) | None => None,
            Some(&slot) => Some(slot),
        }
    }

    /// Every page held in a slot: (slot, home frame).
    pub(crate) fn slots(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.in_slot
            .iter()
            .filter_map(|home| match self.slot_of.get(home as usize) {
                Some(&s) if s != NONE => Some((s, home)),
                _ => None,
            })
    }
}
