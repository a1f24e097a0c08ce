// SPDX-License-Identifier: GPL-2.0

//! MMU notifiers: the user entries the kernel tears down between harvests.
//!
//! When the kernel unmaps a page (`munmap()`, `madvise(MADV_DONTNEED)`,
//! truncation, copy-on-write, migration) or an address space dies, the
//! entry goes and its Dirty bit with it; for a page that lives on (a shared
//! file mapping, a page in the page cache) the write would be lost to the
//! paging tracker. Every address space a harvest walks gets an MMU notifier:
//!
//! - `invalidate_range_start` marks every frame mapped in the range, dirty
//!   or not (a write may still land between this call and the teardown), in
//!   an atomic bitmap the next harvest consumes;
//! - if a harvest consumed those marks before the invalidation ended (its
//!   generation moved on), writes made in between could be lost: the frames
//!   are marked again when it ends, or by the checkpoint if it is stopped
//!   in between. Each invalidation in flight keeps a list of the frames it
//!   marked for that (runs of consecutive frames, up to [`RUNS`]); one
//!   that marked more sets the *full scan* flag instead, and the next round
//!   or the checkpoint hashes every page;
//! - `release` (the address space's last user is gone) marks every dirty
//!   frame: nobody can write any more.
//!
//! Invalidations in flight are tracked in a fixed table of slots, without
//! locks (callbacks may run in atomic context); when the table is full the
//! full-scan flag is set instead.

use crate::bindings;
use crate::pagetable::{self, Leaf, Paging, Visitor, DIRTY, PRESENT, PROTNONE, SAVED_DIRTY};
use crate::paging::DirtyMap;
use crate::shim;
use core::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use kernel::prelude::*;

/// Invalidations tracked at once.
const SLOTS: usize = 64;

/// Runs of consecutive frames an invalidation in flight remembers.
const RUNS: usize = 256;

/// A slot's run count once its invalidation marked more than it can list.
const OVERFLOW: usize = usize::MAX;

/// Frames a listed run holds at most (its low bits).
const RUN_BITS: u32 = 12;

/// State shared by the callbacks (any thread) and the harvest.
pub(crate) struct Shared {
    paging: Paging,
    /// One bit per frame, set by the callbacks; accessed atomically.
    zapped: KVVec<u64>,
    /// Bumped by every harvest after it consumed `zapped`.
    generation: AtomicU64,
    /// Invalidations in flight: the range's address (0: free slot) and the
    /// generation when it started.
    ranges: [AtomicUsize; SLOTS],
    started: [AtomicU64; SLOTS],
    /// Per slot, the runs of frames its invalidation marked, as
    /// `pfn << RUN_BITS | count`; accessed atomically, written only by the
    /// invalidation holding the slot.
    runs: KVVec<u64>,
    /// Per slot, how many runs are listed, or [`OVERFLOW`].
    counts: [AtomicUsize; SLOTS],
    /// Marks may have been lost: hash every page next time.
    full_scan: AtomicBool,
}

impl Shared {
    /// State for frames `[0, frames)`.
    fn new(frames: u64) -> Result<Self> {
        Ok(Self {
            paging: Paging::current(),
            zapped: KVVec::from_elem(0u64, frames.div_ceil(64) as usize, GFP_KERNEL)?,
            generation: AtomicU64::new(1),
            ranges: [const { AtomicUsize::new(0) }; SLOTS],
            started: [const { AtomicU64::new(0) }; SLOTS],
            runs: KVVec::from_elem(0u64, SLOTS * RUNS, GFP_KERNEL)?,
            counts: [const { AtomicUsize::new(0) }; SLOTS],
            full_scan: AtomicBool::new(false),
        })
    }

    /// Word `index` of the bitmap, atomically.
    fn word(&self, index: usize) -> Option<&AtomicU64> {
        atomic_at(&self.zapped, index)
    }

    /// Entry `index` of the slots' run lists, atomically.
    fn run(&self, index: usize) -> Option<&AtomicU64> {
        atomic_at(&self.runs, index)
    }

