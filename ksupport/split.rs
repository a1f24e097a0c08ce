// SPDX-License-Identifier: GPL-2.0

//! Splitting the kernel's large writable mappings of RAM into 4 KiB pages
//! for the length of a migration, and joining them again afterwards.
//!
//! The direct map, the memory map (vmemmap) and the kernel image's data
//! are mapped with 2 MiB and 1 GiB pages. A Dirty bit on such a page says
//! only that one of its 512 (or 262,144) frames was written, so every
//! frame behind it must be hashed to find the one that changed. Mapped by
//! 4 KiB pages, the Dirty bit names the frame.
//!
//! `set_memory_4k()` is not exported, so the split is done here, the way
//! `split_large_page()` in `arch/x86/mm/pat/set_memory.c` does it: a new
//! table whose entries map the same frames with the same attributes, put
//! in place of the large entry, then a TLB flush on every CPU. Both
//! translations agree on frame and attributes, so a CPU that still uses
//! the large one in between is right too. The entry is swapped with a
//! compare-and-exchange against the value read: if the kernel changed it
//! meanwhile (`set_memory_*()` holds `pgd_lock`, which modules cannot
//! take), the split of that entry is dropped. If the kernel changes a
//! split entry later, its change wins and the join leaves that table alone.
//!
//! Joining (when the migration ends, on whichever machine it ends) puts
//! back each large entry whose table still maps exactly what the large
//! entry did, flushes every CPU's TLB, waits for an RCU grace period and
//! frees the tables, as `cpa_collapse_large_pages()` does in later kernels.
//! A table the kernel has changed since (it split a page further, or
//! changed a page's attributes) stays: it is a page table like any the
//! kernel made itself.

use crate::bindings;
use crate::mmu;
use crate::pagetable::{self, Leaf, Paging, Visitor, ACCESSED, DIRTY, PRESENT, RW};
use crate::proto::machine::MachineDesc;
use core::sync::atomic::{AtomicU64, Ordering};
use kernel::prelude::*;

/// A large page (at the PUD and PMD levels).
const PSE: u64 = 1 << 7;
/// PAT bit of a large entry (bit 7 is PSE there).
const PAT_LARGE: u64 = 1 << 12;
/// PAT bit of a 4 KiB entry.
const PAT_4K: u64 = 1 << 7;
/// Flags of a kernel entry pointing to a table (`_KERNPG_TABLE`).
const KERNEL_TABLE: u64 = PRESENT | RW | ACCESSED | DIRTY;
/// Frames mapped by a 2 MiB page.
const PMD_PAGES: u64 = 512;
/// Frames mapped by a 1 GiB page.
const PUD_PAGES: u64 = 512 * 512;

/// The `i`-th of the 512 entries that map what the large entry `large`
/// maps, one level down (`pages`: frames `large` maps). Built from the
/// large entry itself, so every attribute bit carries over (including a
/// memory-encryption bit inside the address field).
fn child(large: u64, pages: u64, i: u64) -> u64 {
    let step = (pages >> 9) << 12;
    if pages == PMD_PAGES {
        // 4 KiB entries: no PSE, and PAT moves from bit 12 to bit 7.
        let pat = if large & PAT_LARGE != 0 { PAT_4K } else { 0 };
        (large & !(PSE | PAT_LARGE)).wrapping_add(i.wrapping_mul(step)) | pat
    } else {
        // 2 MiB entries keep PSE and PAT where they are.
        large.wrapping_add(i.wrapping_mul(step))
    }
}

/// Whether `entry` maps what `want` maps, Accessed and Dirty aside.
fn same_mapping(entry: u64, want: u64) -> bool {
    (entry ^ want) & !(ACCESSED | DIRTY) == 0
}

/// One large entry replaced by a table.
struct Split {
    /// The entry (in a kernel page table, through the direct map).
    entry: *const AtomicU64,
    /// Its value before.
    large: u64,
    /// Frames it maps: [`PMD_PAGES`] or [`PUD_PAGES`].
    pages: u64,
    /// The table now in its place (direct-map address of a page we own).
    table: u64,
}

