// SPDX-License-Identifier: GPL-2.0

//! Loader control: listening endpoint, provider key and counters.

use crate::global::{Global, Published};
use crate::proto::uapi::{ControlError, Endpoint};
use crate::refuse::refuse;
use kernel::new_mutex;
use kernel::prelude::*;

/// What the loader is doing.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum LoaderState {
    /// Configured or not, but not accepting connections.
    Idle,
    /// Accepting one migration.
    Listening,
}

impl LoaderState {
    /// The word `status` prints.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            LoaderState::Idle => "idle",
            LoaderState::Listening => "listening",
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
    /// Pages received into the image.
    pub(crate) pages_used: u64,
    /// Migrations admitted.
    pub(crate) admitted: u64,
    /// Migrations refused or aborted.
    pub(crate) refused: u64,
}

/// Everything behind the control mutex.
pub(crate) struct Control {
    /// Where to listen, once set.
    pub(crate) listen: Option<Endpoint>,
    /// Provider key (AES-GCM), empty until set; never shown.
    pub(crate) key: KVec<u8>,
    /// Current state.
    pub(crate) state: LoaderState,
    /// Counters.
    pub(crate) counters: Counters,
    /// Reason of the last refusal or failure.
    pub(crate) last_error: &'static str,
}

/// The control state, published while the module is loaded.
static CONTROL: Global<Control> = Global::new();

/// Allocates the control state and publishes it for the callbacks.
pub(crate) fn publish() -> Result<Published<Control>> {
    Published::new(
        &CONTROL,
        new_mutex!(Control {
            listen: None,
            key: KVec::new(),
            state: LoaderState::Idle,
            counters: Counters::default(),
            last_error: "none",
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
        if c.state == LoaderState::Listening {
            return Err(ControlError::Busy);
        }
        if c.listen.is_none() {
            return Err(ControlError::NoTarget);
        }
        if c.key.is_empty() {
            return Err(ControlError::NoKey);
        }
        // The receiver arrives with the end-to-end issue.
        Err(ControlError::NotSupported)
    })?;
    verdict.map_err(|e| refuse(op, e))
}

/// Stops listening.
pub(crate) fn disable(op: &str) -> Result {
    let verdict = with(|c| {
        if c.state != LoaderState::Listening {
            return Err(ControlError::NotListening);
        }
        c.state = LoaderState::Idle;
        Ok(())
    })?;
    verdict.map_err(|e| refuse(op, e))
}