    /// Lists frames `[pfn, pfn + count)` in `slot`'s runs, extending the
    /// last run when they follow it. Only the invalidation holding the
    /// slot calls this.
    fn list(&self, slot: usize, pfn: u64, count: u64) {
        let Some(counter) = self.counts.get(slot) else {
            return;
        };
        let n = counter.load(Ordering::Acquire);
        if n == OVERFLOW {
            return;
        }
        let max = (1u64 << RUN_BITS) - 1;
        if n > 0 {
            if let Some(last) = self.run(slot * RUNS + n - 1) {
                let v = last.load(Ordering::Relaxed);
                let (start, len) = (v >> RUN_BITS, v & max);
                if start + len == pfn && len + count <= max {
                    last.store(start << RUN_BITS | (len + count), Ordering::Release);
                    return;
                }
            }
        }
        let next = match self.run(slot * RUNS + n) {
            Some(r) if n < RUNS && count <= max => r,
            _ => {
                counter.store(OVERFLOW, Ordering::Release);
                return;
            }
        };
        next.store(pfn << RUN_BITS | count, Ordering::Release);
        counter.store(n + 1, Ordering::Release);
    }

    /// Marks again the frames `slot`'s invalidation listed; false if it
    /// marked more than it could list.
    fn mark_again(&self, slot: usize) -> bool {
        let n = match self.counts.get(slot).map(|c| c.load(Ordering::Acquire)) {
            Some(OVERFLOW) | None => return false,
            Some(n) => n,
        };
        let max = (1u64 << RUN_BITS) - 1;
        for i in 0..n {
            if let Some(r) = self.run(slot * RUNS + i) {
                let v = r.load(Ordering::Acquire);
                self.mark(v >> RUN_BITS, v & max);
            }
        }
        true
    }

    /// Marks frames `[pfn, pfn + count)`.
    fn mark(&self, pfn: u64, count: u64) {
        for p in pfn..pfn.saturating_add(count) {
            if let Some(w) = self.word((p / 64) as usize) {
                w.fetch_or(1 << (p % 64), Ordering::AcqRel);
            }
        }
    }

    /// Marks the frames mapped in `[start, end)` of the address space
    /// rooted at `root`: all of them, or with `dirty_only` the dirty ones.
    /// With `slot`, lists them there too (see [`Self::list`]).
    fn mark_range(&self, root: u64, start: u64, end: u64, dirty_only: bool, slot: Option<usize>) {
        let mut marker = Marker {
            shared: self,
            dirty_only,
            slot,
        };
        let flags = shim::irq_save();
        pagetable::walk(
            self.paging,
            root,
            start,
            end.min(self.paging.half()),
            &mut marker,
        );
        shim::irq_restore(flags);
    }

    /// Moves the marks into `map` and starts a new generation. With
    /// `checkpoint`, also says whether marks may have been lost (then every
    /// page must be hashed); a live harvest reports and clears that flag.
    fn consume(&self, map: &mut DirtyMap, checkpoint: bool) -> bool {
        if checkpoint {
            // Nothing runs, but an invalidation may be stopped between its
            // start and its end: if an earlier harvest consumed its marks,
            // its pages may have been written since. Mark them again.
            let now = self.generation.load(Ordering::SeqCst);
            for (slot, (r, g)) in self.ranges.iter().zip(&self.started).enumerate() {
                if r.load(Ordering::Acquire) != 0
                    && g.load(Ordering::Acquire) < now
                    && !self.mark_again(slot)
                {
                    self.full_scan.store(true, Ordering::Release);
                }
            }
        }
        for i in 0..self.zapped.len() {
            if let Some(w) = self.word(i) {
                let bits = w.swap(0, Ordering::AcqRel);
                if bits != 0 {
                    map.mark_word(i, bits);
                }
            }
        }
        // After the swap: an invalidation that marked before it sees the
        // generation change when it ends.
        self.generation.fetch_add(1, Ordering::SeqCst);
        if !checkpoint {
            return self.full_scan.swap(false, Ordering::AcqRel);
        }
        self.full_scan.load(Ordering::Acquire)
    }

