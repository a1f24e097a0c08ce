// SPDX-License-Identifier: GPL-2.0

//! The loader's own code, moved out of the image's way.
//!
//! The frames holding this module's code belong to this kernel, so the
//! image's pages for those frames wait in slots and the trampoline writes
//! them at the jump. Under an emulator that translates guest code (QEMU's
//! TCG), a store to a frame holding translated code is slow: each one
//! invalidates the translations it overlaps, and stores stay on that slow
//! path until no translation is left in the frame. The loader runs its code
//! until the jump, so every one of its text frames is such a frame when the
//! trampoline writes it: about 0.3 ms a page, 6 ms for the loader's text,
//! inside the downtime.
//!
//! So once pre-copy's second round begins (the reserve has just moved out
//! of the image's way, see [`crate::image::Image::settle`]), [`MovedText`]
//! copies the text into frames the image has not sent, switches the module
//! mapping to the copies with every CPU stopped, and writes every word of
//! the old frames once (the value it holds), which drops their translations
//! while the guest still runs. The old frames stay the module's: its
//! `vm_struct` lists them, and `vfree()` frees them when the module goes.
//! When the migration ends without a jump the mapping is switched back, any
//! change made to the code meanwhile (a static key flipped through
//! `text_poke()`, which finds the frame through the page tables) copied
//! first.
//!
//! Other modules' code cannot be moved from under them, but what this
//! kernel ran of it (the `self_migrate` module's initialisation, when a
//! guest loads both modules) holds translations just the same: with every
//! CPU stopped for the switch, every word of every other executable page of
//! the module area is written once too (the value it holds; no CPU runs or
//! pokes code meanwhile). Code run again later is translated again.
//!
//! Under KVM or on hardware a write to a code frame costs nothing special:
//! there this costs a copy of the text and gains nothing.

use crate::bindings;
use crate::failure::Failure;
use crate::image::{alloc_block, frame_ptr, page_to_pfn, pfn_to_page};
use crate::pagetable::{self, Leaf, Paging, Visitor, PRESENT};
use crate::proto::wire::PAGE_SIZE;
use core::ffi::c_void;
use core::sync::atomic::{AtomicBool, Ordering};
use kernel::prelude::*;

/// How many blocks [`MovedText::move_out`] may draw before it gives up
/// finding one the image has not sent.
const DRAWS: usize = 8;

/// Bit 63 of an entry: not executable.
const NX: u64 = 1 << 63;

/// One page of the loader's code.
struct Moved {
    /// The kernel's entry mapping it.
    pte: *mut bindings::pte_t,
    /// The frame the module was loaded into.
    old: *mut bindings::page,
    /// The frame holding the copy.
    new: *mut bindings::page,
}

/// The loader's code, running from copies; switched back when dropped.
pub(crate) struct MovedText {
    pages: KVec<Moved>,
    /// The frames of the copies.
    block: Option<Block>,
    /// Pages of other code written in place.
    others: usize,
    /// A writable mapping of the old frames, in the order of `pages`.
    alias: *mut u8,
}

/// What [`switch_cpu`] does, on every online CPU at once.
struct Switch<'a> {
    pages: &'a [Moved],
    alias: *mut u8,
    /// Other code to write once, in place (see the module documentation).
    others: Option<&'a OtherCode>,
    /// To the copies (or back to the module's frames).
    to_new: bool,
    /// Claimed by the CPU that switches.
    leader: AtomicBool,
    /// Set once it has.
    done: AtomicBool,
}

