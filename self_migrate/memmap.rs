// SPDX-License-Identifier: GPL-2.0

//! Which frames hold the memory map, and whose `struct page`s each holds.
//!
//! The checkpoint hashes every page with no references that is on no free
//! list (see [`crate::tracker::Tracker::unreferenced`]). Asking each frame
//! of RAM whether it is one costs a read of every allocated frame's
//! `struct page` inside the downtime: 4-5 ms under TCG for a 1 GiB guest
//! with a 256 MiB buffer allocated, and it grows with the memory in use.
//!
//! A `struct page` changes only through the memory map's mapping (vmemmap),
//! which is split into 4 KiB pages for the migration (see [`crate::split`])
//! and harvested with the rest of the kernel half. So the tracker asks
//! every frame once, after the first harvest, and after each later harvest
//! (and in the checkpoint) asks again only the frames whose `struct page`s
//! live in a memory-map frame the harvest marked: the others' answers
//! cannot have changed. This index maps a memory-map frame to the frames
//! its `struct page`s describe.

use crate::pagetable::{self, Leaf, Paging, Visitor};
use crate::proto::machine::MachineDesc;
use crate::proto::wire::PAGE_SIZE;
use crate::shim;
use kernel::prelude::*;

/// `sizeof(struct page)`.
const STRUCT_PAGE: u64 = core::mem::size_of::<crate::bindings::page>() as u64;

/// Consecutive frames that hold a consecutive part of the memory map.
#[derive(Clone, Copy)]
struct Run {
    /// The first frame.
    frame: u64,
    /// How many frames.
    frames: u64,
    /// Where the first frame's bytes start in the memory map, from pfn 0's
    /// `struct page`.
    offset: u64,
}

/// The frames holding the memory map of a guest's RAM.
pub(crate) struct MemmapIndex {
    runs: KVVec<Run>,
}

/// Collects the leaves mapping the memory map.
struct Collect {
    /// Linear index of pfn 0's `struct page`.
    base: u64,
    runs: KVVec<Run>,
    /// Set when a run could not be stored.
    failed: bool,
}

impl Visitor for Collect {
    fn table(&mut self, _pfn: u64) {}

    fn leaf(&mut self, leaf: Leaf<'_>) -> bool {
        let Some(offset) = leaf.addr.checked_sub(self.base) else {
            return true;
        };
        if let Some(last) = self.runs.last_mut() {
            let bytes = last.frames * PAGE_SIZE as u64;
            if last.frame + last.frames == leaf.pfn && last.offset + bytes == offset {
                last.frames += leaf.pages;
                return true;
            }
        }
        let run = Run {
            frame: leaf.pfn,
            frames: leaf.pages,
            offset,
        };
        if self.runs.push(run, GFP_KERNEL).is_err() {
            self.failed = true;
            return false;
        }
        true
    }
}

impl MemmapIndex {
    /// Finds the frames holding the `struct page`s of `desc`'s RAM. `None`
    /// for a kernel
    /// without a linear memory map, or if the index cannot be allocated:
    /// the checkpoint then asks every frame. May sleep.
    pub(crate) fn new(desc: &MachineDesc) -> Option<Self> {
        let first = desc.ranges().first()?.start_pfn;
        let end = desc.ranges().last()?.end_pfn();
        let paging = Paging::current();
        let linear = |va: u64| va & (paging.end() - 1);
        let base = linear(shim::memmap_addr(0)?);
        let start = linear(shim::memmap_addr(first)?) & !(PAGE_SIZE as u64 - 1);
        let stop = linear(shim::memmap_addr(end)?);
        let mut collect = Collect {
            base,
            runs: KVVec::new(),
            failed: false,
        };
        // The memory map's tables are freed only when memory is removed,
        // which changes the machine the migration was admitted for: a
        // plain walk. Split or not, the frames are the same.
        pagetable::walk(paging, pagetable::kernel_root(), start, stop, &mut collect);
        if collect.failed || collect.runs.is_empty() {
            return None;
        }
        Some(Self { runs: collect.runs })
    }

    /// Calls `f(pfn, count)` for the frames whose `struct page`s live in a
    /// memory-map frame `marked` says is marked: `count` frames from `pfn`,
    /// at most 64 at a time.
    pub(crate) fn for_each_described(
        &self,
        marked: impl Fn(u64) -> bool,
        mut f: impl FnMut(u64, u32),
    ) {
        for run in self.runs.iter() {
            for k in 0..run.frames {
                if !marked(run.frame + k) {
                    continue;
                }
                let bytes = run.offset + k * PAGE_SIZE as u64;
                let mut pfn = bytes / STRUCT_PAGE;
                let end = (bytes + PAGE_SIZE as u64).div_ceil(STRUCT_PAGE);
                while pfn < end {
                    let count = (end - pfn).min(64);
                    f(pfn, count as u32);
                    pfn += count;
                }
            }
        }
    }
}
