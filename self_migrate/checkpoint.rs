// SPDX-License-Identifier: GPL-2.0

//! The checkpoint: stop the guest, copy what changed since it was sent into
//! the staging buffer, and resume.
//!
//! The sequence follows `create_image()` and `hibernation_snapshot()`:
//! secondary CPUs offline, devices frozen (`dpm_suspend_start`, then
//! `dpm_suspend_end`), interrupts off, `syscore_suspend()`, then the
//! registers are saved and the changed pages copied; everything is undone
//! in reverse, devices thawed (`PMSG_THAW`) when the image was made here and
//! restored (`PMSG_RESTORE`) when this is a restored image resuming on the
//! target. Each phase is one function that undoes exactly what it did.
//! Virtio NICs are the exception: they stay live, and are restarted on the
//! target ([`crate::live_nic`]).
//!
//! When the image was made here, the undoing stops once the system core
//! and the devices' interrupts are back, which is all the live NIC needs to
//! send the staged pages: the rest (devices out of their frozen state, the
//! secondary CPUs, the log lines) is a [`Thaw`] that the caller drops once
//! the commit is sent or the migration abandoned. Until then it is inside
//! the downtime for nothing.

use crate::bindings;
use crate::cpu_context;
use crate::failure::{Context, Failure};
use crate::live_console::LiveConsole;
use crate::live_nic::LiveNics;
use crate::page_hash::page_hash;
use crate::paging::{DirtyMap, Found};
use crate::pm::{self, Msg};
use crate::precopy::{direct_map_page, CandidateWalk, RamWalk};
use crate::proto::handoff::tsc_delta_us;
use crate::proto::machine::MachineDesc;
use crate::rehearsal;
use crate::staging::Staging;
use crate::tracker::Tracker;
use crate::tsc;
use crate::verify::Verify;
use core::ffi::c_void;
use core::sync::atomic::{AtomicU64, Ordering};
use kernel::prelude::*;

/// How a checkpoint ended.
// Returned once per checkpoint and matched at once: the size of the larger
// variant costs nothing worth an allocation.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Outcome {
    /// The image was made here; this guest resumed locally.
    Saved {
        /// Pages copied into the staging buffer.
        staged: usize,
        /// How long the guest was stopped, in nanoseconds (by the
        /// time-stamp counter).
        stopped_ns: i64,
        /// What is still to be undone here.
        thaw: Thaw,
    },
    /// Execution continues in a restored image on the target.
    Restored,
}

/// Points inside a checkpoint, for the log line that says where its time
/// went.
#[derive(Clone, Copy)]
enum Step {
    /// Secondary CPUs are offline.
    Cpus = 0,
    /// Devices are frozen (`dpm_suspend_start`).
    Frozen = 1,
    /// Devices are in their late/noirq state (`dpm_suspend_end`).
    Late = 2,
    /// Interrupts are off and `syscore_suspend()` is done.
    Core = 3,
    /// The harvest (peek) is done.
    Harvested = 4,
    /// The pages are hashed and copied.
    Copied = 5,
}

/// What the copy works on, passed through the assembly as a raw pointer.
struct CopyJob<'a> {
    desc: &'a MachineDesc,
    /// NICs the PM core leaves alone during this checkpoint.
    nics: &'a LiveNics,
    /// Frames on the per-CPU free lists, found once interrupts are off.
    pcp_free: &'a mut DirtyMap,
    /// Frames skipped for being there.
    pcp_skipped: u64,
    /// Frames the harvest marked, counted before the copy: the image
    /// holds this thread's stack as the copy passed it, and the tracker's
    /// own bitmaps not at all, so only what was set before the copy is
    /// right on the target too.
    marked: u64,
    tracker: &'a mut Tracker,
    staging: &'a mut Staging,
    verify: Option<&'a mut Verify>,
    /// What the paging tracker's harvest found (paging mode).
    found: Option<Found>,
    /// Pages the paging tracker missed (found in verify mode).
    misses: u64,
    /// The first frames it missed.
    missed: [u64; 4],
    /// The user entries mapping each.
    missed_ptes: [[u64; 4]; 4],
    /// Pages hashed.
    hashed: u64,
    /// Pages staged, by [`crate::shim::page_kind`].
    kinds: [u32; 7],
    /// Pages staged that only a kept mark made candidates (see
    /// [`Tracker::keep_marks`]): each a change the tracker would have
    /// missed without it.
    kept: u64,
    /// Time-stamp counter at the start and at each [`Step`] (the monotonic
    /// clock is suspended with the system core).
    start_tsc: u64,
    steps: [u64; 6],
}

