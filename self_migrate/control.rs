// SPDX-License-Identifier: GPL-2.0

//! Migration control: the settings and status behind sysfs and the ioctl,
//! the one validated path both use to start and abort, and the migration
//! thread's view of them.
//!
//! Every refusal goes through `refuse()`, which logs one line naming the
//! operation and the reason and returns the errno from `proto::uapi`, so the
//! two interfaces cannot drift apart.

use crate::failure::Failure;
use crate::global::{Global, Published};
use crate::kthread::KThread;
use crate::proto::uapi::{self, ControlError, Endpoint, State, StatusArgs};
use crate::refuse::refuse;
use crate::socket::Shutdown;
use kernel::c_str;
use kernel::new_mutex;
use kernel::prelude::*;

/// How dirty pages are found between pre-copy rounds.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Tracker {
    /// Hardware Dirty bits in the page tables.
    Paging,
    /// A hash of every page, compared each round.
    Hash,
}

impl Tracker {
    /// The word sysfs shows and accepts.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Tracker::Paging => "paging",
            Tracker::Hash => "hash",
        }
    }
}

/// A validated request to start a migration.
pub(crate) struct Request {
    /// Where the target loader listens.
    pub(crate) target: Endpoint,
    /// Admission token, 1 to `MAX_TOKEN_LEN` bytes.
    #[allow(dead_code, reason = "presented to the target once admission lands")]
    pub(crate) token: KVec<u8>,
    /// Downtime target in milliseconds.
    pub(crate) max_downtime_ms: u32,
    /// Send page hashes for the target to verify.
    pub(crate) verify: bool,
    /// Dirty tracker to use.
    pub(crate) tracker: Tracker,
    /// Throttle the dirtiers when pre-copy does not converge (else give up).
    pub(crate) auto_converge: bool,
    /// Compress pages that shrink (LZ4).
    pub(crate) compress: bool,
    /// Rehearse the checkpoint before connecting.
    pub(crate) rehearse: bool,
}

/// Settings made through sysfs, used by `start`.
pub(crate) struct Settings {
    /// Target endpoint, once set.
    pub(crate) target: Option<Endpoint>,
    /// Admission token; empty until set.
    pub(crate) token: KVec<u8>,
    /// Downtime target in milliseconds.
    pub(crate) max_downtime_ms: u32,
    /// Whether to verify.
    pub(crate) verify: bool,
    /// Dirty tracker.
    pub(crate) tracker: Tracker,
    /// Guest-side auto-converge.
    pub(crate) auto_converge: bool,
    /// LZ4 compression of pages.
    pub(crate) compress: bool,
    /// Rehearsal of the checkpoint.
    pub(crate) rehearse: bool,
}

/// What the paging tracker's last harvest found.
#[derive(Clone, Copy, Default)]
pub(crate) struct PagingStats {
    /// Frames marked as possibly changed (hashed to find out).
    pub(crate) marked_pages: u64,
    /// Page-table leaf entries found with the Dirty bit set.
    pub(crate) dirty_entries: u64,
    /// Page tables walked.
    pub(crate) page_tables: u64,
    /// User address spaces walked.
    pub(crate) address_spaces: u64,
    /// Whether the harvest marked every frame (the MMU notifiers could not
    /// tell what an invalidation unmapped).
    pub(crate) all_marked: bool,
}

