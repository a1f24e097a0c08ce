// SPDX-License-Identifier: GPL-2.0

//! `selfmig abort`: abort the migration in progress and wait (briefly) for
//! it to stop. The guest carries on where it is.

use super::fail;
use crate::cli::AbortOpts;
use crate::device::{Control, Device};
use crate::errno::{self, Op};
use crate::error::CliError;
use crate::exit::ExitClass;
use crate::sysfs::{Module, Sysfs};
use selfmig_proto::uapi::State;
use std::time::{Duration, Instant};

/// How long to wait for the migration to stop.
pub const WAIT: Duration = Duration::from_secs(10);

/// How often to look meanwhile.
const POLL_INTERVAL: Duration = Duration::from_millis(100);

/// Runs `selfmig abort`.
pub fn run(opts: &AbortOpts, sysfs: &Sysfs) -> ExitClass {
    let dev = match Device::open(&opts.dev, sysfs.is_loaded(Module::SelfMigrate)) {
        Ok(d) => d,
        Err(e) => return fail(e),
    };
    match abort_and_wait(&dev, WAIT, POLL_INTERVAL) {
        Ok(msg) => {
            println!("{msg}");
            ExitClass::Success
        }
        Err(e) => fail(e),
    }
}

/// Asks `ctl` to abort, then waits up to `wait` for the migration to stop;
/// returns what to tell the user.
fn abort_and_wait<C: Control>(
    ctl: &C,
    wait: Duration,
    interval: Duration,
) -> Result<String, CliError> {
    if let Err(e) = ctl.abort() {
        return Err(errno::refusal(
            Op::Abort,
            e.raw_os_error().unwrap_or(libc::EIO),
        ));
    }
    let deadline = Instant::now() + wait;
    loop {
        let s = ctl.status().map_err(|e| e.to_cli())?;
        if !s.state.is_running() {
            return Ok(match s.state {
                State::Aborted => {
                    "selfmig: migration aborted; this guest carries on here".to_string()
                }
                other => format!(
                    "selfmig: abort requested; the migration ended as `{}`",
                    other.as_str()
                ),
            });
        }
        if Instant::now() >= deadline {
            return Ok(format!(
                "selfmig: abort requested; the migration is still stopping (state `{}`); \
                 `selfmig status` shows when it has",
                s.state.as_str()
            ));
        }
        std::thread::sleep(interval);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device::StatusError;
    use crate::request::StartRequest;
    use selfmig_proto::uapi::{self, StatusArgs};
    use std::cell::Cell;
    use std::io;

    /// A device whose ABORT answers `abort` and whose STATUS reads
    /// `running` until the `stops_after`-th read.
    struct Fake {
        abort: Option<i32>,
        reads: Cell<u32>,
        stops_after: u32,
    }

    impl Control for Fake {
        fn start(&self, _: &StartRequest) -> io::Result<()> {
            unreachable!()
        }

        fn status(&self) -> Result<StatusArgs, StatusError> {
            self.reads.set(self.reads.get() + 1);
            let state = if self.reads.get() >= self.stops_after {
                State::Aborted
            } else {
                State::Precopy
            };
            Ok(StatusArgs {
                state,
                ..StatusArgs::idle()
            })
        }

        fn abort(&self) -> io::Result<()> {
            match self.abort {
                Some(e) => Err(io::Error::from_raw_os_error(e)),
                None => Ok(()),
            }
        }
    }

    #[test]
    fn waits_for_the_abort() {
        let f = Fake {
            abort: None,
            reads: Cell::new(0),
            stops_after: 3,
        };
        let msg = abort_and_wait(&f, Duration::from_secs(5), Duration::ZERO).unwrap();
        assert!(msg.contains("migration aborted"));
        assert_eq!(f.reads.get(), 3);
    }

    #[test]
    fn gives_up_waiting() {
        let f = Fake {
            abort: None,
            reads: Cell::new(0),
            stops_after: u32::MAX,
        };
        let msg = abort_and_wait(&f, Duration::ZERO, Duration::ZERO).unwrap();
        assert!(msg.contains("still stopping (state `precopy`)"));
    }

    #[test]
    fn nothing_running_is_refused() {
        let f = Fake {
            abort: Some(uapi::EINVAL),
            reads: Cell::new(0),
            stops_after: 0,
        };
        let e = abort_and_wait(&f, Duration::ZERO, Duration::ZERO).unwrap_err();
        assert_eq!(e.class, ExitClass::Refused);
        assert!(e.message.contains("no migration is running"));
    }
}