    /// An invalidation of `range` starts; returns the slot it holds.
    fn start(&self, range: usize) -> Option<usize> {
        let generation = self.generation.load(Ordering::SeqCst);
        let slots = self.ranges.iter().zip(&self.started).zip(&self.counts);
        for (slot, ((r, g), count)) in slots.enumerate() {
            if r.compare_exchange(0, range, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
            {
                count.store(0, Ordering::Release);
                g.store(generation, Ordering::Release);
                return Some(slot);
            }
        }
        // No slot: we cannot tell later whether marks were consumed.
        self.full_scan.store(true, Ordering::Release);
        None
    }

    /// The invalidation of `range` ended.
    fn end(&self, range: usize) {
        let now = self.generation.load(Ordering::SeqCst);
        for (slot, (r, g)) in self.ranges.iter().zip(&self.started).enumerate() {
            if r.load(Ordering::Acquire) == range {
                if g.load(Ordering::Acquire) != now && !self.mark_again(slot) {
                    self.full_scan.store(true, Ordering::Release);
                }
                r.store(0, Ordering::Release);
                return;
            }
        }
    }
}

/// Element `index` of `v`, accessed atomically. Every access to `v` after
/// its construction must go through this function.
fn atomic_at(v: &KVVec<u64>, index: usize) -> Option<&AtomicU64> {
    let element = v.get(index)?;
    // SAFETY: `u64` and `AtomicU64` have the same layout, and no access to
    // the vector's elements is non-atomic (see above).
    Some(unsafe { AtomicU64::from_ptr(element as *const u64 as *mut u64) })
}

/// Marks frames for [`Shared::mark_range`].
struct Marker<'a> {
    shared: &'a Shared,
    dirty_only: bool,
    /// The slot of the invalidation marking, to list the frames in.
    slot: Option<usize>,
}

impl Visitor for Marker<'_> {
    fn table(&mut self, _pfn: u64) {}

    fn leaf(&mut self, leaf: Leaf<'_>) -> bool {
        let mapped = leaf.value & (PRESENT | PROTNONE) != 0;
        let dirty = leaf.value & (DIRTY | SAVED_DIRTY) != 0;
        if mapped && (dirty || !self.dirty_only) {
            self.shared.mark(leaf.pfn, leaf.pages);
            if let Some(slot) = self.slot {
                self.shared.list(slot, leaf.pfn, leaf.pages);
            }
        }
        true
    }
}

/// One registered notifier.
#[repr(C)]
struct Subscription {
    /// First, so the kernel's pointer to it is a pointer to us.
    notifier: bindings::mmu_notifier,
    shared: *const Shared,
    mm: *mut bindings::mm_struct,
}

/// The `Shared` behind a notifier the kernel passes back.
///
/// # Safety
///
/// `sub` must be the `notifier` of a live [`Subscription`].
unsafe fn shared_of<'a>(sub: *mut bindings::mmu_notifier) -> &'a Shared {
    // SAFETY: `notifier` is the first field of the `repr(C)` subscription,
    // which points at a `Shared` that outlives every registration.
    unsafe { &*(*sub.cast::<Subscription>()).shared }
}

/// `invalidate_range_start`: marks every frame mapped in the range.
///
/// # Safety
///
/// Called by the kernel with a registered subscription and a live range.
unsafe extern "C" fn range_start(
    sub: *mut bindings::mmu_notifier,
    range: *const bindings::mmu_notifier_range,
) -> i32 {
    // SAFETY: By the function's safety requirements.
    let (shared, r) = unsafe { (shared_of(sub), &*range) };
    let slot = shared.start(range as usize);
    shared.mark_range(
        shim::mm_pgd_pa(r.mm),
        r.start as u64,
        r.end as u64,
        false,
        slot,
    );
    0
}

/// `invalidate_range_end`.
///
/// # Safety
///
/// Called by the kernel with a registered subscription and the range it
/// passed to [`range_start`].
unsafe extern "C" fn range_end(
    sub: *mut bindings::mmu_notifier,
    range: *const bindings::mmu_notifier_range,
) {
    // SAFETY: By the function's safety requirements.
    unsafe { shared_of(sub) }.end(range as usize);
}

