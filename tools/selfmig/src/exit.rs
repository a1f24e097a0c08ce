// SPDX-License-Identifier: GPL-2.0

//! Exit codes: what a script calling `selfmig` can tell apart.
//!
//! The numbers are part of the CLI's interface and documented in
//! `Documentation/selfmig/cli.rst`; never renumber them.

use serde::Serialize;

/// How a command ended, as its exit code and the JSON `outcome` word.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ExitClass {
    /// The command did what was asked (for `migrate`: the guest migrated).
    Success,
    /// The migration failed (connection lost, peer died, target could not
    /// restore, internal error); the guest carries on where it was.
    Failed,
    /// The command line is wrong: unknown option, malformed or out-of-range
    /// value, unreadable `--token`/`--key` file.
    Usage,
    /// The request was well formed but not accepted: by the ABI checks on a
    /// token or key, by the kernel (busy, nothing to abort, ...), or by the
    /// target (nothing listening, admission refused).
    Refused,
    /// The user aborted the migration (Ctrl-C or `selfmig abort`).
    Aborted,
    /// The machine is not ready: module not loaded, no device node, no
    /// permission, kernel without the needed configuration, or a module
    /// whose ABI differs from this tool's.
    Environment,
}

impl ExitClass {
    /// Every class, in exit-code order.
    pub const ALL: [ExitClass; 6] = [
        ExitClass::Success,
        ExitClass::Failed,
        ExitClass::Usage,
        ExitClass::Refused,
        ExitClass::Aborted,
        ExitClass::Environment,
    ];

    /// The process exit code.
    pub fn code(self) -> u8 {
        match self {
            ExitClass::Success => 0,
            ExitClass::Failed => 1,
            ExitClass::Usage => 2,
            ExitClass::Refused => 3,
            ExitClass::Aborted => 4,
            ExitClass::Environment => 5,
        }
    }

    /// The word used in JSON `outcome` and in messages; `migrate`'s success
    /// is reported as `migrated` by the report, not here.
    pub fn as_str(self) -> &'static str {
        match self {
            ExitClass::Success => "success",
            ExitClass::Failed => "failed",
            ExitClass::Usage => "usage",
            ExitClass::Refused => "refused",
            ExitClass::Aborted => "aborted",
            ExitClass::Environment => "environment",
        }
    }
}

impl From<ExitClass> for std::process::ExitCode {
    fn from(c: ExitClass) -> Self {
        std::process::ExitCode::from(c.code())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_distinct_and_stable() {
        let codes: Vec<u8> = ExitClass::ALL.iter().map(|c| c.code()).collect();
        assert_eq!(codes, [0, 1, 2, 3, 4, 5]);
    }

    #[test]
    fn usage_matches_clap() {
        // clap's own error exit code; `main` relies on them agreeing.
        let e = clap::Error::raw(clap::error::ErrorKind::InvalidValue, "x");
        assert_eq!(i32::from(ExitClass::Usage.code()), e.exit_code());
    }
}
