// SPDX-License-Identifier: GPL-2.0

//! Why a migration (or one connection to the loader) ended early: an errno
//! for status files and callers, and a short reason for humans.

use kernel::prelude::*;

/// An errno with its reason.
#[derive(Clone, Copy)]
pub(crate) struct Failure {
    /// What callers and `last_errno` see.
    pub(crate) err: Error,
    /// What `last_error` and the log line say.
    pub(crate) reason: &'static str,
}

impl Failure {
    /// A failure with `err` and `reason`.
    pub(crate) fn new(err: Error, reason: &'static str) -> Self {
        Self { err, reason }
    }
}

/// Attaches a reason to a kernel error.
pub(crate) trait Context<T> {
    /// Maps the error into a [`Failure`] with `reason`.
    fn context(self, reason: &'static str) -> Result<T, Failure>;
}

impl<T> Context<T> for Result<T> {
    fn context(self, reason: &'static str) -> Result<T, Failure> {
        self.map_err(|err| Failure::new(err, reason))
    }
}
