// SPDX-License-Identifier: GPL-2.0

//! Slotted pages that need no copy at the jump: pages whose home frame held
//! the same bytes when the page arrived, and which this kernel has not
//! written since.
//!
//! Both kernels are booted the same way, so many of the frames this kernel
//! uses, and which the image's pages must therefore wait for in slots, hold
//! what the source's kernel holds there: its text and read-only data, much
//! of its data, and much of the memory map (`struct page` of frames in the
//! same state on both sides). The trampoline compares every slotted page
//! with its home frame and copies only those that differ, but under TCG a
//! compare costs about as much as a copy, inside the downtime.
//!
//! So the loader compares each slotted page with its home frame as it
//! arrives (while pre-copy runs) and watches, through the Dirty bits of its
//! own kernel mappings, for writes to those frames afterwards, as the
//! source's paging tracker does (see `Documentation/selfmig/design.rst`,
//! "Dirty tracking"). At the jump, with interrupts off, devices stopped and
//! `syscore_suspend()` done, one walk of the kernel half finds the frames
//! written since; the other identical pages are dropped from the copy list.
//!
//! Frames of the kernel image and of the memory map are watched: they are
//! written only through the kernel's own mappings (the image mapping, the
//! memory map's, the direct map), never mapped writable to user space and
//! never given to a device for DMA (the swiotlb pool and virtqueue rings,
//! which devices write directly, are other frames). So are slabs, and page
//! cache that no process maps, when their slotted page arrives, through
//! their `struct page` as well (see [`Armed::note`]). Their mappings are
//! 4 KiB pages while the loader listens ([`Splits`]), so a Dirty bit names
//! one frame. Two writers leave no Dirty bit behind:
//!
//! * the CPU itself, which sets Accessed and Dirty bits in page tables (some
//!   of the kernel's are in its image): every kernel page table the walk
//!   visits counts as written;
//! * `text_poke()`, which writes text through a temporary mapping: when its
//!   page table was written since (see [`crate::text_poke`]), or cannot be
//!   found, every frame behind a read-only kernel mapping counts as
//!   written.
//!
//! With `verify=1` the jump compares every page it would leave in place
//! once more and copies (and counts as a miss) any that differs: the
//! resumed image reports the count, and the tests require it to be zero.

use crate::bindings;
use crate::bitmap::Bitmap;
use crate::image::frame_ptr;
use crate::mmu;
use crate::pagetable::{self, Leaf, Paging, Visitor, DIRTY, PRESENT, RW};
use crate::proto::machine::MachineDesc;
use crate::proto::wire::PAGE_SIZE;
use crate::split::Splits;
use core::sync::atomic::Ordering;
use kernel::prelude::*;

/// The kernel image mapping: `__START_KERNEL_map` and `KERNEL_IMAGE_SIZE`.
const IMAGE_MAP: (u64, u64) = (0xffff_ffff_8000_0000, 1 << 30);
/// `sizeof(struct page)`: the memory map's stride.
const STRUCT_PAGE: u64 = core::mem::size_of::<bindings::page>() as u64;

/// What the loader keeps while it listens: its mappings of RAM split into
/// 4 KiB pages, and the page table of `text_poke()`'s mapping.
pub(crate) struct Watch {
    _splits: Splits,
    poke_table: Option<u64>,
}

impl Watch {
    /// Splits this kernel's large mappings of RAM and finds `text_poke()`'s
    /// page table. May sleep (about 200 ms). Quiet: the loader logs what
    /// each migration did with it instead.
    pub(crate) fn new(local: &MachineDesc) -> Self {
        let splits = Splits::new(local, false);
        let poke_table = crate::text_poke::find_poke_table();
        if poke_table.is_none() {
            pr_info!(
                "text_poke()'s page table not found: text pages are always compared at the jump\n"
            );
        }
        Self {
            _splits: splits,
            poke_table,
        }
    }

