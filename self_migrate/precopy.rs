// SPDX-License-Identifier: GPL-2.0

//! Pre-copy rounds: stream guest memory while the guest keeps running.
//!
//! Round 0 sends every RAM page in use; later rounds send the pages the
//! tracker reports changed. In paging mode each round starts with a harvest
//! of the Dirty bits, and only the frames it marks are hashed. Pages of free
//! buddy blocks are skipped and keep their marks (see
//! [`Tracker::keep_marks`]): a page allocated later either gets written,
//! hence marked, or still holds what it held when it was freed, which the
//! kept mark sends. All-zero pages travel as markers, and a page whose
//! direct-map mapping is absent is counted and not read.

use crate::bindings;
use crate::channel::Channel;
use crate::clock::now_ns;
use crate::control::{self, PagingStats};
use crate::failure::Failure;
use crate::pack::Packer;
use crate::proto::machine::{MachineDesc, RamRange};
use crate::proto::wire::{BatchWriter, PAGE_SIZE};
use crate::shim;
use crate::tracker::Tracker;
use kernel::prelude::*;

/// The kernel virtual address of `pfn` in the direct map, if it is mapped.
pub(crate) fn direct_map_page(pfn: u64) -> Option<&'static [u8; PAGE_SIZE]> {
    // SAFETY: `page_offset_base` is set at boot and never changes.
    let base = unsafe { bindings::page_offset_base } as u64;
    let kvaddr = base + pfn * PAGE_SIZE as u64;
    let mut level = 0u32;
    // SAFETY: `lookup_address` only walks the kernel page tables.
    let pte = unsafe { bindings::lookup_address(kvaddr as _, &mut level) };
    // SAFETY: A non-null result points to a live page-table entry.
    if pte.is_null() || unsafe { (*pte).pte } & (1usize << bindings::_PAGE_BIT_PRESENT) == 0 {
        return None;
    }
    // SAFETY: The direct map covers all RAM and the entry is present, so
    // the page is readable. Other CPUs may write it concurrently; the copy
    // is then stale, which pre-copy tolerates: the tracker sees the change
    // and the page is sent again.
    Some(unsafe { &*(kvaddr as *const [u8; PAGE_SIZE]) })
}

/// The RAM frames of a machine description that are not in free buddy
/// blocks, in ascending order.
pub(crate) struct RamWalk<'a> {
    ranges: &'a [RamRange],
    index: usize,
    pfn: u64,
    /// Frames skipped so far because they were free.
    pub(crate) free: u64,
}

impl<'a> RamWalk<'a> {
    /// A walk over every RAM range of `desc`.
    pub(crate) fn new(desc: &'a MachineDesc) -> Self {
        let ranges = desc.ranges();
        Self {
            ranges,
            index: 0,
            pfn: ranges.first().map_or(0, |r| r.start_pfn),
            free: 0,
        }
    }
}

impl Iterator for RamWalk<'_> {
    type Item = u64;

    fn next(&mut self) -> Option<u64> {
        loop {
            let range = self.ranges.get(self.index)?;
            if self.pfn >= range.end_pfn() {
                self.index += 1;
                self.pfn = self.ranges.get(self.index)?.start_pfn;
                continue;
            }
            let skip = shim::free_block_pages(self.pfn);
            if skip > 0 {
                let n = skip.min(range.end_pfn() - self.pfn);
                self.free += n;
                self.pfn += n;
                continue;
            }
            self.pfn += 1;
            return Some(self.pfn - 1);
        }
    }
}

/// The frames a round of the paging tracker reads after round 0: its
/// candidates (marked, or never sent), found a 64-frame word of its maps at
/// a time, that are RAM and not in free buddy blocks. Walking every RAM
/// frame instead, as round 0 must, cost 25-30 ms a round for a 1 GiB guest
/// under TCG, time in which a busy guest dirtied more pages.
pub(crate) struct CandidateWalk<'a> {
    ranges: &'a [RamRange],
    /// One past the last frame of RAM.
    end: u64,
    /// The next word of the maps to read.
    word: usize,
    /// Candidates of the word read last, not yet visited.
    bits: u64,
    /// The frame of that word's bit 0.
    base: u64,
    /// Candidates skipped so far because they were free.
    pub(crate) free: u64,
    /// Whether the frames the tracker knows to be unreferenced are
    /// candidates too (the checkpoint's walk).
    unreferenced: bool,
}

