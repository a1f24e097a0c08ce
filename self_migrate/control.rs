// SPDX-License-Identifier: GPL-2.0

//! Migration control: the settings and status behind sysfs and the ioctl,
//! and the one validated path both use to start and abort.
//!
//! Every refusal goes through `refuse()`, which logs one line naming the
//! operation and the reason and returns the errno from `proto::uapi`, so the
//! two interfaces cannot drift apart.

use crate::global::{Global, Published};
use crate::proto::uapi::{ControlError, Endpoint, State, StatusArgs, DEFAULT_MAX_DOWNTIME_MS};
use crate::refuse::refuse;
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
    pub(crate) token: KVec<u8>,
    /// Downtime target in milliseconds.
    pub(crate) max_downtime_ms: u32,
    /// Send page hashes for the target to verify.
    pub(crate) verify: bool,
    /// Dirty tracker to use.
    pub(crate) tracker: Tracker,
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
}

/// Everything behind the control mutex.
pub(crate) struct Control {
    /// sysfs settings.
    pub(crate) settings: Settings,
    /// Progress and result of the current or last migration.
    pub(crate) status: StatusArgs,
    /// Reason of the last failure, for `stats`.
    pub(crate) last_error: &'static str,
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
        })
    }
}

/// The control state, published while the module is loaded.
static CONTROL: Global<Control> = Global::new();

/// Allocates the control state and publishes it for the callbacks.
pub(crate) fn publish() -> Result<Published<Control>> {
    Published::new(
        &CONTROL,
        new_mutex!(Control {
            settings: Settings {
                target: None,
                token: KVec::new(),
                max_downtime_ms: DEFAULT_MAX_DOWNTIME_MS,
                verify: false,
                tracker: Tracker::Paging,
            },
            status: StatusArgs::idle(),
            last_error: "none",
        }),
    )
}

/// Runs `f` with the control state locked.
pub(crate) fn with<R>(f: impl FnOnce(&mut Control) -> R) -> Result<R> {
    CONTROL.with(f)
}

/// Starts a migration; the path shared by sysfs `start` and `SELFMIG_IOC_START`.
pub(crate) fn start(op: &str, req: Request) -> Result {
    let verdict = with(|c| {
        if c.status.state.is_running() {
            return Err(ControlError::Busy);
        }
        // The migration engine arrives with the end-to-end issue; until then
        // a well-formed request is refused as not supported, after every
        // check above has run.
        let _ = (
            &req.target,
            &req.token,
            req.max_downtime_ms,
            req.verify,
            req.tracker,
        );
        Err(ControlError::NotSupported)
    })?;
    verdict.map_err(|e| refuse(op, e))
}

/// Aborts the running migration; shared by sysfs `abort` and `SELFMIG_IOC_ABORT`.
pub(crate) fn abort(op: &str) -> Result {
    let verdict = with(|c| {
        if !c.status.state.is_running() {
            return Err(ControlError::NotRunning);
        }
        c.status.state = State::Aborted;
        Ok(())
    })?;
    verdict.map_err(|e| refuse(op, e))
}

/// A copy of the current status.
pub(crate) fn status() -> Result<(StatusArgs, &'static str)> {
    with(|c| (c.status, c.last_error))
}