    /// Starts watching for one image of frames `0..frames`: clears the
    /// Dirty bits of this kernel's 4 KiB mappings and notes which frames
    /// are watched. Call before the first page arrives; allocates
    /// everything the jump needs.
    pub(crate) fn arm(&self, frames: u64) -> Result<Armed> {
        let paging = Paging::current();
        let regions = Regions::new(paging, frames);
        let mut armed = Armed {
            poke_table: self.poke_table,
            regions,
            frames,
            watched: Bitmap::new(frames)?,
            same: Bitmap::new(frames)?,
            written: Bitmap::new(frames)?,
            by_page: Bitmap::new(frames)?,
            memmap_written: Bitmap::new(memmap_pages(frames))?,
            identical: 0,
        };
        let mut arm = Arm {
            watched: &mut armed.watched,
            tables: &mut armed.written,
            frames,
            regions,
        };
        pagetable::walk_kernel_irqs_off(paging, &mut arm);
        // A CPU may still hold a translation that says "dirty"; after this
        // every write sets the bit again.
        mmu::flush_tlb_everywhere();
        // Page tables in the image (the kernel's first ones are in its
        // data) are written by the CPU directly: never watched. New ones
        // are never made in the image or the memory map.
        armed.watched.remove_all(&armed.written);
        armed.written.clear();
        Ok(armed)
    }
}

/// Pages of the memory map describing frames `0..frames`.
fn memmap_pages(frames: u64) -> u64 {
    (frames * STRUCT_PAGE).div_ceil(PAGE_SIZE as u64)
}

/// The page of the memory map holding frame `pfn`'s `struct page`.
fn memmap_page(pfn: u64) -> u64 {
    pfn * STRUCT_PAGE / PAGE_SIZE as u64
}

/// The linear ranges (see [`crate::pagetable`]) of the kernel image
/// mapping and of the memory map, and where the direct map starts.
#[derive(Clone, Copy)]
struct Regions {
    image: (u64, u64),
    memmap: (u64, u64),
    direct: u64,
}

impl Regions {
    /// The regions of the running kernel, for frames `0..frames`.
    fn new(paging: Paging, frames: u64) -> Self {
        let lin = |va: u64| va & (paging.end() - 1);
        // SAFETY: Both are set at boot, never changed after.
        let (memmap, direct) = unsafe { (bindings::vmemmap_base, bindings::page_offset_base) };
        let memmap = lin(memmap as u64);
        Self {
            image: (lin(IMAGE_MAP.0), lin(IMAGE_MAP.0) + IMAGE_MAP.1),
            memmap: (memmap, memmap + frames * STRUCT_PAGE),
            direct: lin(direct as u64),
        }
    }

    /// Whether the linear index `addr` lies in the image mapping or the
    /// memory map.
    fn watched(&self, addr: u64) -> bool {
        (self.image.0..self.image.1).contains(&addr)
            || (self.memmap.0..self.memmap.1).contains(&addr)
    }
}

/// Clears Dirty bits and collects the watched frames and the page tables.
struct Arm<'a> {
    watched: &'a mut Bitmap,
    tables: &'a mut Bitmap,
    frames: u64,
    regions: Regions,
}

impl Visitor for Arm<'_> {
    fn table(&mut self, pfn: u64) {
        self.tables.set(pfn);
    }

    fn walk_repeats_once(&self) -> bool {
        true
    }

    fn leaf(&mut self, leaf: Leaf<'_>) -> bool {
        if leaf.value & PRESENT == 0 {
            return true;
        }
        if leaf.pages == 1 && leaf.value & DIRTY != 0 {
            leaf.entry.fetch_and(!DIRTY, Ordering::AcqRel);
        }
        if self.regions.watched(leaf.addr) {
            let end = leaf.pfn.saturating_add(leaf.pages).min(self.frames);
            for pfn in leaf.pfn..end {
                self.watched.set(pfn);
            }
        }
        true
    }
}

/// Watching one image: which slotted pages are identical at home, and
/// (at the jump) which homes were written since.
pub(crate) struct Armed {
    poke_table: Option<u64>,
    regions: Regions,
    frames: u64,
    /// Frames of the kernel image and the memory map.
    watched: Bitmap,
    /// Watched frames whose slotted page was identical when it arrived.
    same: Bitmap,
    /// Frames written since the arming (filled at the jump).
    written: Bitmap,
    /// Frames of `same` that held a slab, or page cache nobody mapped, when
    /// their page arrived: watched through their `struct page` too (see
    /// [`Armed::note`]).
    by_page: Bitmap,
    /// Pages of the memory map written since the arming, by index from
    /// its start (filled at the jump).
    memmap_written: Bitmap,
    /// Pages in `same`.
    identical: u64,
}

