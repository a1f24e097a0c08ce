// SPDX-License-Identifier: GPL-2.0

//! Knowing whether kernel text may have changed: the page table of
//! `text_poke()`'s temporary mapping.
//!
//! At run time the kernel changes its text (static calls, jump labels,
//! ftrace, kprobes, BPF) only through `__text_poke()` in
//! `arch/x86/kernel/alternative.c`: it maps the text page at `poking_addr`
//! in `poking_mm`, writes through that mapping and clears the entry again.
//! The harvest cannot see that mapping's Dirty bit (the entry is gone), so
//! without more it marks every frame behind a read-only kernel mapping in
//! every harvest. But both `set_pte_at()` and `pte_clear()` write
//! `poking_mm`'s page table through the direct map, before and after the
//! text: with the direct map in 4 KiB pages (see [`crate::split`]), the
//! Dirty bit of that table's direct-map entry says whether text was poked
//! since the last harvest.
//!
//! `poking_mm` is not exported, so the table is found by poking: this
//! module's own static call is rewritten (to one function and back), and
//! the page tables written meanwhile are collected; the table is the one
//! written in every poke, in none of the quiet intervals after them, and
//! holding no mapping. If no single table qualifies, the harvest marks
//! read-only frames every time.

use crate::bindings;
use crate::mmu;
use crate::pagetable::{self, Leaf, Paging, Visitor, DIRTY, PRESENT, RW};
use core::sync::atomic::{AtomicU64, Ordering};
use kernel::prelude::*;

/// Pokes at most, each followed by a quiet interval.
const POKES: usize = 4;
/// The quiet interval after each poke, in milliseconds: a table written
/// then was not written by the poke.
const QUIET_MS: u32 = 50;
/// Page tables collected per interval, at most: more means too much else
/// is going on to tell.
const MAX_WRITTEN: usize = 256;

/// A small set of frames.
struct Frames(KVec<u64>);

impl Frames {
    /// An empty set with room for [`MAX_WRITTEN`] frames.
    fn new() -> Option<Self> {
        KVec::with_capacity(MAX_WRITTEN, GFP_KERNEL).ok().map(Self)
    }

    /// The frames in the set.
    fn as_slice(&self) -> &[u64] {
        self.0.as_slice()
    }

    /// Adds `pfn`; `false` if the set is full. Never allocates.
    fn add(&mut self, pfn: u64) -> bool {
        if self.0.as_slice().contains(&pfn) {
            return true;
        }
        self.0.len() < self.0.capacity() && self.0.push(pfn, GFP_NOWAIT).is_ok()
    }

    /// Keeps the frames for which `keep` holds.
    fn retain(&mut self, keep: impl Fn(u64) -> bool) {
        let mut kept = 0;
        let frames = self.0.as_mut_slice();
        for i in 0..frames.len() {
            if keep(frames[i]) {
                frames[kept] = frames[i];
                kept += 1;
            }
        }
        // SAFETY: `kept` is at most the length; the elements are `Copy`.
        unsafe { self.0.set_len(kept) };
    }
}

/// Collects the page tables whose direct-map entry is dirty, clearing the
/// bits.
struct WrittenTables {
    /// The page tables found.
    found: Frames,
    /// Whether there were more than `found` holds.
    overflow: bool,
}

impl Visitor for WrittenTables {
    fn table(&mut self, _pfn: u64) {}

    fn boring(&self, value: u64) -> bool {
        value & (PRESENT | RW | DIRTY) != PRESENT | RW | DIRTY
    }

    fn walk_repeats_once(&self) -> bool {
        true
    }

    fn leaf(&mut self, leaf: Leaf<'_>) -> bool {
        if self.boring(leaf.value) || leaf.pages != 1 {
            return true;
        }
        leaf.entry.fetch_and(!DIRTY, Ordering::AcqRel);
        if mmu::page_is_table(leaf.pfn) && !self.found.add(leaf.pfn) {
            self.overflow = true;
        }
        true
    }
}

/// Clears the Dirty bits of the kernel's 4 KiB entries; returns the page
/// tables among the frames they map, `None` if there were too many.
///
/// Process context, no lock held. The walk keeps interrupts off for
/// several milliseconds once the direct map is split (8 ms under TCG for
/// 1 GiB), so other tasks get their turn before each one: the splits and
/// the first pokes would otherwise keep the guest's own tasks off the CPU
/// for 38-55 ms in a row.
fn written_tables(paging: Paging) -> Option<Frames> {
    crate::clock::cond_resched();
    let mut visitor = WrittenTables {
        found: Frames::new()?,
        overflow: false,
    };
    pagetable::walk_kernel_irqs_off(paging, &mut visitor);
    // A CPU may still hold a translation that says "dirty"; after this it
    // sets the bit again on its next write.
    mmu::flush_tlb_everywhere();
    (!visitor.overflow).then_some(visitor.found)
}

/// Whether every entry of the table at `pfn` is empty.
fn empty_table(pfn: u64) -> bool {
    // SAFETY: `page_offset_base` is set at boot and never changes.
    let base = unsafe { bindings::page_offset_base } as u64;
    // SAFETY: A page table found in RAM, read through the direct map.
    let entries = unsafe { &*((base + (pfn << 12)) as *const [AtomicU64; 512]) };
    entries.iter().all(|e| e.load(Ordering::Relaxed) == 0)
}

/// Finds the frame of `poking_mm`'s page table, or `None`: the one page
/// table written during each poke, never in the quiet interval after one,
/// and empty. Clears the Dirty bits of the kernel's 4 KiB entries on the
/// way: call it before the first harvest (every frame is sent in round 0
/// anyway). May sleep.
pub(crate) fn find_poke_table() -> Option<u64> {
    let paging = Paging::current();
    written_tables(paging)?;
    let mut candidates: Option<Frames> = None;
    for poke in 0..POKES {
        // SAFETY: Process context; the kernel serializes text changes.
        unsafe { bindings::selfmig_text_poke_probe() };
        let poked = written_tables(paging)?;
        match candidates.as_mut() {
            None => candidates = Some(poked),
            Some(c) => c.retain(|t| poked.as_slice().contains(&t)),
        }
        crate::clock::sleep_ms(QUIET_MS);
        let quiet = written_tables(paging)?;
        let c = candidates.as_mut()?;
        c.retain(|t| !quiet.as_slice().contains(&t));
        if poke > 0 && c.as_slice().len() <= 1 {
            break;
        }
    }
    let mut candidates = candidates?;
    candidates.retain(empty_table);
    match candidates.as_slice() {
        [table] => Some(*table),
        _ => None,
    }
}