/// Counters shown in `stats` beyond the ioctl status.
#[derive(Clone, Copy, Default)]
pub(crate) struct Extra {
    /// Pages sent as zero markers.
    pub(crate) zero_pages: u64,
    /// Pages sent compressed: LZ4 blocks, sparse pages and patches.
    pub(crate) compressed_pages: u64,
    /// Pages sent as patches of their last version.
    pub(crate) patched_pages: u64,
    /// Pages skipped because they were free.
    pub(crate) free_pages: u64,
    /// Free frames whose marks the last round kept for the next one.
    pub(crate) free_marked: u64,
    /// Pages the last checkpoint staged that only a mark kept on a free
    /// frame made candidates: each a change no Dirty bit showed any more.
    /// Known on the source only (counted during the copy).
    pub(crate) kept_mark_pages: u64,
    /// RAM pages not mapped in the direct map (not sent).
    pub(crate) unmapped_pages: u64,
    /// Bounce-buffer frames left out of the image.
    pub(crate) bounce_pages: u64,
    /// Checkpoint attempts in the current migration.
    pub(crate) attempts: u32,
    /// Pages copied at the checkpoint.
    pub(crate) staged_pages: u64,
    /// How long the guest was stopped for the checkpoint, in microseconds.
    pub(crate) checkpoint_us: u64,
    /// The rehearsal of the checkpoint, from its first step to its last
    /// (0 without one).
    pub(crate) rehearsal_us: u64,
    /// Of which interrupts were off (the system core's suspend and resume).
    pub(crate) rehearsal_core_us: u64,
    /// The target's rehearsal, as it said on accepting the hello (0: not
    /// measured).
    pub(crate) target_rehearsal_us: u64,
    /// The fixed part of the downtime the convergence policy counts: both
    /// rehearsals.
    pub(crate) downtime_fixed_us: u64,
    /// Page hashes sent for the target to verify (`verify=1`); on the
    /// target, pages it verified.
    pub(crate) verify_pages: u64,
    /// On the target: slotted pages the loader left out of the copy list,
    /// identical at home and not written since they arrived.
    pub(crate) unwritten_pages: u64,
    /// On the target, with `verify=1`: of those, pages the loader found
    /// different when it checked them at the jump (copied instead).
    pub(crate) unwritten_misses: u64,
    /// Where the downtime of the last migration went.
    pub(crate) downtime: crate::downtime::Phases,
    /// The target's reason code for its last refusal (see
    /// `proto::admission::Reason`), 0 if none.
    pub(crate) refusal: u32,
    /// Payment units (chain links) paid to the target so far.
    pub(crate) units_paid: u32,
    /// The tracker the last migration used (`None` before one ran).
    pub(crate) tracker_used: Option<Tracker>,
    /// The paging tracker's last live round.
    pub(crate) paging: PagingStats,
    /// The paging tracker's harvest in the last checkpoint.
    pub(crate) checkpoint_paging: PagingStats,
    /// Pages checked per second of time spent on pages, recent rounds
    /// weighing most.
    pub(crate) page_rate: u64,
    /// Why pre-copy ended (`None` while it runs or if it failed).
    pub(crate) precopy_end: Option<crate::proto::converge::End>,
    /// Measured link bandwidth, bytes per second (pre-copy).
    pub(crate) bandwidth: u64,
    /// Measured dirty rate, pages per second (pre-copy).
    pub(crate) dirty_rate: u64,
    /// The share of a CPU throttled threads keep, basis points (0: none).
    pub(crate) throttle_share_bp: u64,
    /// Threads throttled.
    pub(crate) throttled_threads: u32,
    /// Pages changed since they were sent that the paging tracker did not
    /// mark, found by the full hash of `verify=1` in the last checkpoint.
    pub(crate) tracker_misses: u64,
}

/// The migration thread and what others need to reach it.
#[derive(Default)]
struct Run {
    /// The thread of the current or last migration (parked when done).
    thread: Option<KThread>,
    /// The request the thread is about to take.
    pending: Option<Request>,
    /// Set by abort; the thread checks it between batches.
    abort: bool,
    /// Shuts the thread's connection down; set only while it is open.
    live: Option<Shutdown>,
    /// Set at module unload: no new migration may start.
    closing: bool,
}

/// Everything behind the control mutex.
pub(crate) struct Control {
    /// sysfs settings.
    pub(crate) settings: Settings,
    /// Progress and result of the current or last migration.
    pub(crate) status: StatusArgs,
    /// More progress counters.
    pub(crate) extra: Extra,
    /// Reason of the last failure, for `stats`.
    pub(crate) last_error: &'static str,
    run: Run,
}

impl Control {
    /// Builds the request `start` would use from the sysfs settings.
    pub(crate) fn request_from_settings(&self) -> Result<Request, ControlError> {
        let s = &self.settings;
        let target = s.target.ok_or(ControlError::NoTarget)?;
        if s.token.is_empty() {
            return Err(ControlError::NoToken);
        }
        let mut token = KVec::with_capacity(s.token.len(), GFP_KERNEL)
            .map_err(|_| ControlError::OutOfMemory)?;
        token
            .extend_from_slice(&s.token, GFP_KERNEL)
            .map_err(|_| ControlError::OutOfMemory)?;
        Ok(Request {
            target,
            token,
            max_downtime_ms: s.max_downtime_ms,
            verify: s.verify,
            tracker: s.tracker,
            auto_converge: s.auto_converge,
            compress: s.compress,
            rehearse: s.rehearse,
        })
    }
}

/// The control state, published while the module is loaded.
static CONTROL: Global<Control> = Global::new();

/// The migration thread's entry point.
static MIGRATION_THREAD: fn() = crate::migrate::run;

/// Allocates the control state and publishes it for the callbacks.
pub(crate) fn publish() -> Result<Published<Control>> {
    Published::new(
        &CONTROL,
        new_mutex!(Control {
            settings: Settings {
                target: None,
                token: KVec::new(),
                max_downtime_ms: uapi::DEFAULT_MAX_DOWNTIME_MS,
                verify: false,
                tracker: Tracker::Paging,
                auto_converge: true,
                compress: true,
                rehearse: true,
            },
            status: StatusArgs::idle(),
            extra: Extra::default(),
            last_error: "none",
            run: Run::default(),
        }),
    )
}

