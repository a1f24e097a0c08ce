// SPDX-License-Identifier: GPL-2.0

//! Loader control: listening endpoint, provider key, counters, and the
//! receiver thread's view of them.

use crate::global::{Global, Published};
use crate::kthread::KThread;
use crate::listener::TcpListener;
use crate::proto::replay::{ReplayEntry, ReplaySet};
use crate::proto::uapi::{ControlError, Endpoint};
use crate::refuse::refuse;
use crate::socket::Shutdown;
use kernel::c_str;
use kernel::new_mutex;
use kernel::prelude::*;

/// What the loader is doing.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum LoaderState {
    /// Not accepting connections.
    Idle,
    /// Waiting for a source.
    Listening,
    /// A source is connected and sending its image.
    Receiving,
}

impl LoaderState {
    /// The word `status` prints.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            LoaderState::Idle => "idle",
            LoaderState::Listening => "listening",
            LoaderState::Receiving => "receiving",
        }
    }
}

/// Counters shown in `stats`.
#[derive(Clone, Copy, Default)]
pub(crate) struct Counters {
    /// Pages the current or last token granted.
    pub(crate) pages_granted: u64,
    /// Pages paid for through the hash chain.
    pub(crate) pages_paid: u64,
    /// Pages inflated into the image (restore not implemented yet: 0).
    pub(crate) pages_used: u64,
    /// Pages received and validated in the current or last migration.
    pub(crate) pages_received: u64,
    /// Migrations admitted.
    pub(crate) admitted: u64,
    /// Migrations refused at admission.
    pub(crate) refused: u64,
    /// Admitted migrations that ended without a complete image.
    pub(crate) failed: u64,
    /// Pages checked against their checkpoint hash in the last migration
    /// that asked for verification.
    pub(crate) pages_verified: u64,
    /// Images refused because a page did not match its checkpoint hash.
    pub(crate) verify_failures: u64,
    /// The last rehearsal of the image's resume, from its first step to its
    /// last (0 if it failed).
    pub(crate) rehearsal_us: u64,
}

/// The receiver thread and what others need to reach it.
#[derive(Default)]
struct Run {
    thread: Option<KThread>,
    /// The listener the thread is about to take.
    pending: Option<TcpListener>,
    /// Shuts the listener down; set while the thread holds it.
    listener: Option<Shutdown>,
    /// Shuts the current connection down; set while it is open.
    conn: Option<Shutdown>,
    /// Set by disable and unload; the thread ends.
    stop: bool,
    /// Set at module unload: no new listener may start.
    closing: bool,
}

impl Run {
    /// Unblocks the thread: shuts its listener and connection down.
    fn interrupt(&mut self) {
        self.stop = true;
        for handle in [self.listener, self.conn].into_iter().flatten() {
            // SAFETY: The handles are set while their sockets are alive and
            // withdrawn under the control lock (held here) before the
            // sockets are dropped.
            unsafe { handle.shutdown() };
        }
    }
}

/// Everything behind the control mutex.
pub(crate) struct Control {
    /// Where to listen, once set.
    pub(crate) listen: Option<Endpoint>,
    /// Provider key (AES-GCM), empty until set; never shown.
    pub(crate) key: KVec<u8>,
    /// The provider key's id (`proto::token::key_id`).
    pub(crate) key_id: u16,
    /// Ids of the tokens admitted so far (single use), lent to the receiver
    /// thread for each connection; kept across connections and listeners.
    replay: Option<ReplaySet<KVec<ReplayEntry>>>,
    /// Current state.
    pub(crate) state: LoaderState,
    /// Counters.
    pub(crate) counters: Counters,
    /// Reason of the last refusal or failure.
    pub(crate) last_error: &'static str,
    run: Run,
}

/// The control state, published while the module is loaded.
static CONTROL: Global<Control> = Global::new();

/// The receiver thread's entry point.
static RECEIVER_THREAD: fn() = crate::receiver::run;

/// Unexpired tokens one loader can remember (see `proto::replay`).
const REPLAY_CAPACITY: usize = 1024;

/// Allocates the control state and publishes it for the callbacks.
pub(crate) fn publish() -> Result<Published<Control>> {
    let slots = KVec::from_elem(ReplayEntry::EMPTY, REPLAY_CAPACITY, GFP_KERNEL)?;
    Published::new(
        &CONTROL,
        new_mutex!(Control {
            listen: None,
            key: KVec::new(),
            key_id: 0,
            replay: Some(ReplaySet::new(slots)),
            state: LoaderState::Idle,
            counters: Counters::default(),
            last_error: "none",
            run: Run::default(),
        }),
    )
}

/// Runs `f` with the control state locked.
pub(crate) fn with<R>(f: impl FnOnce(&mut Control) -> R) -> Result<R> {
    CONTROL.with(f)
}