impl<'a> CandidateWalk<'a> {
    /// A walk over the candidates among `desc`'s RAM frames.
    pub(crate) fn new(desc: &'a MachineDesc) -> Self {
        let ranges = desc.ranges();
        Self {
            ranges,
            end: ranges.last().map_or(0, |r| r.end_pfn()),
            word: 0,
            bits: 0,
            base: 0,
            free: 0,
            unreferenced: false,
        }
    }

    /// The checkpoint's walk: the candidates and the frames the tracker
    /// knows to be unreferenced (see [`Tracker::unreferenced`]).
    pub(crate) fn with_unreferenced(mut self) -> Self {
        self.unreferenced = true;
        self
    }

    /// The candidates of word `index` of the maps.
    fn word_bits(&self, tracker: &Tracker, index: usize) -> u64 {
        let mut bits = tracker.candidates(index);
        if self.unreferenced {
            bits |= tracker.unreferenced_word(index);
        }
        bits
    }

    /// The next candidate, as `tracker` marks them now.
    pub(crate) fn next(&mut self, tracker: &Tracker) -> Option<u64> {
        loop {
            while self.bits == 0 {
                self.base = self.word as u64 * 64;
                if self.base >= self.end {
                    return None;
                }
                self.bits = self.word_bits(tracker, self.word);
                self.word += 1;
            }
            let pfn = self.base + u64::from(self.bits.trailing_zeros());
            if !self
                .ranges
                .iter()
                .any(|r| r.start_pfn <= pfn && pfn < r.end_pfn())
            {
                self.bits &= self.bits - 1;
                continue;
            }
            let free_end = shim::free_block_end(pfn);
            if free_end > pfn {
                self.skip(tracker, free_end);
                continue;
            }
            self.bits &= self.bits - 1;
            return Some(pfn);
        }
    }

    /// Skips the candidates from the one the walk is at up to `end` (the
    /// end of a free block), counting them: whole words at a time, since
    /// free memory is a run of candidates in every word (never sent, and
    /// unreferenced) that would otherwise be visited one by one.
    fn skip(&mut self, tracker: &Tracker, end: u64) {
        let below = |from: u64| match end.saturating_sub(from) {
            n if n >= 64 => u64::MAX,
            n => (1u64 << n) - 1,
        };
        let skipped = self.bits & below(self.base);
        self.free += u64::from(skipped.count_ones());
        self.bits &= !skipped;
        if self.bits != 0 || end <= self.base + 64 {
            return;
        }
        // The block goes on past this word: count the words it covers in
        // full, and leave the one it ends in with its frames below `end`
        // cleared.
        while (self.word as u64 + 1) * 64 <= end && (self.word as u64) * 64 < self.end {
            self.free += u64::from(self.word_bits(tracker, self.word).count_ones());
            self.word += 1;
        }
        self.base = self.word as u64 * 64;
        if self.base < self.end {
            let bits = self.word_bits(tracker, self.word);
            let skipped = bits & below(self.base);
            self.free += u64::from(skipped.count_ones());
            self.bits = bits & !skipped;
            self.word += 1;
        }
    }
}

/// How a round finds its frames.
enum Walk<'a> {
    /// Every RAM frame not free (round 0, or the content-hash tracker).
    Ram(RamWalk<'a>),
    /// The paging tracker's candidates.
    Candidates(CandidateWalk<'a>),
}

impl Walk<'_> {
    /// The next frame to read.
    fn next(&mut self, tracker: &Tracker) -> Option<u64> {
        match self {
            Walk::Ram(w) => w.next(),
            Walk::Candidates(w) => w.next(tracker),
        }
    }

    /// Frames skipped because they were free.
    fn free(&self) -> u64 {
        match self {
            Walk::Ram(w) => w.free,
            Walk::Candidates(w) => w.free,
        }
    }
}

/// What went into a batch.
#[derive(Default)]
pub(crate) struct Tally {
    /// Pages sent as zero markers.
    pub(crate) zero: u64,
    /// Pages of frames never sent before.
    pub(crate) new: u64,
    /// Pages sent compressed (patches included).
    pub(crate) compressed: u64,
    /// Pages sent as patches.
    pub(crate) patched: u64,
}

impl Tally {
    /// Adds `other`'s counts.
    pub(crate) fn add(&mut self, other: &Tally) {
        self.zero += other.zero;
        self.new += other.new;
        self.compressed += other.compressed;
        self.patched += other.patched;
    }
}