impl CopyJob<'_> {
    /// Records that `step` is reached now.
    fn step(&mut self, step: Step) {
        self.steps[step as usize] = tsc::rdtsc();
    }

    /// What the log lines say about this checkpoint.
    fn report(&self) -> Report {
        let khz = tsc::khz();
        let mut prev = self.start_tsc;
        let mut us = [0u64; 6];
        for (i, &t) in self.steps.iter().enumerate() {
            us[i] = tsc_delta_us(prev, t, khz);
            prev = t.max(prev);
        }
        Report {
            us,
            found: self.found,
            hashed: self.hashed,
            staged: self.staging.len(),
            pcp_skipped: self.pcp_skipped,
            kinds: self.kinds,
            kept: self.kept,
        }
    }
}

/// Where a checkpoint's time went and what it staged, kept for the log
/// lines printed once the migration no longer waits on this guest.
struct Report {
    /// Microseconds up to each [`Step`] from the one before.
    us: [u64; 6],
    found: Option<Found>,
    hashed: u64,
    staged: usize,
    pcp_skipped: u64,
    kinds: [u32; 7],
    kept: u64,
}

impl Report {
    /// Logs where the checkpoint's time went and what it staged.
    fn log(&self) {
        let us = &self.us;
        let (walked, skipped, text, all) = self.found.map_or((0, 0, true, true), |f| {
            (f.tables, f.tables_skipped, f.text_marked, f.all_marked)
        });
        pr_info!(
            "checkpoint: CPUs offline {} us, devices frozen {}, late {}, syscore {}, harvest {} ({} tables walked, {} skipped, text {}{}), copy {} ({} pages hashed, {} staged, {} free on per-CPU lists)\n",
            us[0],
            us[1],
            us[2],
            us[3],
            us[4],
            walked,
            skipped,
            if text { "hashed" } else { "unchanged" },
            if all { ", every page marked" } else { "" },
            us[5],
            self.hashed,
            self.staged,
            self.pcp_skipped
        );
        let k = &self.kinds;
        let n = &crate::shim::PAGE_KINDS;
        pr_info!(
            "checkpoint: staged {} {}, {} {}, {} {}, {} {}, {} {}, {} {}, {} {} ({} by marks kept on free frames)\n",
            k[0],
            n[0],
            k[1],
            n[1],
            k[2],
            n[2],
            k[3],
            n[3],
            k[4],
            n[4],
            k[5],
            n[5],
            k[6],
            n[6],
            self.kept
        );
    }
}

/// The rest of the way back from a checkpoint made here, done when dropped:
/// devices thawed (`dpm_resume_end(PMSG_THAW)`), secondary CPUs online,
/// the live NICs back under the PM core, the system sleep lock released,
/// and the checkpoint's log lines printed (a console's output was held
/// while its device was frozen).
pub(crate) struct Thaw {
    cpus: Option<pm::OfflineCpus>,
    _nics: LiveNics,
    _console: LiveConsole,
    report: Report,
    _rcu: pm::ExpeditedRcu,
    _sleep: pm::SleepLock,
}

