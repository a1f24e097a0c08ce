// SPDX-License-Identifier: GPL-2.0

//! One way to refuse a control request: one dmesg line, one errno.

use crate::proto::uapi::ControlError;
use kernel::prelude::*;

/// Logs why `op` was refused and returns the errno `proto::uapi` assigns.
///
/// The module name prefixes the line (`pr_warn!` adds it), so a refusal
/// reads e.g. `self_migrate: target: port must be 1..65535 (errno 34)`.
pub(crate) fn refuse(op: &str, e: ControlError) -> Error {
    pr_warn!("{}: {} (errno {})\n", op, e.as_str(), e.errno());
    Error::from_errno(-e.errno())
}