impl Split {
    /// The table's entries.
    fn entries(&self) -> &[AtomicU64; 512] {
        // SAFETY: `table` is a page allocated by `split_one`, freed only
        // by `Splits::join` after it is out of the tables.
        unsafe { &*(self.table as *const [AtomicU64; 512]) }
    }

    /// The entry's value while the table is in place.
    fn published(&self) -> u64 {
        self.table.wrapping_sub(direct_map_base()) | KERNEL_TABLE
    }

    /// The entry.
    fn entry(&self) -> &AtomicU64 {
        // SAFETY: Kernel page tables of the direct map, memory map and
        // kernel image are never freed while the guest runs.
        unsafe { &*self.entry }
    }
}

/// The direct map's base (`page_offset_base`).
fn direct_map_base() -> u64 {
    // SAFETY: Set at boot, never changed after.
    unsafe { bindings::page_offset_base as u64 }
}

/// Collects the large writable entries that map RAM.
struct Finder<'a> {
    /// The RAM map.
    desc: &'a MachineDesc,
    /// Only entries of this size ([`PMD_PAGES`] or [`PUD_PAGES`]).
    pages: u64,
    /// The entries found and their values (capacity reserved).
    found: &'a mut KVec<(*const AtomicU64, u64)>,
}

impl Visitor for Finder<'_> {
    fn table(&mut self, _pfn: u64) {}

    fn leaf(&mut self, leaf: Leaf<'_>) -> bool {
        let v = leaf.value;
        if v & (PRESENT | RW) != PRESENT | RW || leaf.pages != self.pages {
            return true;
        }
        // RAM only (not a large ioremap of device memory).
        if !self.desc.contains_pfn(leaf.pfn)
            || !self
                .desc
                .contains_pfn(leaf.pfn.saturating_add(leaf.pages - 1))
        {
            return true;
        }
        // Capacity is reserved beforehand: interrupts are off here.
        if self.found.len() < self.found.capacity() {
            let _ = self
                .found
                .push((leaf.entry as *const AtomicU64, v), GFP_NOWAIT);
        }
        true
    }
}

/// Large entries split between two offers to let other tasks run.
const SPLITS_PER_TURN: usize = 32;

/// The large mappings split for a migration, joined again on drop.
pub(crate) struct Splits {
    /// Every entry replaced, 1 GiB ones first.
    splits: KVec<Split>,
    /// Whether the split and the join are logged (failures always are).
    log: bool,
}

impl Splits {
    /// Splits every large writable kernel mapping of RAM in `desc` into
    /// 4 KiB pages. Never fails: what cannot be split (no memory, an entry
    /// that changed under us) stays large, which costs hashing, not
    /// correctness. With `log`, says what it did (and the join will).
    /// Process context, no lock held: it lets other tasks run between
    /// splits.
    pub(crate) fn new(desc: &MachineDesc, log: bool) -> Self {
        let mut this = Self {
            splits: KVec::new(),
            log,
        };
        let paging = Paging::current();
        let frames = desc.ranges().last().map_or(0, |r| r.end_pfn());
        let (mut tables, mut skipped) = (0u64, 0u64);
        // 1 GiB pages first (into 2 MiB ones), then every 2 MiB page.
        for pages in [PUD_PAGES, PMD_PAGES] {
            let mut found = KVec::new();
            // The direct map, the memory map and the kernel image map RAM:
            // at most twice as many large entries as RAM holds large pages.
            let room = frames
                .checked_div(pages)
                .unwrap_or(0)
                .saturating_mul(2)
                .saturating_add(64) as usize;
            if found.reserve(room, GFP_KERNEL).is_err() {
                break;
            }
            let mut finder = Finder {
                desc,
                pages,
                found: &mut found,
            };
            pagetable::walk_kernel_irqs_off(paging, &mut finder);
            if this.splits.reserve(found.len(), GFP_KERNEL).is_err() {
                break;
            }
            for (i, &(entry, large)) in found.iter().enumerate() {
                if i % SPLITS_PER_TURN == SPLITS_PER_TURN - 1 {
                    // 512 splits take 15-20 ms under TCG: without a turn
                    // for the guest's tasks, a kernel without preemption
                    // would not answer its network for that long.
                    crate::clock::cond_resched();
                }
                match split_one(entry, large, pages) {
                    Some(split) => {
                        // Reserved above: no allocation.
                        let _ = this.splits.push(split, GFP_KERNEL);
                        tables += 1;
                    }
                    None => skipped += 1,
                }
            }
            // Before the next level's walk and before any Dirty bit of the
            // new entries is trusted, no CPU may use the large ones.
            mmu::flush_tlb_everywhere();
        }
        if log || skipped > 0 {
            pr_info!(
                "large kernel mappings of RAM split into 4 KiB pages: {} tables ({} KiB){}\n",
                tables,
                tables.saturating_mul(4),
                if skipped > 0 { ", some left large" } else { "" }
            );
        }
        this
    }
}