impl Drop for Thaw {
    fn drop(&mut self) {
        let thawing = tsc::rdtsc();
        pm::dpm_resume_end(Msg::Thaw);
        mark(Mark::Devices);
        drop(self.cpus.take());
        mark(Mark::Cpus);
        self.report.log();
        log_local_resume(thawing);
        // The fields follow in their order: the NICs go back to the PM
        // core, consoles suspend again with their devices, then expedited
        // RCU ends and the sleep lock is released.
    }
}

/// Copies every page that changed since it was sent into the staging
/// buffer, and in verify mode records every page's hash. Called by
/// `selfmig_save_context` with interrupts off.
///
/// # Safety
///
/// `arg` must point to a live `CopyJob`, as `stop_cpu` passes.
#[no_mangle]
unsafe extern "C" fn selfmig_checkpoint_copy(arg: *mut c_void) -> i64 {
    // SAFETY: By the function's safety requirement.
    let job = unsafe { &mut *arg.cast::<CopyJob<'_>>() };
    job.staging.clear();
    if let Some(verify) = job.verify.as_deref_mut() {
        verify.clear();
    }
    match job.tracker.peek() {
        Ok(found) => job.found = found,
        Err(e) => return e.to_errno() as i64,
    }
    job.marked = job.tracker.marked();
    job.step(Step::Harvested);
    // SAFETY: Interrupts are off and this is the only online CPU, as the
    // helper requires; `mark_pcp_block` takes a `*mut DirtyMap`: the
    // job's, which outlives the call.
    unsafe {
        bindings::selfmig_pcp_for_each(
            Some(mark_pcp_block),
            (&mut *job.pcp_free as *mut DirtyMap).cast(),
        )
    };
    // The candidates: the tracker's, and the unreferenced pages, which it
    // keeps track of or, if it cannot, each frame is asked about. Without
    // verify=1 only they are visited; with it every frame is, and a
    // changed page that is not a candidate counts as a miss: the same set
    // either way, so that verify=1 checks what production does.
    let known = job.tracker.tracks_unreferenced();
    let candidate = |tracker: &Tracker, pfn| {
        tracker.candidate(pfn)
            || match known {
                true => tracker.unreferenced(pfn),
                false => crate::shim::page_unreferenced(pfn),
            }
    };
    if job.verify.is_none() && known {
        let mut walk = CandidateWalk::new(job.desc).with_unreferenced();
        while let Some(pfn) = walk.next(job.tracker) {
            if skipped(job, pfn) {
                continue;
            }
            let is = candidate(job.tracker, pfn);
            if let Err(e) = copy_frame(job, pfn, is) {
                return e;
            }
        }
    } else {
        for pfn in RamWalk::new(job.desc) {
            if skipped(job, pfn) {
                continue;
            }
            let is = candidate(job.tracker, pfn);
            if let Err(e) = copy_frame(job, pfn, is) {
                return e;
            }
        }
    }
    for i in 0..job.missed.len().min(job.misses as usize) {
        job.missed_ptes[i] = job.tracker.mappings_of(job.missed[i]);
    }
    job.step(Step::Copied);
    0
}

/// Whether the checkpoint leaves a frame the walk reached alone: excluded
/// (migration state), or free on a per-CPU list, which is no part of the
/// image, as the buddy allocator's free blocks the walks skip are not (the
/// image's kernel hands it out as it is, whatever it holds).
fn skipped(job: &mut CopyJob<'_>, pfn: u64) -> bool {
    if job.tracker.is_excluded(pfn) {
        return true;
    }
    let free = job.pcp_free.test(pfn);
    job.pcp_skipped += u64::from(free);
    free
}

/// The checkpoint's work on a frame of RAM the walk reached and did not
/// skip: hashed if it is a `candidate` or verify mode hashes every page,
/// and staged if it changed since it was sent. Returns a negative errno if
/// the staging buffer is full.
fn copy_frame(job: &mut CopyJob<'_>, pfn: u64, candidate: bool) -> Result<(), i64> {
    if !candidate && job.verify.is_none() {
        return Ok(());
    }
    let Some(page) = direct_map_page(pfn) else {
        return Ok(());
    };
    let mut hash = page_hash(page);
    job.hashed += 1;
    if !candidate && job.tracker.changed_hash(pfn, hash) {
        // Verify mode hashes every page: a page the paging tracker did not
        // mark, changed since it was sent, is a miss. The target's
        // verification will refuse the image; count it and say where.
        if (job.misses as usize) < job.missed.len() {
            job.missed[job.misses as usize] = pfn;
        }
        job.misses += 1;
    }
    if candidate && job.tracker.changed_hash(pfn, hash) {
        if !job.staging.push(pfn, page) {
            return Err(ENOSPC.to_errno() as i64);
        }
        job.kinds[crate::shim::page_kind(pfn)] += 1;
        job.kept += u64::from(job.tracker.kept_only(pfn) && !crate::shim::page_unreferenced(pfn));
        // What goes to the target is the copy, and a page can change
        // between hash and copy even here: this thread's own stack page
        // below the stack pointer. Verify against the copy.
        if job.verify.is_some() {
            hash = job.staging.last().map_or(hash, page_hash);
        }
    }
    if let Some(verify) = job.verify.as_deref_mut() {
        verify.set(pfn, hash);
    }
    Ok(())
}

/// Marks in the [`DirtyMap`] behind `data` the frames of one block on a
/// per-CPU free list (`selfmig_pcp_for_each`'s callback).
///
/// # Safety
///
/// `data` must point to a live `DirtyMap` no one else uses meanwhile.
unsafe extern "C" fn mark_pcp_block(pfn: usize, order: u32, data: *mut c_void) {
    // SAFETY: By the function's safety requirement.
    let map = unsafe { &mut *data.cast::<DirtyMap>() };
    map.mark(pfn as u64, 1u64.checked_shl(order).unwrap_or(0));
}

/// Points on the way back from a checkpoint, for timing the resume.
#[derive(Clone, Copy)]
pub(crate) enum Mark {
    /// Execution is back from `save_context`.
    Entry = 0,
    /// `syscore_resume()` is done.
    Syscore = 1,
    /// Devices are out of their late/noirq state.
    DevicesEarly = 2,
    /// Devices are resumed.
    Devices = 3,
    /// Secondary CPUs are online again.
    Cpus = 4,
}

/// Time-stamp counter at each [`Mark`] of the last return from a
/// checkpoint (module data, so a restored image has its own).
static MARKS: [AtomicU64; 5] = [const { AtomicU64::new(0) }; 5];

/// Records the counter at `m`.
fn mark(m: Mark) {
    MARKS[m as usize].store(tsc::rdtsc(), Ordering::Relaxed);
}

/// The counter at `m` on the last return from a checkpoint.
pub(crate) fn marked(m: Mark) -> u64 {
    MARKS[m as usize].load(Ordering::Relaxed)
}

/// Logs where the local resume after a checkpoint made here spent its time:
/// up to the devices' early resume before the staged pages were sent, the
/// rest (from `thawing`, a time-stamp counter reading) after.
fn log_local_resume(thawing: u64) {
    let khz = tsc::khz();
    let at = |a, b| tsc_delta_us(marked(a), marked(b), khz);
    pr_info!(
        "checkpoint: resumed here: syscore {} us, devices (noirq/early) {}; once the migration no longer waited: devices {}, CPUs {}\n",
        at(Mark::Entry, Mark::Syscore),
        at(Mark::Syscore, Mark::DevicesEarly),
        tsc_delta_us(thawing, marked(Mark::Devices), khz),
        at(Mark::Devices, Mark::Cpus)
    );
}

/// Saves (`save`) or restores sched_clock's state across the checkpoint, as
/// `save_processor_state()` / `restore_processor_state()` do.
fn sched_clock_state(save: bool) {
    // SAFETY: `x86_platform` is set up at boot; its hooks are called with
    // interrupts off, as here.
    unsafe {
        let platform = &*core::ptr::addr_of!(bindings::x86_platform);
        let hook = if save {
            platform.save_sched_clock_state
        } else {
            platform.restore_sched_clock_state
        };
        if let Some(f) = hook {
            f();
        }
    }
}

/// Innermost phase: interrupts off, system core suspended, registers saved,
/// pages copied.
fn stop_cpu(job: &mut CopyJob<'_>) -> Result<bool, Failure> {
    // Live FPU registers of the task that last used them go to memory, and
    // this CPU stops claiming to hold them: the image resumes on another
    // CPU whose registers hold nothing of this guest.
    // SAFETY: Process context; the pair disables and re-enables preemption.
    unsafe {
        bindings::kernel_fpu_begin_mask(0);
        bindings::kernel_fpu_end();
    }
    pm::irqs_off();
    if let Err(e) = pm::syscore_suspend() {
        pm::irqs_on();
        return Err(Failure::new(e, "syscore_suspend failed"));
    }
    job.step(Step::Core);
    sched_clock_state(true);
    // SAFETY: Interrupts are off and the other CPUs are offline; `job` is
    // what `selfmig_checkpoint_copy` expects.
    let ret = unsafe { cpu_context::save_context((job as *mut CopyJob<'_>).cast()) };
    if ret == 1 {
        // Resumed on the target: sched_clock must continue from here, and
        // nothing may touch the live NICs' rings before they restart.
        sched_clock_state(false);
        job.nics.break_devices();
    }
    mark(Mark::Entry);
    pm::syscore_resume();
    mark(Mark::Syscore);
    pm::irqs_on();
    match ret {
        1 => Ok(true),
        0 => Ok(false),
        e if e == ENOSPC.to_errno() as i64 => Err(Failure::new(
            ENOSPC,
            "too many pages changed for the staging buffer",
        )),
        e if e == E2BIG.to_errno() as i64 => Err(Failure::new(
            E2BIG,
            "more address spaces than the paging tracker follows",
        )),
        e => Err(Failure::new(
            Error::from_errno(e as i32),
            "checkpoint copy failed",
        )),
    }
}

/// Devices in their late/noirq suspended state around `stop_cpu`.
fn stop_devices_late(job: &mut CopyJob<'_>) -> Result<bool, Failure> {
    if let Err(e) = pm::dpm_suspend_end(Msg::Freeze) {
        pm::dpm_resume_start(Msg::Recover);
        return Err(Failure::new(e, "dpm_suspend_end failed"));
    }
    job.step(Step::Late);
    let result = stop_cpu(job);
    pm::dpm_resume_start(resume_msg(&result));
    mark(Mark::DevicesEarly);
    result
}

/// The device message that undoes a checkpoint with this result.
fn resume_msg(result: &Result<bool, Failure>) -> Msg {
    match result {
        Ok(true) => Msg::Restore,
        Ok(false) => Msg::Thaw,
        Err(_) => Msg::Recover,
    }
}

/// Devices frozen around `stop_devices_late`.
fn stop_devices(job: &mut CopyJob<'_>) -> Result<bool, Failure> {
    if let Err(e) = pm::dpm_suspend_start(Msg::Freeze) {
        pm::dpm_resume_end(Msg::Recover);
        return Err(Failure::new(
            e,
            "a device refused to freeze (dpm_suspend_start)",
        ));
    }
    job.step(Step::Frozen);
    let result = stop_devices_late(job);
    // An image made here leaves the devices frozen: see [`Thaw`].
    if !matches!(result, Ok(false)) {
        pm::dpm_resume_end(resume_msg(&result));
        if let Ok(true) = result {
            job.nics.restart();
        }
        mark(Mark::Devices);
    }
    result
}

/// Rehearses the checkpoint (see [`crate::rehearsal`]): the CPUs, the
/// devices and the system core go through every step of [`take`] but the
/// copy, the same devices kept live, and come back as after a checkpoint
/// the target refused. Besides moving an emulator's code translation out
/// of the downtime, it finds a device that refuses to freeze before
/// anything is sent.
pub(crate) fn rehearse() -> Result<rehearsal::Times, Failure> {
    let _sleep = pm::SleepLock::lock();
    let _rcu = pm::ExpeditedRcu::start();
    let _nics = LiveNics::keep();
    let _console = LiveConsole::keep();
    rehearsal::rehearse(Msg::Thaw, || {
        sched_clock_state(true);
        sched_clock_state(false);
    })
}

/// Takes the checkpoint.
pub(crate) fn take(
    desc: &MachineDesc,
    tracker: &mut Tracker,
    staging: &mut Staging,
    verify: Option<&mut Verify>,
) -> Result<Outcome, Failure> {
    let frames = desc.ranges().last().map_or(0, |r| r.end_pfn());
    let mut pcp_free = DirtyMap::new(frames)
        .map_err(|e| Failure::new(e, "cannot allocate the checkpoint's maps"))?;
    let start_tsc = tsc::rdtsc();
    let sleep = pm::SleepLock::lock();
    let rcu = pm::ExpeditedRcu::start();
    let cpus = pm::OfflineCpus::take().context("cannot take secondary CPUs offline")?;
    let nics = LiveNics::keep();
    let console = LiveConsole::keep();
    let mut job = CopyJob {
        desc,
        nics: &nics,
        pcp_free: &mut pcp_free,
        pcp_skipped: 0,
        marked: 0,
        tracker,
        staging,
        verify,
        found: None,
        misses: 0,
        missed: [0; 4],
        missed_ptes: [[0; 4]; 4],
        hashed: 0,
        kinds: [0; 7],
        kept: 0,
        start_tsc,
        steps: [0; 6],
    };
    job.step(Step::Cpus);
    let result = stop_devices(&mut job);
    let cpus = match result {
        Ok(false) => Some(cpus),
        _ => {
            drop(cpus);
            mark(Mark::Cpus);
            None
        }
    };
    job.tracker.release();
    if job.misses > 0 {
        pr_warn!(
            "paging tracker missed {} changed pages (verify will fail); first frames: {:#x?}\n",
            job.misses,
            &job.missed[..job.missed.len().min(job.misses as usize)]
        );
        for (i, &pfn) in job.missed.iter().take(job.misses as usize).enumerate() {
            pr_warn!("frame {:#x} mapped by {:#x?}\n", pfn, job.missed_ptes[i]);
            crate::shim::dump_page(pfn);
        }
    }
    if let Some(found) = job.found {
        // The marks stay: if this checkpoint is abandoned, the next round
        // sends them (the address spaces just released may have been torn
        // down since, taking their Dirty bits with them).
        let marked = job.marked;
        let misses = job.misses;
        crate::control::update(|_, x| {
            x.checkpoint_paging = crate::control::PagingStats {
                marked_pages: marked,
                dirty_entries: found.dirty_leaves,
                page_tables: found.tables,
                address_spaces: found.address_spaces,
                all_marked: found.all_marked,
            };
            x.tracker_misses = misses;
        });
    }
    match result? {
        true => Ok(Outcome::Restored),
        false => {
            let kept = job.kept;
            crate::control::update(|_, x| x.kept_mark_pages = kept);
            let report = job.report();
            Ok(Outcome::Saved {
                staged: job.staging.len(),
                // By the counter: the monotonic clock stands still while
                // the system core is suspended (harvest and copy).
                stopped_ns: (tsc_delta_us(start_tsc, tsc::rdtsc(), tsc::khz()) * 1000) as i64,
                thaw: Thaw {
                    cpus,
                    _nics: nics,
                    _console: console,
                    report,
                    _rcu: rcu,
                    _sleep: sleep,
                },
            })
        }
    }
}