/// `release`: the address space's last user is gone; marks what is dirty.
///
/// # Safety
///
/// Called by the kernel with a registered subscription and its live `mm`.
unsafe extern "C" fn release(sub: *mut bindings::mmu_notifier, mm: *mut bindings::mm_struct) {
    // SAFETY: By the function's safety requirements.
    let shared = unsafe { shared_of(sub) };
    shared.mark_range(shim::mm_pgd_pa(mm), 0, shared.paging.half(), true, None);
}

/// The callbacks.
static OPS: bindings::mmu_notifier_ops = bindings::mmu_notifier_ops {
    release: Some(release),
    invalidate_range_start: Some(range_start),
    invalidate_range_end: Some(range_end),
    clear_flush_young: None,
    clear_young: None,
    test_young: None,
    arch_invalidate_secondary_tlbs: None,
    alloc_notifier: None,
    free_notifier: None,
};

/// The notifiers of a migration, and what they found.
pub(crate) struct Notifiers {
    /// Dropped (unregistered) before `shared`.
    subs: KVVec<KBox<Subscription>>,
    shared: KBox<Shared>,
}

// SAFETY: The raw pointers are a registered address space (kept by the
// registration) and our own boxed `Shared`; both may be used from any
// thread.
unsafe impl Send for Notifiers {}

impl Notifiers {
    /// No notifiers yet, for frames `[0, frames)`.
    pub(crate) fn new(frames: u64) -> Result<Self> {
        Ok(Self {
            subs: KVVec::with_capacity(crate::address_spaces::MAX_ADDRESS_SPACES, GFP_KERNEL)?,
            shared: KBox::new(Shared::new(frames)?, GFP_KERNEL)?,
        })
    }

    /// Registers a notifier on `mm` unless it has one. Process context;
    /// the caller holds a reference on `mm`. Takes `mm`'s mmap lock.
    pub(crate) fn watch(&mut self, mm: *mut bindings::mm_struct) -> Result {
        if self.subs.iter().any(|s| s.mm == mm) {
            return Ok(());
        }
        if self.subs.len() == self.subs.capacity() {
            return Err(E2BIG);
        }
        let mut sub = KBox::new(
            Subscription {
                notifier: bindings::mmu_notifier {
                    ops: &OPS,
                    ..Default::default()
                },
                shared: &*self.shared,
                mm,
            },
            GFP_KERNEL,
        )?;
        // SAFETY: The subscription is boxed, so its notifier stays put
        // while registered (until `drop`); `mm` is referenced by the
        // caller. The registration keeps `mm` itself (not its users) alive
        // until unregistered.
        let ret = unsafe { bindings::mmu_notifier_register(&mut sub.notifier, mm) };
        if ret != 0 {
            return Err(Error::from_errno(ret));
        }
        // Within capacity (checked above): no allocation.
        let _ = self.subs.push(sub, GFP_NOWAIT);
        Ok(())
    }

    /// Moves what the notifiers marked into `map`. Returns whether marks
    /// may have been lost, in which case every page must be hashed this
    /// time. `checkpoint`: called with interrupts off, everything stopped.
    pub(crate) fn consume(&self, map: &mut DirtyMap, checkpoint: bool) -> bool {
        self.shared.consume(map, checkpoint)
    }

    /// The storage to leave out of the image.
    pub(crate) fn storage(&self) -> (*const u8, usize) {
        (
            self.shared.zapped.as_ptr().cast(),
            self.shared.zapped.len() * 8,
        )
    }
}

impl Drop for Notifiers {
    fn drop(&mut self) {
        for sub in self.subs.iter_mut() {
            // SAFETY: Registered in `watch` on `sub.mm`, which the
            // registration kept; this waits for running callbacks.
            unsafe { bindings::mmu_notifier_unregister(&mut sub.notifier, sub.mm) };
        }
    }
}
