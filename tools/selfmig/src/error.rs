// SPDX-License-Identifier: GPL-2.0

//! The error a command ends with: its exit class, the errno behind it, what
//! went wrong and what to do next.

use crate::errno;
use crate::exit::ExitClass;
use std::fmt;

/// An error as shown to the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CliError {
    /// Which exit code the command ends with.
    pub class: ExitClass,
    /// The positive errno behind the error, when there is one.
    pub errno: Option<i32>,
    /// What went wrong, in one sentence without a trailing period.
    pub message: String,
    /// What to do next, when there is something to suggest.
    pub hint: Option<String>,
}

impl CliError {
    /// An error of `class` saying `message`.
    pub fn new(class: ExitClass, message: impl Into<String>) -> Self {
        Self {
            class,
            errno: None,
            message: message.into(),
            hint: None,
        }
    }

    /// Records the errno behind the error.
    pub fn with_errno(mut self, errno: i32) -> Self {
        self.errno = Some(errno);
        self
    }

    /// Adds what to do next.
    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// Prints the error (and the hint) on stderr.
    pub fn print(&self) {
        eprint!("{self}");
    }
}

impl fmt::Display for CliError {
    /// `selfmig: MESSAGE (ENAME)` and, if there is a hint, a second line
    /// `selfmig: next: HINT`. The class is the exit code's business.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "selfmig: {}", self.message)?;
        if let Some(e) = self.errno {
            write!(f, " ({})", errno::label(e))?;
        }
        writeln!(f)?;
        if let Some(h) = &self.hint {
            writeln!(f, "selfmig: next: {h}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_class_errno_and_hint() {
        let e = CliError::new(
            ExitClass::Refused,
            "start refused: a migration is already running",
        )
        .with_errno(16)
        .with_hint("wait for it");
        assert_eq!(
            e.to_string(),
            "selfmig: start refused: a migration is already running (EBUSY)\n\
             selfmig: next: wait for it\n"
        );
    }

    #[test]
    fn renders_without_errno_or_hint() {
        let e = CliError::new(ExitClass::Failed, "unknown state 9");
        assert_eq!(e.to_string(), "selfmig: unknown state 9\n");
    }
}