/// Runs `f` with the control state locked.
pub(crate) fn with<R>(f: impl FnOnce(&mut Control) -> R) -> Result<R> {
    CONTROL.with(f)
}

/// Starts a migration; the path shared by sysfs `start` and `SELFMIG_IOC_START`.
pub(crate) fn start(op: &str, req: Request) -> Result {
    if req.tracker == Tracker::Paging {
        crate::dma::check_paging(op)?;
    }
    let verdict = with(|c| {
        if c.run.closing {
            return Err(ControlError::NotSupported);
        }
        if c.status.state.is_running() {
            return Err(ControlError::Busy);
        }
        if !cfg!(CONFIG_HIBERNATE_CALLBACKS) {
            return Err(ControlError::NoDevicePm);
        }
        c.run.pending = Some(req);
        c.run.abort = false;
        c.status = StatusArgs::idle();
        c.status.state = State::Connecting;
        c.extra = Extra::default();
        c.last_error = "none";
        // The last migration's thread has finished; stop it outside the lock.
        Ok(c.run.thread.take())
    })?;
    let previous = verdict.map_err(|e| refuse(op, e))?;
    drop(previous);
    match KThread::spawn(c_str!("self_migrate"), &MIGRATION_THREAD) {
        Ok(thread) => with(|c| c.run.thread = Some(thread)),
        Err(e) => {
            with(|c| {
                c.run.pending = None;
                c.status.state = State::Failed;
                c.status.last_errno = (-e.to_errno()) as u32;
                c.last_error = "cannot start the migration thread";
            })?;
            Err(e)
        }
    }
}

/// Aborts the running migration; shared by sysfs `abort` and `SELFMIG_IOC_ABORT`.
pub(crate) fn abort(op: &str) -> Result {
    let verdict = with(|c| {
        if !c.status.state.is_running() {
            return Err(ControlError::NotRunning);
        }
        c.run.abort = true;
        if let Some(live) = c.run.live {
            // SAFETY: `live` is set by the thread while its stream is open
            // and cleared under this lock before the stream is dropped.
            unsafe { live.shutdown() };
        }
        Ok(())
    })?;
    verdict.map_err(|e| refuse(op, e))?;
    pr_info!("{}: abort requested\n", op);
    Ok(())
}

/// Stops any migration for module unload. Before commit a migration just
/// ends and the guest carries on.
pub(crate) fn shutdown() {
    let thread = with(|c| {
        c.run.closing = true;
        c.run.abort = true;
        if let Some(live) = c.run.live {
            // SAFETY: As in `abort`.
            unsafe { live.shutdown() };
        }
        c.run.thread.take()
    });
    // Waits for the thread, which may still take the lock meanwhile.
    drop(thread);
}

/// A copy of the current status.
pub(crate) fn status() -> Result<(StatusArgs, Extra, &'static str)> {
    with(|c| (c.status, c.extra, c.last_error))
}

/// For the thread: takes the pending request.
pub(crate) fn take_request() -> Option<Request> {
    with(|c| c.run.pending.take()).ok().flatten()
}

/// The failure an abort request turns into.
pub(crate) fn aborted() -> Failure {
    Failure::new(crate::errno::errno(uapi::ECANCELED), "aborted by the user")
}

/// For the thread: publishes (or, with `None`, withdraws) the handle that
/// abort uses to interrupt its connection. Fails if abort was requested.
pub(crate) fn set_live(live: Option<Shutdown>) -> Result<(), Failure> {
    let abort = with(|c| {
        c.run.live = if c.run.abort { None } else { live };
        c.run.abort
    })
    .unwrap_or(true);
    if abort && live.is_some() {
        return Err(aborted());
    }
    Ok(())
}

/// For the thread: whether abort was requested.
pub(crate) fn abort_requested() -> bool {
    with(|c| c.run.abort).unwrap_or(true)
}

/// For the thread: updates the status.
pub(crate) fn update(f: impl FnOnce(&mut StatusArgs, &mut Extra)) {
    let _ = with(|c| f(&mut c.status, &mut c.extra));
}

/// For the thread: records how the migration ended.
pub(crate) fn finish(result: Result<(), Failure>, total_ms: u64) {
    let _ = with(|c| {
        c.status.total_ms = total_ms;
        match result {
            Ok(()) => c.status.state = State::Migrated,
            Err(f) => {
                c.status.state = if c.run.abort {
                    State::Aborted
                } else {
                    State::Failed
                };
                c.status.last_errno = (-f.err.to_errno()) as u32;
                c.last_error = f.reason;
            }
        }
    });
}
