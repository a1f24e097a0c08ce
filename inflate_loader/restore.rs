// SPDX-License-Identifier: GPL-2.0

//! Jumping into the received image, after `resume_target_kernel()`.
//!
//! Preparation (while the network still works): temporary page tables in
//! spare frames that map all RAM at the direct-map addresses (2 MiB pages)
//! plus the source's resume entry page, the list of slotted pages to copy
//! home, and the trampoline, all in frames the image does not use. The jump
//! (after the source's commit): devices stopped (see [`crate::quiesce`]),
//! interrupts off, `syscore_suspend()`, then the trampoline. Nothing of
//! this kernel runs after it.

use crate::bindings;
use crate::failure::{Context, Failure};
use crate::image::{frame_ptr, Image};
use crate::pm;
use crate::proto::handoff::{Handoff, STAMP_OFFSET};
use crate::proto::machine::MachineDesc;
use crate::proto::wire::{PageContent, ResumeInfo, PAGE_SIZE};
use crate::quiesce;
use crate::trampoline;
use crate::tsc;
use crate::unwritten::Armed;
use kernel::prelude::*;

/// Page-table entry bits.
const PTE_PRESENT: u64 = 1 << 0;
/// Writable.
const PTE_RW: u64 = 1 << 1;
/// Accessed (set up front so the CPU need not write it).
const PTE_ACCESSED: u64 = 1 << 5;
/// Dirty.
const PTE_DIRTY: u64 = 1 << 6;
/// Large page (2 MiB at the page-directory level).
const PTE_LARGE: u64 = 1 << 7;
/// Flags of intermediate tables.
const TABLE: u64 = PTE_PRESENT | PTE_RW | PTE_ACCESSED;

/// Pairs per copy-list page (after the next pointer and the count).
const PAIRS_PER_PAGE: usize = (PAGE_SIZE - 16) / 16;

/// Everything the jump needs.
pub(crate) struct Prepared {
    temp_cr3: u64,
    list: u64,
    trampoline: u64,
    info: ResumeInfo,
    /// Where the hand-off page is written: its home frame or its slot.
    handoff: u64,
    /// Which slotted pages may be left out of the copy list.
    unwritten: Option<Armed>,
}

impl Prepared {
    /// Slotted pages identical at home when they arrived (0 without the
    /// write watch).
    pub(crate) fn identical_on_arrival(&self) -> u64 {
        self.unwritten.as_ref().map_or(0, |u| u.identical())
    }
}

/// Builds page tables in spare frames.
struct Tables<'a> {
    image: &'a mut Image,
    top: u64,
    levels: u32,
    /// Every frame taken, if they are to be given back (a rehearsal).
    taken: Option<KVec<u64>>,
}

impl<'a> Tables<'a> {
    /// A spare frame, zeroed.
    fn zeroed_frame(&mut self) -> Result<u64, Failure> {
        let f = self.image.take_spare()?;
        if let Some(taken) = self.taken.as_mut() {
            if taken.push(f, GFP_KERNEL).is_err() {
                self.image.put_back_spare(f);
                return Err(Failure::new(ENOMEM, "cannot list the rehearsal's frames"));
            }
        }
        // SAFETY: A spare frame is claimed by the image and holds nothing.
        unsafe { core::ptr::write_bytes(frame_ptr(f), 0, PAGE_SIZE) };
        Ok(f)
    }

    /// Empty tables with the current paging depth; with `record`, the
    /// frames they take are listed (see [`Tables::give_back`]).
    fn new(image: &'a mut Image, record: bool) -> Result<Self, Failure> {
        // SAFETY: Plain read of a variable set at boot.
        let levels = if unsafe { bindings::pgdir_shift } == 48 {
            5
        } else {
            4
        };
        let mut tables = Self {
            image,
            top: 0,
            levels,
            taken: record.then(KVec::new),
        };
        tables.top = tables.zeroed_frame()?;
        Ok(tables)
    }

    /// The entry for `va` at `level` (5..1) in table frame `table`.
    fn entry(table: u64, va: u64, level: u32) -> *mut u64 {
        let index = (va >> (12 + 9 * (level - 1))) & 511;
        // SAFETY: `table` is a spare frame; the index is below 512.
        unsafe { frame_ptr(table).cast::<u64>().add(index as usize) }
    }

    /// Maps `va` to `pa` with a page of the given level (1: 4 KiB, 2: 2 MiB).
    fn map(&mut self, va: u64, pa: u64, leaf_level: u32) -> Result<(), Failure> {
        let mut table = self.top;
        for level in (leaf_level + 1..=self.levels).rev() {
            let e = Self::entry(table, va, level);
            // SAFETY: `e` points into a spare frame only we use.
            let cur = unsafe { *e };
            table = if cur & PTE_PRESENT != 0 {
                (cur & 0x000f_ffff_ffff_f000) >> 12
            } else {
                let t = self.zeroed_frame()?;
                // SAFETY: As above.
                unsafe { *e = (t << 12) | TABLE };
                t
            };
        }
        let e = Self::entry(table, va, leaf_level);
        let large = if leaf_level == 2 { PTE_LARGE } else { 0 };
        // SAFETY: As above.
        unsafe { *e = pa | PTE_PRESENT | PTE_RW | PTE_ACCESSED | PTE_DIRTY | large };
        Ok(())
    }