/// Whether two frames hold the same bytes.
fn frames_equal(a: u64, b: u64) -> bool {
    // SAFETY: Both frames are RAM in the direct map, a page each; they are
    // only read, and a concurrent write to `b` (this kernel's frame) is
    // caught by its Dirty bit.
    unsafe {
        let a = core::slice::from_raw_parts(frame_ptr(a), PAGE_SIZE);
        let b = core::slice::from_raw_parts(frame_ptr(b), PAGE_SIZE);
        a == b
    }
}

impl Armed {
    /// The page of frame `home` was just written into `slot`: notes
    /// whether it is identical to what `home` holds.
    ///
    /// Besides the watched frames (kernel image, memory map), a home that
    /// holds a slab, or page cache no process maps, qualifies: the loader's
    /// own files (its root file system, unpacked from the same initramfs
    /// as the source's) and many of its kernel objects sit where the
    /// source's do. Such memory is written only through the direct map
    /// (slab objects; `write()` and any kernel copy into page cache:
    /// `kmap` is the direct map on x86-64; device writes go through the
    /// swiotlb bounce buffers, copied by the CPU), and whatever could
    /// write it otherwise starts by changing its `struct page`: a process
    /// mapping it (the map count), its removal from the cache, its freeing
    /// and reuse (a slab's `struct slab` is its `struct page`). So at the
    /// jump it counts as written if its frame's Dirty bit or the one of
    /// the memory-map page holding its `struct page` is set; the test here
    /// is only a hint, taken without locks, that the memory map then
    /// checks.
    pub(crate) fn note(&mut self, home: u64, slot: u64) {
        let watched = self.watched.get(home);
        let by_page = !watched && mmu::direct_map_only(home);
        let same = (watched || by_page) && frames_equal(slot, home);
        match (same, self.same.get(home)) {
            (true, false) => {
                self.same.set(home);
                self.identical += 1;
            }
            (false, true) => self.forget(home),
            _ => {}
        }
        match same && by_page {
            true => self.by_page.set(home),
            false => self.by_page.unset(home),
        }
    }

    /// Frame `home` holds no slotted page any more, or one that must be
    /// copied whatever it holds.
    pub(crate) fn forget(&mut self, home: u64) {
        if self.same.get(home) {
            self.same.unset(home);
            self.by_page.unset(home);
            self.identical -= 1;
        }
    }

    /// Slotted pages currently identical at home.
    pub(crate) fn identical(&self) -> u64 {
        self.identical
    }

    /// Runs [`Armed::filter`] on the throwaway copy list at `list`, with
    /// interrupts off as at the jump, and forgets what it found: the Dirty
    /// bits it reads stay set, so the jump's own walk finds the same and
    /// more. Only the code's first run is what is wanted (see
    /// [`crate::restore::rehearse`]).
    pub(crate) fn rehearse(&mut self, list: u64) {
        crate::pm::irqs_off();
        let _ = self.filter(list, false);
        crate::pm::irqs_on();
        self.written.clear();
        self.memmap_written.clear();
    }