/// `stop_machine()` callback: one CPU copies the code and switches the
/// entries, the others wait for it; then each flushes its TLB.
///
/// # Safety
///
/// `data` points to a [`Switch`] whose pages are valid, and every online
/// CPU runs this at once with interrupts off (`stop_machine()` with the
/// online mask), so nothing runs the code being moved meanwhile.
unsafe extern "C" fn switch_cpu(data: *mut c_void) -> i32 {
    // SAFETY: The caller passes a `Switch` that outlives `stop_machine()`.
    let s = unsafe { &*data.cast::<Switch<'_>>() };
    if !s.leader.swap(true, Ordering::AcqRel) {
        for (i, m) in s.pages.iter().enumerate() {
            // SAFETY: `alias` maps the old frames writable, one page each
            // in order; the new frames are this module's own allocations,
            // mapped in the direct map; the two never overlap.
            let old = unsafe { s.alias.add(i * PAGE_SIZE) };
            let new = frame_ptr(page_to_pfn(m.new));
            let (from, to, pfn) = match s.to_new {
                true => (old, new, page_to_pfn(m.new)),
                false => (new, old, page_to_pfn(m.old)),
            };
            // SAFETY: As above; both are whole pages.
            unsafe { core::ptr::copy_nonoverlapping(from, to, PAGE_SIZE) };
            // SAFETY: `pte` is the present 4 KiB entry of this page of the
            // module's text, found by `lookup_address()`.
            unsafe { bindings::selfmig_pte_set_pfn(m.pte, pfn as _) };
        }
        if let Some(others) = s.others {
            rewrite(others.alias, others.pages.len());
        }
        s.done.store(true, Ordering::Release);
    } else {
        while !s.done.load(Ordering::Acquire) {
            core::hint::spin_loop();
        }
    }
    // SAFETY: Interrupts are off here; flushes this CPU's TLB only.
    unsafe { bindings::selfmig_flush_tlb_all_local(core::ptr::null_mut()) };
    0
}

/// Writes every word of `count` pages mapped writable at `alias` with the
/// value it holds, which drops what an emulator translated from them.
fn rewrite(alias: *mut u8, count: usize) {
    let base = alias.cast::<u64>();
    for i in 0..count * PAGE_SIZE / 8 {
        // SAFETY: Callers pass `count` pages mapped writable at `alias`,
        // which nothing else writes meanwhile (or, for code in use, with
        // every other CPU stopped and none inside a text poke).
        unsafe {
            let p = base.add(i);
            core::ptr::write_volatile(p, core::ptr::read_volatile(p));
        }
    }
}

/// Runs [`switch_cpu`] on every online CPU; whether the switch happened.
fn switch(pages: &[Moved], alias: *mut u8, to_new: bool, others: Option<&OtherCode>) -> bool {
    let s = Switch {
        pages,
        alias,
        others,
        to_new,
        leader: AtomicBool::new(false),
        done: AtomicBool::new(false),
    };
    // SAFETY: `switch_cpu` gets a `Switch` that lives until this returns,
    // on every online CPU at once.
    unsafe {
        bindings::stop_machine(
            Some(switch_cpu),
            core::ptr::addr_of!(s).cast_mut().cast(),
            core::ptr::addr_of!(bindings::__cpu_online_mask),
        )
    };
    s.done.load(Ordering::Acquire)
}

/// A block of frames: first page and order.
#[derive(Clone, Copy)]
struct Block {
    first: *mut bindings::page,
    order: u32,
}

impl Block {
    /// Frees the block.
    fn free(self) {
        // SAFETY: Callers pass blocks allocated by [`draw`] with this order
        // and no longer used.
        unsafe { bindings::__free_pages(self.first, self.order) };
    }
}

/// Allocates a block of at least `count` frames, none of which `avoid`
/// rejects; `None` after `DRAWS` tries. A block of more than one frame
/// comes from the buddy lists, not from the per-CPU lists of recently freed
/// frames, so after [`crate::image::Image::settle`] it is the reserve, which
/// the image did not use. Rejected blocks go to `rejects`.
fn draw(count: usize, avoid: &impl Fn(u64) -> bool, rejects: &mut KVec<Block>) -> Option<Block> {
    let order = count.max(2).next_power_of_two().trailing_zeros();
    for _ in 0..DRAWS {
        // Freed by the caller.
        let first = alloc_block(bindings::SELFMIG_GFP_KERNEL, order)?;
        let block = Block { first, order };
        let pfn = page_to_pfn(first);
        if !(pfn..pfn + count as u64).any(avoid) {
            return Some(block);
        }
        if rejects.push(block, GFP_KERNEL).is_err() {
            block.free();
        }
    }
    None
}

/// The frames behind the executable 4 KiB entries of the module area,
/// other than the loader's copies, each held by a reference and mapped
/// writable.
struct OtherCode {
    pages: KVec<*mut bindings::page>,
    alias: *mut u8,
}

/// Collects [`OtherCode`]'s frames.
struct Collect<'a> {
    pages: &'a mut KVec<*mut bindings::page>,
    /// The loader's own code, `[start, end)` as linear indices: moved, not
    /// written in place.
    ours: (u64, u64),
}