    /// Maps all RAM of `local` at its direct-map address, in 2 MiB pages.
    /// Not inlined: the rehearsal must run this very code.
    #[inline(never)]
    fn map_ram(&mut self, local: &MachineDesc) -> Result<(), Failure> {
        // SAFETY: Plain read of a variable set at boot.
        let base = unsafe { bindings::page_offset_base } as u64;
        let end = local.ranges().last().map_or(0, |r| r.end_pfn()) * PAGE_SIZE as u64;
        let mut pa = 0;
        while pa < end {
            self.map(base + pa, pa, 2)?;
            pa += 2 << 20;
        }
        Ok(())
    }

    /// Gives back to the image every frame taken (recorded ones only).
    fn give_back(self) {
        if let Some(taken) = self.taken {
            give_back(self.image, &taken);
        }
    }
}

/// The copy list: a chain of spare frames, each holding the next one's
/// address, a count, then that many (slot, home) direct-map address pairs,
/// one for every slotted page. Returns the frames, the first one first.
///
/// The frames are taken first (so that nothing but the frames themselves
/// is allocated: this kernel holds little free memory now) and filled in
/// one pass over the slots. Not inlined: the rehearsal must run this very
/// code.
#[inline(never)]
fn copy_list(image: &mut Image) -> Result<KVVec<u64>, Failure> {
    let pages = (image.slotted as usize).div_ceil(PAIRS_PER_PAGE);
    let mut frames = KVVec::with_capacity(pages, GFP_KERNEL)
        .map_err(|_| ENOMEM)
        .context("cannot build the copy list")?;
    for _ in 0..pages {
        let f = match image.take_spare() {
            Ok(f) => f,
            Err(e) => {
                give_back(image, &frames);
                return Err(e);
            }
        };
        // Within the capacity just allocated: cannot fail.
        let _ = frames.push(f, GFP_KERNEL);
    }
    // Linked first, each page to the next: a page the slots do not reach
    // (none, unless the count was high) keeps a count of 0, which the
    // trampoline passes over.
    for (i, &f) in frames.iter().enumerate() {
        let next = frames.get(i + 1).map_or(0, |&n| frame_ptr(n) as u64);
        let words = frame_ptr(f).cast::<u64>();
        // SAFETY: `f` is a spare frame taken above: 512 words only we use.
        unsafe {
            *words = next;
            *words.add(1) = 0;
        }
    }
    let mut overflow = false;
    for (n, (slot, home)) in image.slots().enumerate() {
        let (page, i) = (n / PAIRS_PER_PAGE, n % PAIRS_PER_PAGE);
        let Some(&f) = frames.get(page) else {
            overflow = true;
            break;
        };
        let words = frame_ptr(f).cast::<u64>();
        // SAFETY: As above; `i` is below `PAIRS_PER_PAGE`, so the pair is
        // within the frame.
        unsafe {
            *words.add(1) = i as u64 + 1;
            *words.add(2 + 2 * i) = frame_ptr(slot) as u64;
            *words.add(3 + 2 * i) = frame_ptr(home) as u64;
        }
    }
    if overflow {
        give_back(image, &frames);
        return Err(Failure::new(EINVAL, "more slotted pages than counted"));
    }
    Ok(frames)
}

/// Gives back to the image spare frames taken for the jump.
fn give_back(image: &mut Image, frames: &[u64]) {
    for &f in frames {
        image.put_back_spare(f);
    }
}

/// Rehearses the jump's preparation and its write-watch filter (see
/// [`crate::unwritten`]) on frames given back afterwards: the page tables,
/// the copy list of the slots as they are now, and the walk that finds
/// what this kernel wrote since the arming. Run once this module's code
/// has moved (see [`crate::relocate`]): under an emulator, the code is
/// then translated before the downtime, where it ran for the first time
/// (about 1.5 ms of the target's share of it under QEMU's TCG, measured
/// by running the preparation twice). Leaves the image as it was.
pub(crate) fn rehearse(image: &mut Image, local: &MachineDesc) -> Result<(), Failure> {
    let mut tables = Tables::new(image, true)?;
    let mapped = tables.map_ram(local);
    tables.give_back();
    mapped?;
    let frames = copy_list(image)?;
    if let Some(&first) = frames.first() {
        image.rehearse_filter(frame_ptr(first) as u64);
    }
    give_back(image, &frames);
    Ok(())
}

