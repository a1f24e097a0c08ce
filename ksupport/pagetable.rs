// SPDX-License-Identifier: GPL-2.0

//! x86-64 page tables, read directly: entry format and a resumable walk.
//!
//! `walk_page_range()` and `init_mm` are not exported to modules, so the
//! paging tracker walks the tables itself, from a root's physical address,
//! through the direct map. Addresses here are *linear indices*, the table
//! indices of every level laid side by side without sign extension: the
//! user half is `[0, half)` and the kernel half `[half, 2 * half)`, where
//! `half` is 2^47 with 4-level paging and 2^56 with 5-level paging.
//!
//! The walk reads each entry once and follows what it read. Whether the
//! tables it follows can be freed under it is the caller's business (see
//! `Documentation/selfmig/design.rst`, "Dirty tracking").

use crate::bindings;
use crate::mmu;
use core::sync::atomic::{AtomicU64, Ordering};

/// Present.
pub(crate) const PRESENT: u64 = 1 << 0;
/// Writable.
pub(crate) const RW: u64 = 1 << 1;
/// Accessed: set by the CPU on any access through the entry.
pub(crate) const ACCESSED: u64 = 1 << 5;
/// Dirty: set by the CPU on the first write through the entry.
pub(crate) const DIRTY: u64 = 1 << 6;
/// Saved Dirty: where the kernel keeps a user entry's Dirty bit while the
/// entry is write-protected (`pte_wrprotect()`, e.g. for copy-on-write
/// after fork); it moves back on `pte_mkwrite()`.
#[allow(dead_code, reason = "used by self_migrate only")]
pub(crate) const SAVED_DIRTY: u64 = 1 << 58;
/// A large page at the PUD or PMD level.
const PSE: u64 = 1 << 7;
/// In a non-present user entry: a PROT_NONE mapping (the global bit).
pub(crate) const PROTNONE: u64 = 1 << 8;
/// A mapping without a refcounted struct page behind it.
#[allow(dead_code, reason = "used by self_migrate only")]
pub(crate) const SPECIAL: u64 = 1 << 9;
/// Physical-address bits of an entry (bits 12-51).
const ADDR_MASK: u64 = 0x000f_ffff_ffff_f000;
/// Entries per table.
const ENTRIES: u64 = 512;
/// Page shift.
const PAGE_SHIFT: u32 = 12;

/// The paging mode the kernel runs with.
#[derive(Clone, Copy)]
pub(crate) struct Paging {
    /// Levels: 4, or 5 with LA57.
    levels: u32,
}

impl Paging {
    /// The mode of the running kernel.
    pub(crate) fn current() -> Self {
        Self {
            levels: if mmu::la57() { 5 } else { 4 },
        }
    }

    /// Shift of the address range one entry of the top level covers.
    fn top_shift(self) -> u32 {
        PAGE_SHIFT + 9 * (self.levels - 1)
    }

    /// Where the kernel half starts, as a linear index.
    pub(crate) fn half(self) -> u64 {
        1u64 << (self.top_shift() + 8)
    }

    /// End of the kernel half.
    pub(crate) fn end(self) -> u64 {
        1u64 << (self.top_shift() + 9)
    }
}

/// A leaf entry the walk found: a 4 KiB, 2 MiB or 1 GiB mapping.
pub(crate) struct Leaf<'a> {
    /// The entry, for atomic updates.
    pub(crate) entry: &'a AtomicU64,
    /// Its value as read.
    pub(crate) value: u64,
    /// First frame it maps.
    pub(crate) pfn: u64,
    /// Frames it maps.
    pub(crate) pages: u64,
    /// The frame of the table holding the entry.
    #[allow(dead_code, reason = "used by self_migrate only")]
    pub(crate) table: u64,
    /// Where it maps, as a linear index (see the module documentation).
    pub(crate) addr: u64,
}

/// What the walk calls.
pub(crate) trait Visitor {
    /// A page table, by frame, before its entries are visited.
    fn table(&mut self, pfn: u64);