impl Visitor for Collect<'_> {
    fn table(&mut self, _pfn: u64) {}

    fn leaf(&mut self, leaf: Leaf<'_>) -> bool {
        if leaf.value & PRESENT == 0 || leaf.value & NX != 0 || leaf.pages != 1 {
            return true;
        }
        if (self.ours.0..self.ours.1).contains(&leaf.addr) {
            return true;
        }
        let page = pfn_to_page(leaf.pfn);
        // SAFETY: `page` is the `struct page` of a mapped frame; the
        // reference is taken only if the frame is not free (its module may
        // be going away meanwhile).
        if !unsafe { bindings::selfmig_try_get_page(page) } {
            return true;
        }
        if self.pages.push(page, GFP_KERNEL).is_err() {
            // SAFETY: The reference taken just above.
            unsafe { bindings::selfmig_put_page(page) };
            return false;
        }
        true
    }
}

impl OtherCode {
    /// Finds the code of the module area, except the loader's own at
    /// addresses `[base, base + len)`.
    fn collect(base: usize, len: usize) -> Result<Self, Failure> {
        let mut code = Self {
            pages: KVec::new(),
            alias: core::ptr::null_mut(),
        };
        let paging = Paging::current();
        let lin = |va: u64| va & (paging.end() - 1);
        let ours = (lin(base as u64), lin((base + len) as u64));
        let (start, end) = (
            lin(bindings::SELFMIG_MODULES_VADDR as u64),
            lin(bindings::SELFMIG_MODULES_END as u64),
        );
        let mut collect = Collect {
            pages: &mut code.pages,
            ours,
        };
        if pagetable::walk(paging, pagetable::kernel_root(), start, end, &mut collect).is_some() {
            return Err(Failure::new(ENOMEM, "cannot list the modules' code"));
        }
        if !code.pages.is_empty() {
            // SAFETY: `pages` holds that many pages, each referenced.
            code.alias = unsafe {
                bindings::selfmig_vmap_rw(code.pages.as_mut_ptr(), code.pages.len() as u32)
            }
            .cast();
            if code.alias.is_null() {
                return Err(Failure::new(
                    ENOMEM,
                    "cannot map the modules' code writable",
                ));
            }
        }
        Ok(code)
    }
}

impl Drop for OtherCode {
    fn drop(&mut self) {
        if !self.alias.is_null() {
            // SAFETY: Mapped by `selfmig_vmap_rw` and no longer used.
            unsafe { bindings::vunmap(self.alias.cast()) };
        }
        for &page in self.pages.iter() {
            // SAFETY: Each was referenced in `Collect::leaf`.
            unsafe { bindings::selfmig_put_page(page) };
        }
    }
}