/// Prepares the jump into an image described by `info`.
pub(crate) fn prepare(
    image: &mut Image,
    local: &MachineDesc,
    info: &ResumeInfo,
) -> Result<Prepared, Failure> {
    if info.resume_va == 0 || info.resume_va & 0xfff != 0 {
        return Err(Failure::new(EINVAL, "bad resume entry address"));
    }
    if !local.contains_pfn(info.resume_pfn) {
        return Err(Failure::new(EINVAL, "resume entry outside the RAM map"));
    }
    // The hand-off page travels home like any page of the image, so it is
    // placed (empty for now) before the copy list is built.
    if !local.contains_pfn(info.handoff_pfn) {
        return Err(Failure::new(EINVAL, "hand-off page outside the RAM map"));
    }
    if image.location(info.handoff_pfn).is_some() {
        return Err(Failure::new(EINVAL, "hand-off page is part of the image"));
    }
    image.place(info.handoff_pfn, &PageContent::Zero)?;
    let handoff = image
        .location(info.handoff_pfn)
        .ok_or_else(|| Failure::new(EINVAL, "hand-off page not placed"))?;
    // Page tables: all RAM at its direct-map address, and the resume page.
    let mut tables = Tables::new(image, false)?;
    tables.map_ram(local)?;
    tables.map(info.resume_va, info.resume_pfn << 12, 1)?;
    let temp_cr3 = tables.top << 12;
    let frames = copy_list(image)?;
    let list = frames.first().map_or(0, |&f| frame_ptr(f) as u64);

    // The trampoline.
    let unwritten = image.take_unwritten(info.handoff_pfn);

    let code = trampoline::code();
    if code.len() > PAGE_SIZE {
        return Err(Failure::new(EINVAL, "trampoline larger than a page"));
    }
    let f = image.take_spare()?;
    // SAFETY: `f` is a spare frame; `code` is readable.
    unsafe { core::ptr::copy_nonoverlapping(code.as_ptr(), frame_ptr(f), code.len()) };
    Ok(Prepared {
        temp_cr3,
        list,
        trampoline: frame_ptr(f) as u64,
        info: *info,
        handoff,
        unwritten,
    })
}

/// Makes the direct-map page at `va` executable, as `relocate_restore_code()`
/// does for hibernation's trampoline: clears NX in the entry mapping it (a
/// large page, possibly) and flushes the TLB.
fn make_executable(va: u64) -> Result<(), Failure> {
    let mut level = 0u32;
    // SAFETY: Only walks the kernel page tables.
    let pte = unsafe { bindings::lookup_address(va as _, &mut level) };
    if pte.is_null() {
        return Err(Failure::new(EINVAL, "trampoline page not mapped"));
    }
    // SAFETY: `pte` points to the live entry mapping `va`; clearing NX
    // (bit 63) only grants execution. Interrupts are off on the only online
    // CPU, so nothing races with the update and the flush.
    unsafe {
        let entry = core::ptr::addr_of_mut!((*pte).pte);
        core::ptr::write_volatile(entry, core::ptr::read_volatile(entry) & !(1usize << 63));
        bindings::__flush_tlb_all();
    }
    Ok(())
}

/// Quiesces this machine, leaves `handoff` for the image and jumps into it.
/// Returns only if a step before the jump fails (everything is then
/// undone).
pub(crate) fn jump(p: &mut Prepared, cpus: pm::OfflineCpus, mut handoff: Handoff) -> Failure {
    let _sleep = pm::SleepLock::lock();
    // Dropped only if the jump fails: the jump leaves this kernel behind.
    let _rcu = pm::ExpeditedRcu::start();
    let stopped = match quiesce::stop() {
        Ok(stopped) => stopped,
        Err(f) => {
            drop(cpus);
            return f;
        }
    };
    pm::irqs_off();
    if let Err(e) = pm::syscore_suspend() {
        pm::irqs_on();
        quiesce::resume(stopped);
        drop(cpus);
        return Failure::new(e, "syscore_suspend failed");
    }
    if let Err(f) = make_executable(p.trampoline) {
        pm::syscore_resume();
        pm::irqs_on();
        quiesce::resume(stopped);
        drop(cpus);
        return f;
    }
    // Last: nothing of this kernel writes its watched frames after it.
    if let Some(u) = p.unwritten.as_mut() {
        let check = p.info.verify_pages > 0;
        (handoff.pages_unwritten, handoff.unwritten_misses) = u.filter(p.list, check);
    }
    handoff.tsc_jump = tsc::rdtsc();
    let bytes = handoff.encode();
    // SAFETY: The hand-off frame was placed for the image in `prepare`:
    // claimed, mapped, and written by nobody else.
    unsafe { core::ptr::copy_nonoverlapping(bytes.as_ptr(), frame_ptr(p.handoff), bytes.len()) };
    // SAFETY: Interrupts are off, this is the only online CPU and devices
    // are quiesced. The trampoline and everything it reads live in frames
    // the image does not use, mapped by the temporary tables at the same
    // addresses as now; it never returns.
    unsafe {
        core::arch::asm!(
            "call {t}",
            "ud2",
            t = in(reg) p.trampoline,
            in("rdi") p.temp_cr3,
            in("rsi") p.list,
            in("rdx") p.info.cr3,
            in("rcx") p.info.resume_va,
            in("r8") frame_ptr(p.info.handoff_pfn) as u64 + STAMP_OFFSET as u64,
            options(noreturn)
        )
    }
}