    /// At the jump (interrupts off, the only CPU online, devices stopped,
    /// nothing of this kernel running afterwards): finds the frames written
    /// since the arming and drops from the copy list starting at `list`
    /// every pair whose home is identical and unwritten. With `check`, such
    /// a pair is compared once more and kept if it differs. Returns the
    /// pairs dropped and the misses `check` found. Not inlined: the
    /// rehearsal must run this very code.
    #[inline(never)]
    pub(crate) fn filter(&mut self, list: u64, check: bool) -> (u64, u64) {
        let paging = Paging::current();
        let mut harvest = Harvest {
            written: &mut self.written,
            memmap_written: &mut self.memmap_written,
            memmap: self.regions.memmap,
            frames: self.frames,
            read_only: false,
        };
        // Where a watched frame can be written: the image mapping, the
        // memory map, and the direct map around each frame that would be
        // left out.
        let root = pagetable::kernel_root();
        let r = self.regions;
        pagetable::walk(paging, root, r.image.0, r.image.1, &mut harvest);
        pagetable::walk(paging, root, r.memmap.0, r.memmap.1, &mut harvest);
        // The direct map by 2 MiB (eight words of the bitmap), in runs.
        let chunks = self.same.words().chunks(8);
        let mut run: Option<(u64, u64)> = None;
        for (c, words) in (0u64..).zip(Iterator::chain(chunks, core::iter::once(&[][..]))) {
            let wanted = words.iter().any(|&w| w != 0);
            match (wanted, run) {
                (true, None) => run = Some((c, c + 1)),
                (true, Some((start, _))) => run = Some((start, c + 1)),
                (false, Some((start, end))) => {
                    let (from, to) = (r.direct + (start << 21), r.direct + (end << 21));
                    pagetable::walk(paging, root, from, to, &mut harvest);
                    run = None;
                }
                (false, None) => {}
            }
        }
        // Text: only `text_poke()` writes it, and only in the image; it
        // writes its page table through the direct map first.
        if let Some(t) = self.poke_table {
            let at = r.direct + (t << 12);
            pagetable::walk(paging, root, at, at + 4096, &mut harvest);
        }
        let poked = self.poke_table.map_or(true, |t| harvest.written.get(t));
        if poked {
            harvest.read_only = true;
            pagetable::walk(paging, root, r.image.0, r.image.1, &mut harvest);
        }
        // SAFETY: Set at boot, never changed after.
        let base = unsafe { bindings::page_offset_base } as u64;
        let (mut dropped, mut misses) = (0, 0);
        let mut page = list;
        while page != 0 {
            let words = page as *mut u64;
            // SAFETY: A copy-list page built by `restore::prepare`: the next
            // page's address, a count, then that many pairs; no one else
            // uses it.
            let (next, count) = unsafe { (*words, *words.add(1)) };
            let mut kept = 0u64;
            for i in 0..count {
                // SAFETY: As above; `i` is below the count.
                let (slot, home) = unsafe {
                    (
                        *words.add(2 + 2 * i as usize),
                        *words.add(3 + 2 * i as usize),
                    )
                };
                let pfn = (home - base) >> 12;
                let mut keep = !self.same.get(pfn)
                    || self.written.get(pfn)
                    || (self.by_page.get(pfn) && self.memmap_written.get(memmap_page(pfn)));
                if !keep {
                    if check && !frames_equal((slot - base) >> 12, pfn) {
                        misses += 1;
                        keep = true;
                    } else {
                        dropped += 1;
                    }
                }
                if keep {
                    // SAFETY: As above; `kept` is at most `i`.
                    unsafe {
                        *words.add(2 + 2 * kept as usize) = slot;
                        *words.add(3 + 2 * kept as usize) = home;
                    }
                    kept += 1;
                }
            }
            // SAFETY: As above.
            unsafe { *words.add(1) = kept };
            page = next;
        }
        (dropped, misses)
    }
}

/// Collects the frames written since the arming.
struct Harvest<'a> {
    written: &'a mut Bitmap,
    /// Pages of the memory map written since the arming, by index.
    memmap_written: &'a mut Bitmap,
    /// The memory map's linear range.
    memmap: (u64, u64),
    frames: u64,
    /// Also every frame behind a read-only mapping (text was poked).
    read_only: bool,
}

impl Harvest<'_> {
    /// Marks frames `pfn..pfn + pages`.
    fn mark(&mut self, pfn: u64, pages: u64) {
        let end = pfn.saturating_add(pages).min(self.frames);
        for f in pfn..end {
            self.written.set(f);
        }
    }

    /// Marks the memory map's pages from linear index `addr` on, `pages`
    /// of them, if they are the memory map's.
    fn mark_memmap(&mut self, addr: u64, pages: u64) {
        if !(self.memmap.0..self.memmap.1).contains(&addr) {
            return;
        }
        let first = (addr - self.memmap.0) / PAGE_SIZE as u64;
        for i in first..first.saturating_add(pages) {
            self.memmap_written.set(i);
        }
    }
}

impl Visitor for Harvest<'_> {
    fn table(&mut self, pfn: u64) {
        // The CPU writes Accessed and Dirty bits into page tables directly.
        self.mark(pfn, 1);
    }

    fn boring(&self, value: u64) -> bool {
        let wanted = match self.read_only {
            false => value & DIRTY != 0,
            true => value & RW == 0,
        };
        value & PRESENT == 0 || !wanted
    }

    fn walk_repeats_once(&self) -> bool {
        true
    }

    fn leaf(&mut self, leaf: Leaf<'_>) -> bool {
        if !self.boring(leaf.value) {
            self.mark(leaf.pfn, leaf.pages);
            if !self.read_only {
                self.mark_memmap(leaf.addr, leaf.pages);
            }
        }
        true
    }
}