impl MovedText {
    /// Moves the loader's code to frames for which `avoid` is false (those
    /// the image has not sent), then drops the translations an emulator
    /// holds for the old frames. Returns the moved text.
    pub(crate) fn move_out(avoid: impl Fn(u64) -> bool) -> Result<Self, Failure> {
        // SAFETY: `THIS_MODULE` is this module, loaded and live; its text
        // region does not change while it is.
        let text = unsafe {
            let m = crate::THIS_MODULE.as_ptr().cast::<bindings::module>();
            &(*m).mem[bindings::mod_mem_type_MOD_TEXT as usize]
        };
        let (base, len) = (text.base as usize, text.size as usize);
        let count = len.div_ceil(PAGE_SIZE);
        let mut moved = Self {
            pages: KVec::with_capacity(count, GFP_KERNEL)
                .map_err(|_| Failure::new(ENOMEM, "cannot allocate the list of code pages"))?,
            alias: core::ptr::null_mut(),
            block: None,
            others: 0,
        };
        let mut olds = KVec::with_capacity(count, GFP_KERNEL)
            .map_err(|_| Failure::new(ENOMEM, "cannot allocate the list of code pages"))?;
        let mut rejects = KVec::new();
        moved.block = draw(count, &avoid, &mut rejects);
        for block in rejects {
            block.free();
        }
        let first = moved
            .block
            .map(|b| page_to_pfn(b.first))
            .ok_or(Failure::new(
                ENOMEM,
                "no frames outside the image for the code",
            ))?;
        for i in 0..count {
            // SAFETY: Looks the address up in the kernel's tables only.
            let pte = unsafe { bindings::selfmig_kernel_pte_4k((base + i * PAGE_SIZE) as _) };
            if pte.is_null() {
                return Err(Failure::new(
                    EINVAL,
                    "the loader's code is not in 4 KiB pages",
                ));
            }
            let new = pfn_to_page(first + i as u64);
            // SAFETY: `pte` is present: read its frame.
            let old = pfn_to_page(unsafe { bindings::selfmig_pte_pfn(pte) } as u64);
            // Within the capacity reserved above: cannot fail.
            let _ = moved.pages.push(Moved { pte, old, new }, GFP_KERNEL);
            let _ = olds.push(old, GFP_KERNEL);
        }
        // SAFETY: `olds` holds `count` valid pages.
        moved.alias = unsafe { bindings::selfmig_vmap_rw(olds.as_mut_ptr(), count as u32) }.cast();
        if moved.alias.is_null() {
            return Err(Failure::new(
                ENOMEM,
                "cannot map the loader's code writable",
            ));
        }
        // Best effort: without it, only the loader's own code moves.
        let others = OtherCode::collect(base, count * PAGE_SIZE)
            .map_err(|f| pr_warn!("other modules' code left as it is: {}\n", f.reason))
            .ok();
        if !switch(&moved.pages, moved.alias, true, others.as_ref()) {
            return Err(Failure::new(EBUSY, "cannot stop the CPUs to move the code"));
        }
        moved.others = others.map_or(0, |o| o.pages.len());
        rewrite(moved.alias, moved.pages.len());
        Ok(moved)
    }

    /// How many pages of code were moved.
    pub(crate) fn len(&self) -> usize {
        self.pages.len()
    }

    /// How many pages of other code were written in place.
    pub(crate) fn others(&self) -> usize {
        self.others
    }
}

impl Drop for MovedText {
    fn drop(&mut self) {
        if !self.alias.is_null() {
            // Switched only if `move_out` got that far; `switch` back then.
            let mapped_new = self.pages.first().is_some_and(|m| {
                // SAFETY: `pte` stays valid while the module is loaded.
                let pfn = unsafe { bindings::selfmig_pte_pfn(m.pte) } as u64;
                pfn == page_to_pfn(m.new)
            });
            if mapped_new && !switch(&self.pages, self.alias, false, None) {
                pr_err!("cannot stop the CPUs to move the loader's code back; its copies stay\n");
                return;
            }
            // SAFETY: Mapped by `selfmig_vmap_rw` and no longer used.
            unsafe { bindings::vunmap(self.alias.cast()) };
        }
        if let Some(b) = self.block {
            b.free();
        }
    }
}