/// Replaces the large entry at `entry`, read as `large`, with a table of
/// 512 entries mapping the same. `None` if no page was free or the entry
/// changed meanwhile.
fn split_one(entry: *const AtomicU64, large: u64, pages: u64) -> Option<Split> {
    // SAFETY: Plain page allocation; 0 on failure.
    let table = unsafe { bindings::get_zeroed_page_noprof(bindings::SELFMIG_GFP_KERNEL) } as u64;
    if table == 0 {
        return None;
    }
    let split = Split {
        entry,
        large,
        pages,
        table,
    };
    for (i, e) in split.entries().iter().enumerate() {
        e.store(child(large, pages, i as u64), Ordering::Relaxed);
    }
    // The table's entries are visible before the entry that points to it.
    match split.entry().compare_exchange(
        large,
        split.published(),
        Ordering::AcqRel,
        Ordering::Relaxed,
    ) {
        Ok(_) => Some(split),
        Err(_) => {
            free_table(table);
            None
        }
    }
}

/// Frees a table page.
fn free_table(table: u64) {
    // SAFETY: `table` came from `get_zeroed_page` and is referenced by no
    // page table (never put in, or taken out and flushed everywhere).
    unsafe { bindings::free_pages(table as _, 0) };
}

impl Drop for Splits {
    /// Joins back every split whose table still maps what the large entry
    /// did, 2 MiB pages before the 1 GiB pages they may form.
    fn drop(&mut self) {
        let mut joined = KVec::new();
        if joined.reserve(self.splits.len(), GFP_KERNEL).is_err() {
            pr_warn!("cannot allocate the list to join large mappings; they stay split\n");
            return;
        }
        let mut kept = 0u64;
        for pages in [PMD_PAGES, PUD_PAGES] {
            for split in self.splits.iter().filter(|s| s.pages == pages) {
                let intact = split.entries().iter().enumerate().all(|(i, e)| {
                    same_mapping(
                        e.load(Ordering::Relaxed),
                        child(split.large, pages, i as u64),
                    )
                });
                let cur = split.entry().load(Ordering::Relaxed);
                if same_mapping(cur, split.published()) {
                    if intact
                        && split
                            .entry()
                            .compare_exchange(cur, split.large, Ordering::AcqRel, Ordering::Relaxed)
                            .is_ok()
                    {
                        let _ = joined.push(split.table, GFP_KERNEL);
                    } else {
                        kept += 1;
                    }
                } else {
                    // The kernel replaced our table; nothing uses it after
                    // the flush below.
                    let _ = joined.push(split.table, GFP_KERNEL);
                }
            }
            // 1 GiB entries are checked against 2 MiB entries that must
            // already be large again, and the CPUs must not use the tables
            // freed below.
            mmu::flush_tlb_everywhere();
        }
        // Walkers that read a table entry before the flush are done after
        // a grace period (page-table walks do not sleep).
        // SAFETY: Process context.
        unsafe { bindings::synchronize_rcu() };
        for &table in joined.iter() {
            free_table(table);
        }
        if self.log {
            pr_info!(
                "large kernel mappings joined again: {} tables freed, {} kept (changed by the kernel since)\n",
                joined.len(),
                kept
            );
        }
    }
}