/// Pays for the batch's new frames, then sends it (built in `buf`, which
/// has room for the tag) and accounts for it.
pub(crate) fn flush(
    chan: &mut Channel<'_, '_>,
    mut batch: BatchWriter<'_>,
    tally: &Tally,
) -> Result<(), Failure> {
    let pages = batch.count() as u64;
    chan.pay_for(tally.new)?;
    let seq = chan.next_seq();
    let len = batch
        .finish_len(seq)
        .map_err(|_| Failure::new(EINVAL, "building a page batch failed"))?;
    chan.send_built(batch.buffer(), len)?;
    let (bytes, units) = (chan.bytes_sent, chan.units_paid());
    let (zero, compressed, patched) = (tally.zero, tally.compressed, tally.patched);
    control::update(|s, x| {
        s.pages_sent += pages;
        s.bytes_sent = bytes;
        x.zero_pages += zero;
        x.compressed_pages += compressed;
        x.patched_pages += patched;
        x.units_paid = units;
    });
    Ok(())
}

/// What a round did: the pages it sent and the time it spent on pages.
pub(crate) struct Sent {
    /// Pages sent.
    pub(crate) pages: u64,
    /// Pages read and compared with what was sent last.
    pub(crate) checked: u64,
    /// Nanoseconds spent comparing, packing and sending pages (not
    /// harvesting, not walking RAM).
    pub(crate) work_ns: u64,
}

/// One pre-copy round: sends every page the tracker reports changed (all of
/// them in round 0) through batches built in `buf`.
pub(crate) fn round(
    chan: &mut Channel<'_, '_>,
    desc: &MachineDesc,
    tracker: &mut Tracker,
    packer: &mut Packer,
    buf: &mut [u8],
    round: u32,
) -> Result<Sent, Failure> {
    packer.begin_round(round);
    let found = tracker.harvest().map_err(|e| {
        Failure::new(
            e,
            "the paging tracker cannot read the page tables (too many address spaces?)",
        )
    })?;
    let marked = tracker.marked();
    let mut walk = match round > 0 && tracker.is_paging() {
        true => Walk::Candidates(CandidateWalk::new(desc)),
        false => Walk::Ram(RamWalk::new(desc)),
    };
    let (mut sent, mut checked, mut unmapped, mut work_ns) = (0u64, 0u64, 0u64, 0i64);
    let mut visited = 0u64;
    loop {
        let mut batch = BatchWriter::new(&mut *buf, round)
            .map_err(|_| Failure::new(ENOMEM, "send buffer too small"))?;
        let (mut tally, mut more) = (Tally::default(), false);
        while let Some(pfn) = walk.next(tracker) {
            visited += 1;
            if visited % 1024 == 0 {
                crate::clock::cond_resched();
            }
            if tracker.is_excluded(pfn) {
                tracker.take(pfn);
                continue;
            }
            if !tracker.candidate(pfn) {
                continue;
            }
            let Some(page) = direct_map_page(pfn) else {
                unmapped += 1;
                continue;
            };
            if tracker.kept_only(pfn) && shim::page_unreferenced(pfn) {
                // Free (on a per-CPU list) or the tail of a multi-page
                // allocation: the checkpoint hashes such pages anyway.
                // Keep the mark.
                continue;
            }
            let t0 = now_ns();
            tracker.take(pfn);
            checked += 1;
            let changed = tracker.changed(pfn, page);
            if changed {
                packer.push(&mut batch, tracker, pfn, page, &mut tally)?;
                sent += 1;
            }
            work_ns += now_ns() - t0;
            if batch.is_full() {
                more = true;
                break;
            }
        }
        if batch.count() > 0 {
            let t0 = now_ns();
            flush(chan, batch, &tally)?;
            work_ns += now_ns() - t0;
        }
        crate::clock::cond_resched();
        if !more {
            break;
        }
        if control::abort_requested() {
            return Err(control::aborted());
        }
    }
    let free = walk.free();
    let kept = tracker.keep_marks(desc);
    control::update(|s, x| {
        s.round = round;
        s.dirty_pages = sent;
        x.free_pages = free;
        x.free_marked = kept;
        x.unmapped_pages = unmapped;
        if let Some(found) = found {
            x.paging = PagingStats {
                marked_pages: marked,
                dirty_entries: found.dirty_leaves,
                page_tables: found.tables,
                address_spaces: found.address_spaces,
                all_marked: found.all_marked,
            };
        }
    });
    Ok(Sent {
        pages: sent,
        checked,
        work_ns: work_ns.max(0) as u64,
    })
}