    /// A leaf entry. `present` says whether the CPU can use it; a
    /// non-present entry is reported only when it still names a frame (a
    /// PROT_NONE mapping). Returns `false` to stop the walk *before* it:
    /// the walk then returns this leaf's address, to resume from.
    fn leaf(&mut self, leaf: Leaf<'_>) -> bool;

    /// Whether a 4 KiB entry with this value needs no call to
    /// [`Self::leaf`]: a cheap test the walk makes first, since most
    /// entries of a harvest are of no interest.
    fn boring(&self, _value: u64) -> bool {
        false
    }

    /// Whether a run of entries of one table pointing to the same table is
    /// walked once (espfix maps one table from many entries in a row, the
    /// same frames each time): enough for a visitor that only collects.
    fn walk_repeats_once(&self) -> bool {
        false
    }

    /// Whether to walk the table at frame `child`, which `entry` (of the
    /// table at frame `table`, read as `value`, covering `1 << shift`
    /// bytes) points to.
    fn descend(
        &mut self,
        _entry: &AtomicU64,
        _value: u64,
        _shift: u32,
        _table: u64,
        _child: u64,
    ) -> bool {
        true
    }
}

/// The entries of the table at physical address `pa`.
fn table(pa: u64) -> &'static [AtomicU64; ENTRIES as usize] {
    // SAFETY: `page_offset_base` is set at boot and never changes.
    let base = unsafe { bindings::page_offset_base } as u64;
    // SAFETY: Page tables live in RAM, which the direct map covers; the
    // caller keeps the table from being freed while the walk runs (see the
    // module documentation). Entries are only accessed atomically.
    unsafe { &*((base + pa) as *const [AtomicU64; ENTRIES as usize]) }
}

/// Walks `[start, end)` (linear indices) of the tree rooted at the table at
/// physical address `root`. Returns `None` when it covered the range, or
/// `Some(next)` when the visitor stopped it: `next` is where to resume.
pub(crate) fn walk(
    paging: Paging,
    root: u64,
    start: u64,
    end: u64,
    visitor: &mut impl Visitor,
) -> Option<u64> {
    walk_table(root, paging.top_shift(), 0, start, end, visitor)
}

/// Walks the table at `pa`, whose entries each cover `1 << shift` bytes
/// from `base`, within `[start, end)`.
fn walk_table(
    pa: u64,
    shift: u32,
    base: u64,
    start: u64,
    end: u64,
    visitor: &mut impl Visitor,
) -> Option<u64> {
    visitor.table(pa >> PAGE_SHIFT);
    let span = 1u64 << shift;
    let first = (start.saturating_sub(base) >> shift).min(ENTRIES) as usize;
    let last = end.saturating_sub(base).div_ceil(span).min(ENTRIES) as usize;
    let entries = table(pa).get(first..last).unwrap_or(&[]);
    let once = visitor.walk_repeats_once();
    let mut last_child = u64::MAX;
    for (i, entry) in (first..).zip(entries) {
        let value = entry.load(Ordering::Relaxed);
        if shift == PAGE_SHIFT && visitor.boring(value) {
            continue;
        }
        let addr = base + i as u64 * span;
        let present = value & PRESENT != 0;
        let leaf = shift == PAGE_SHIFT || value & PSE != 0;
        if !(present || (leaf && value & PROTNONE != 0)) {
            continue;
        }
        if !leaf {
            let child = value & ADDR_MASK;
            if once && core::mem::replace(&mut last_child, child) == child {
                continue;
            }
            if !visitor.descend(entry, value, shift, pa >> PAGE_SHIFT, child >> PAGE_SHIFT) {
                continue;
            }
            if let Some(next) = walk_table(child, shift - 9, addr, start, end, visitor) {
                return Some(next);
            }
            continue;
        }
        let mask = ADDR_MASK & !(span - 1);
        let found = Leaf {
            entry,
            value,
            pfn: (value & mask) >> PAGE_SHIFT,
            pages: span >> PAGE_SHIFT,
            table: pa >> PAGE_SHIFT,
            addr,
        };
        if !visitor.leaf(found) {
            return Some(addr);
        }
    }
    None
}

/// Walks the whole kernel half, from the root this CPU runs on.
pub(crate) fn walk_kernel(paging: Paging, visitor: &mut impl Visitor) {
    walk(paging, kernel_root(), paging.half(), paging.end(), visitor);
}

/// [`walk_kernel`] with interrupts off (the caller's are on).
pub(crate) fn walk_kernel_irqs_off(paging: Paging, visitor: &mut impl Visitor) {
    crate::pm::irqs_off();
    walk_kernel(paging, visitor);
    crate::pm::irqs_on();
}

/// The physical address of the page-table root this CPU runs on (its
/// kernel half is the same in every address space).
pub(crate) fn kernel_root() -> u64 {
    mmu::cr3_pa()
}
