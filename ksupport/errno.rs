// SPDX-License-Identifier: GPL-2.0

//! Errors by number, for the errno values `kernel::error::code` lacks.

use kernel::prelude::*;

/// The kernel error for a positive errno from `proto::uapi`.
pub(crate) fn errno(e: i32) -> Error {
    Error::from_errno(-e)
}