/// Starts listening with the configured endpoint and key.
pub(crate) fn enable(op: &str) -> Result {
    let verdict = with(|c| {
        if c.run.closing {
            return Err(ControlError::NotSupported);
        }
        if c.state != LoaderState::Idle {
            return Err(ControlError::Busy);
        }
        let ep = c.listen.ok_or(ControlError::NoTarget)?;
        if c.key.is_empty() {
            return Err(ControlError::NoKey);
        }
        if !cfg!(CONFIG_HIBERNATE_CALLBACKS) {
            return Err(ControlError::NoDevicePm);
        }
        Ok((ep, c.run.thread.take()))
    })?;
    let (ep, previous) = verdict.map_err(|e| refuse(op, e))?;
    // The last receiver thread has finished; stop it outside the lock.
    drop(previous);
    let rehearsal_us = match crate::quiesce::rehearse() {
        Ok(times) => {
            times.log("the jump and the image's resume");
            times.total()
        }
        Err(f) => {
            pr_warn!(
                "{}: rehearsing the image's resume failed: {} (errno {}); listening anyway\n",
                op,
                f.reason,
                -f.err.to_errno()
            );
            0
        }
    };
    with(|c| c.counters.rehearsal_us = rehearsal_us)?;
    let listener = TcpListener::bind(&ep).inspect_err(|e| {
        pr_warn!(
            "{}: cannot listen on port {} (errno {})\n",
            op,
            ep.port,
            -e.to_errno()
        );
    })?;
    with(|c| {
        c.run.listener = Some(listener.shutdown_handle());
        c.run.pending = Some(listener);
        c.run.stop = false;
        c.state = LoaderState::Listening;
    })?;
    match KThread::spawn(c_str!("inflate_loader"), &RECEIVER_THREAD) {
        Ok(thread) => with(|c| c.run.thread = Some(thread)),
        Err(e) => {
            with(|c| {
                c.run.listener = None;
                c.run.pending = None;
                c.state = LoaderState::Idle;
            })?;
            Err(e)
        }
    }
}

/// Stops listening (and drops a migration in progress).
pub(crate) fn disable(op: &str) -> Result {
    let verdict = with(|c| {
        if c.state == LoaderState::Idle {
            return Err(ControlError::NotListening);
        }
        c.run.interrupt();
        Ok(c.run.thread.take())
    })?;
    let thread = verdict.map_err(|e| refuse(op, e))?;
    drop(thread);
    with(|c| c.state = LoaderState::Idle)
}

/// Stops the receiver for module unload.
pub(crate) fn shutdown() {
    let thread = with(|c| {
        c.run.closing = true;
        c.run.interrupt();
        c.run.thread.take()
    });
    drop(thread);
}

/// For the thread: takes the listener.
pub(crate) fn take_listener() -> Option<TcpListener> {
    with(|c| c.run.pending.take()).ok().flatten()
}

/// For the thread: the listener is about to be dropped.
pub(crate) fn listener_done() {
    let _ = with(|c| {
        c.run.listener = None;
        c.state = LoaderState::Idle;
    });
}

/// For the thread: publishes or withdraws the connection's shutdown
/// handle. Returns false if the loader is stopping.
pub(crate) fn set_conn(conn: Option<Shutdown>) -> bool {
    with(|c| {
        c.run.conn = if c.run.stop { None } else { conn };
        c.state = if c.run.conn.is_some() {
            LoaderState::Receiving
        } else {
            LoaderState::Listening
        };
        !c.run.stop
    })
    .unwrap_or(false)
}

/// For the thread: a copy of the provider key and its id.
pub(crate) fn provider_key() -> Result<(KVec<u8>, u16)> {
    let copy = with(|c| {
        let mut key = KVec::with_capacity(c.key.len(), GFP_KERNEL)?;
        key.extend_from_slice(&c.key, GFP_KERNEL)?;
        Ok((key, c.key_id))
    })?;
    match copy {
        Ok((key, _)) if key.is_empty() => Err(crate::errno::errno(crate::proto::uapi::ENOKEY)),
        other => other,
    }
}

/// For the thread: borrows the replay set for one connection.
pub(crate) fn take_replay() -> Result<ReplaySet<KVec<ReplayEntry>>> {
    with(|c| c.replay.take())?.ok_or(EBUSY)
}

/// For the thread: returns the replay set.
pub(crate) fn put_replay(set: ReplaySet<KVec<ReplayEntry>>) {
    let _ = with(|c| c.replay = Some(set));
}

/// For the thread: whether to stop.
pub(crate) fn stop_requested() -> bool {
    with(|c| c.run.stop).unwrap_or(true)
}

/// For the thread: updates counters and the last error.
pub(crate) fn update(f: impl FnOnce(&mut Counters, &mut &'static str)) {
    let _ = with(|c| f(&mut c.counters, &mut c.last_error));
}
