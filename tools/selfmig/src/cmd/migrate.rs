// SPDX-License-Identifier: GPL-2.0

//! `selfmig migrate`: start a migration through `/dev/self_migrate`, show
//! its progress, report how it ended.
//!
//! When the migration succeeds this process moves with the rest of the
//! guest: it resumes in the target VM, where the next STATUS reads
//! `migrated`, and reports from there.

use super::token;
use crate::cli::MigrateOpts;
use crate::device::{Control, Device};
use crate::errno::{self, Op};
use crate::error::CliError;
use crate::exit::ExitClass;
use crate::hexfile;
use crate::json::{self, MigrateReport};
use crate::progress::{Mode, Progress};
use crate::report;
use crate::request::StartRequest;
use crate::sysfs::{AbiVersion, Module, Stats, Sysfs};
use selfmig_proto::uapi::{State, StatusArgs};
use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How often STATUS and `stats` are read.
pub const POLL_INTERVAL: Duration = Duration::from_millis(100);

/// How a migration ended, as far as this process saw it.
#[derive(Debug)]
struct Ending {
    /// The exit class.
    class: ExitClass,
    /// The last STATUS read; None if no migration started.
    status: Option<StatusArgs>,
    /// `stats` read at the end, if readable.
    stats: Option<Stats>,
    /// Why it did not migrate.
    error: Option<CliError>,
}

impl Ending {
    /// Nothing started because of `e`.
    fn not_started(e: CliError) -> Self {
        Self {
            class: e.class,
            status: None,
            stats: None,
            error: Some(e),
        }
    }
}

/// Runs `selfmig migrate`.
pub fn run(opts: &MigrateOpts, sysfs: &Sysfs) -> ExitClass {
    let mut req = StartRequest {
        target: opts.to,
        token: Vec::new(),
        max_downtime_ms: opts.max_downtime,
        verify: opts.verify,
        tracker: opts.tracker,
        no_auto_converge: opts.no_auto_converge,
        no_compress: opts.no_compress,
        no_rehearse: opts.no_rehearse,
    };
    let ending = match prepare(opts, sysfs, &mut req) {
        Ok((dev, header)) => {
            let interrupted = ctrl_c_flag();
            let mode = Mode::choose(opts.no_progress);
            let mut progress = Progress::new(mode, Instant::now());
            if let (Some(h), false) = (header, mode == Mode::Off) {
                progress.say(&h);
            }
            let ending = drive(
                &dev,
                &req,
                sysfs,
                POLL_INTERVAL,
                &interrupted,
                &mut progress,
            );
            progress.finish();
            ending
        }
        Err(e) => Ending::not_started(e),
    };
    output(opts.json, &req, &ending);
    ending.class
}

/// Reads the token, checks the request as the kernel will, checks the
/// module's ABI and opens the device. Returns the device and, when the
/// token file holds a token bundle, its grant for the progress header.
///
/// The token file's bytes are passed on unchanged whatever they are (the
/// kernel decides); one that is not a bundle, or an expired bundle, is
/// warned about here.
fn prepare(
    opts: &MigrateOpts,
    sysfs: &Sysfs,
    req: &mut StartRequest,
) -> Result<(Device, Option<String>), CliError> {
    let mut header = None;
    if let Some(path) = &opts.token {
        req.token = hexfile::read_token(path)?;
        let note = token::describe_token(&req.token, token::now());
        if let Some(w) = note.warning {
            eprintln!("selfmig: warning: {}: {w}", path.display());
        }
        header = note.header;
    }
    req.validate()
        .map_err(|e| errno::refusal_of(Op::Start, e))?;
    check_abi(sysfs)?;
    let dev = Device::open(&opts.dev, sysfs.is_loaded(Module::SelfMigrate))?;
    Ok((dev, header))
}

/// Fails if the loaded module's ioctl structures differ from this tool's.
/// A module without a readable `version` is not judged here.
fn check_abi(sysfs: &Sysfs) -> Result<(), CliError> {
    let Ok(text) = sysfs.read(Module::SelfMigrate, "version") else {
        return Ok(());
    };
    let Some(theirs) = AbiVersion::parse(&text) else {
        return Ok(());
    };
    let ours = AbiVersion::ours();
    if (theirs.start_size, theirs.status_size) == (ours.start_size, ours.status_size) {
        return Ok(());
    }
    Err(CliError::new(
        ExitClass::Environment,
        format!("self_migrate speaks another ioctl ABI ({theirs}) than this selfmig ({ours})"),
    )
    .with_hint("build selfmig and self_migrate.ko from the same tree"))
}

/// A flag the first Ctrl-C sets; a second Ctrl-C ends the process.
fn ctrl_c_flag() -> Arc<AtomicBool> {
    use signal_hook::consts::SIGINT;
    let flag = Arc::new(AtomicBool::new(false));
    // Registered first, so it sees the flag as it was before this signal:
    // the default action (exit) only from the second Ctrl-C on.
    let armed = signal_hook::flag::register_conditional_default(SIGINT, Arc::clone(&flag))
        .and_then(|_| signal_hook::flag::register(SIGINT, Arc::clone(&flag)));
    if let Err(e) = armed {
        eprintln!("selfmig: Ctrl-C will not abort the migration: {e}");
    }
    flag
}

/// Starts the migration and follows it until it ends. Once `interrupted`
/// is set, asks the module to abort (once).
fn drive<C: Control>(
    ctl: &C,
    req: &StartRequest,
    sysfs: &Sysfs,
    interval: Duration,
    interrupted: &AtomicBool,
    progress: &mut Progress,
) -> Ending {
    if let Err(e) = ctl.start(req) {
        let n = e.raw_os_error().unwrap_or(libc::EIO);
        return Ending::not_started(errno::refusal(Op::Start, n));
    }
    let mut abort_sent = false;
    let mut last: Option<StatusArgs> = None;
    loop {
        if !abort_sent && interrupted.load(Ordering::SeqCst) {
            abort_sent = true;
            progress.say(
                "interrupted: aborting the migration (Ctrl-C again stops waiting; the abort goes on)",
            );
            if let Err(e) = ctl.abort() {
                // EINVAL: it ended meanwhile; the status says how.
                if e.raw_os_error() != Some(libc::EINVAL) {
                    let n = e.raw_os_error().unwrap_or(libc::EIO);
                    progress.say(&errno::refusal(Op::Abort, n).message);
                }
            }
        }
        let s = match ctl.status() {
            Ok(s) => s,
            Err(e) => {
                let err = e.to_cli();
                return Ending {
                    class: err.class,
                    status: last,
                    stats: sysfs.stats(Module::SelfMigrate).ok(),
                    error: Some(err),
                };
            }
        };
        let stats = sysfs.stats(Module::SelfMigrate).ok();
        progress.update(
            Instant::now(),
            &s,
            stats.as_ref().and_then(|x| x.get_u64("zero_pages")),
        );
        last = Some(s);
        if !s.state.is_running() {
            return conclude(req, s, stats);
        }
        std::thread::sleep(interval);
    }
}

/// The ending of a migration whose last status is `s`.
fn conclude(req: &StartRequest, s: StatusArgs, stats: Option<Stats>) -> Ending {
    let error = match s.state {
        State::Migrated => None,
        State::Failed | State::Aborted => Some(errno::migration_failure(
            s.state == State::Aborted,
            i32::try_from(s.last_errno).unwrap_or(libc::EIO),
            stats.as_ref().and_then(|x| x.get("last_error")),
            s.pages_sent,
            &req.target.to_string(),
        )),
        _ => Some(
            CliError::new(
                ExitClass::Failed,
                format!(
                    "the module reports `{}`: the migration was lost",
                    s.state.as_str()
                ),
            )
            .with_hint("was self_migrate.ko reloaded? dmesg may say more"),
        ),
    };
    Ending {
        class: error.as_ref().map_or(ExitClass::Success, |e| e.class),
        status: Some(s),
        stats,
        error,
    }
}

/// Prints the report: JSON on stdout with `--json`, else the human report
/// (or, if nothing started, just the error on stderr).
fn output(json: bool, req: &StartRequest, ending: &Ending) {
    let report = MigrateReport::new(
        req,
        ending.class,
        ending.status.as_ref(),
        ending.stats.as_ref(),
        ending.error.as_ref(),
    );
    if json {
        println!("{}", json::to_line(&report));
        if let Some(e) = &ending.error {
            e.print();
        }
    } else if ending.status.is_some() {
        print!("{}", report::migrate(&report));
        // The report has the error; repeat it where a terminal shows it.
        if let Some(e) = &ending.error {
            if !std::io::stdout().is_terminal() {
                e.print();
            }
        }
    } else if let Some(e) = &ending.error {
        e.print();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device::StatusError;
    use crate::request::Tracker;
    use selfmig_proto::uapi::{self, Endpoint};
    use std::cell::{Cell, RefCell};
    use std::collections::VecDeque;
    use std::io;

    /// A scripted device: START answers `start`, STATUS the next of
    /// `statuses` (the last repeats), ABORT is counted.
    struct Fake {
        start: Option<i32>,
        statuses: RefCell<VecDeque<Result<StatusArgs, i32>>>,
        aborts: Cell<u32>,
        started: Cell<bool>,
    }

    impl Fake {
        fn new(statuses: Vec<Result<StatusArgs, i32>>) -> Self {
            Self {
                start: None,
                statuses: RefCell::new(statuses.into()),
                aborts: Cell::new(0),
                started: Cell::new(false),
            }
        }
    }

    impl Control for Fake {
        fn start(&self, req: &StartRequest) -> io::Result<()> {
            assert!(!self.started.replace(true), "started twice");
            assert_eq!(req.args().validate(), Ok(()));
            match self.start {
                Some(e) => Err(io::Error::from_raw_os_error(e)),
                None => Ok(()),
            }
        }

        fn status(&self) -> Result<StatusArgs, StatusError> {
            assert!(self.started.get(), "status before start");
            let mut q = self.statuses.borrow_mut();
            let next = if q.len() > 1 {
                q.pop_front().unwrap()
            } else {
                q[0]
            };
            next.map_err(|e| StatusError::Os(io::Error::from_raw_os_error(e)))
        }

        fn abort(&self) -> io::Result<()> {
            self.aborts.set(self.aborts.get() + 1);
            Ok(())
        }
    }

    fn req() -> StartRequest {
        StartRequest {
            target: Endpoint {
                addr: [10, 77, 0, 3],
                port: 7000,
            },
            token: vec![0x00, 0x11],
            max_downtime_ms: Some(100),
            verify: false,
            tracker: Tracker::Hash,
            no_auto_converge: false,
            no_compress: false,
            no_rehearse: false,
        }
    }

    fn st(state: State, round: u32, pages: u64) -> StatusArgs {
        StatusArgs {
            state,
            round,
            pages_sent: pages,
            bytes_sent: pages * 4100,
            ..StatusArgs::idle()
        }
    }

    fn run_fake(fake: &Fake, sysfs: &Sysfs, interrupted: bool) -> Ending {
        let mut progress = Progress::new(Mode::Off, Instant::now());
        drive(
            fake,
            &req(),
            sysfs,
            Duration::ZERO,
            &AtomicBool::new(interrupted),
            &mut progress,
        )
    }

    fn no_sysfs() -> Sysfs {
        Sysfs::new("/nonexistent/selfmig-test")
    }

    #[test]
    fn migrates() {
        let mut done = st(State::Migrated, 3, 5000);
        done.downtime_us = 40_000;
        done.total_ms = 2_000;
        let fake = Fake::new(vec![
            Ok(st(State::Connecting, 0, 0)),
            Ok(st(State::Precopy, 1, 1000)),
            Ok(st(State::Precopy, 2, 4000)),
            Ok(st(State::Checkpoint, 3, 4900)),
            Ok(done),
        ]);
        let root = tempfile::tempdir().unwrap();
        let sysfs = Sysfs::new(root.path());
        std::fs::create_dir_all(sysfs.dir(Module::SelfMigrate)).unwrap();
        std::fs::write(
            sysfs.attr(Module::SelfMigrate, "stats"),
            "state: migrated\nzero_pages: 77\nlast_error: none\n",
        )
        .unwrap();
        let e = run_fake(&fake, &sysfs, false);
        assert_eq!(e.class, ExitClass::Success);
        assert!(e.error.is_none());
        assert_eq!(e.status, Some(done));
        assert_eq!(fake.aborts.get(), 0);
        let r = MigrateReport::new(&req(), e.class, e.status.as_ref(), e.stats.as_ref(), None);
        assert_eq!(r.outcome, "migrated");
        assert_eq!(r.zero_pages, Some(77));
        assert_eq!(r.max_downtime_ms, 100);
    }

    #[test]
    fn start_refused() {
        let mut fake = Fake::new(vec![Ok(st(State::Idle, 0, 0))]);
        fake.start = Some(uapi::EBUSY);
        let e = run_fake(&fake, &no_sysfs(), false);
        assert_eq!(e.class, ExitClass::Refused);
        assert_eq!(e.status, None);
        assert_eq!(e.error.unwrap().errno, Some(uapi::EBUSY));
    }

    #[test]
    fn start_without_hibernation_support() {
        let mut fake = Fake::new(vec![Ok(st(State::Idle, 0, 0))]);
        fake.start = Some(uapi::EOPNOTSUPP);
        let e = run_fake(&fake, &no_sysfs(), false);
        assert_eq!(e.class, ExitClass::Environment);
        assert!(e.error.unwrap().hint.unwrap().contains("admin-guide.rst"));
    }

    #[test]
    fn nothing_listening_is_refused() {
        let mut failed = st(State::Failed, 0, 0);
        failed.last_errno = uapi::ECONNREFUSED as u32;
        let fake = Fake::new(vec![Ok(st(State::Connecting, 0, 0)), Ok(failed)]);
        let e = run_fake(&fake, &no_sysfs(), false);
        assert_eq!(e.class, ExitClass::Refused);
        let err = e.error.unwrap();
        assert_eq!(err.errno, Some(uapi::ECONNREFUSED));
        assert!(err.hint.unwrap().contains("10.77.0.3:7000"));
    }

    #[test]
    fn peer_died_is_failed_with_the_kernels_reason() {
        let mut failed = st(State::Failed, 2, 3000);
        failed.last_errno = uapi::ECONNRESET as u32;
        let fake = Fake::new(vec![Ok(st(State::Precopy, 2, 2000)), Ok(failed)]);
        let root = tempfile::tempdir().unwrap();
        let sysfs = Sysfs::new(root.path());
        std::fs::create_dir_all(sysfs.dir(Module::SelfMigrate)).unwrap();
        std::fs::write(
            sysfs.attr(Module::SelfMigrate, "stats"),
            "state: failed\nlast_error: peer closed the stream\n",
        )
        .unwrap();
        let e = run_fake(&fake, &sysfs, false);
        assert_eq!(e.class, ExitClass::Failed);
        assert_eq!(
            e.error.unwrap().message,
            "migration failed: peer closed the stream"
        );
    }

    #[test]
    fn ctrl_c_aborts_once() {
        let mut aborted = st(State::Aborted, 2, 3000);
        aborted.last_errno = uapi::ECANCELED as u32;
        let fake = Fake::new(vec![
            Ok(st(State::Precopy, 2, 2000)),
            Ok(st(State::Precopy, 2, 2500)),
            Ok(aborted),
        ]);
        let e = run_fake(&fake, &no_sysfs(), true);
        assert_eq!(fake.aborts.get(), 1);
        assert_eq!(e.class, ExitClass::Aborted);
        assert_eq!(e.status.unwrap().state, State::Aborted);
    }

    #[test]
    fn status_read_failure_is_failed() {
        let fake = Fake::new(vec![Ok(st(State::Precopy, 1, 10)), Err(uapi::EFAULT)]);
        let e = run_fake(&fake, &no_sysfs(), false);
        assert_eq!(e.class, ExitClass::Failed);
        assert_eq!(e.status.unwrap().state, State::Precopy);
        assert_eq!(e.error.unwrap().errno, Some(uapi::EFAULT));
    }

    #[test]
    fn lost_migration_is_failed() {
        let fake = Fake::new(vec![Ok(st(State::Idle, 0, 0))]);
        let e = run_fake(&fake, &no_sysfs(), false);
        assert_eq!(e.class, ExitClass::Failed);
        assert!(e.error.unwrap().message.contains("`idle`"));
    }

    fn opts(token: Option<std::path::PathBuf>) -> MigrateOpts {
        MigrateOpts {
            to: req().target,
            token,
            verify: false,
            max_downtime: None,
            tracker: Tracker::Paging,
            no_auto_converge: false,
            no_compress: false,
            no_rehearse: false,
            json: false,
            no_progress: true,
            dev: "/nonexistent/self_migrate".into(),
        }
    }

    #[test]
    fn no_token_is_refused_before_the_kernel_is_asked() {
        let mut r = req();
        r.token.clear();
        let e = prepare(&opts(None), &no_sysfs(), &mut r).unwrap_err();
        assert_eq!(e.class, ExitClass::Refused);
        assert_eq!(e.errno, Some(uapi::ENOKEY));
        assert!(e.hint.unwrap().contains("--token"));
    }

    #[test]
    fn module_not_loaded() {
        let dir = tempfile::tempdir().unwrap();
        let token = dir.path().join("token");
        std::fs::write(&token, "0011\n").unwrap();
        let mut r = req();
        let e = prepare(&opts(Some(token)), &no_sysfs(), &mut r).unwrap_err();
        assert_eq!(r.token, vec![0x00, 0x11]);
        assert_eq!(e.class, ExitClass::Environment);
        assert!(e.hint.unwrap().contains("insmod self_migrate.ko"));
    }

    #[test]
    fn a_bundle_is_passed_unchanged_and_its_grant_shown() {
        use crate::crypto::{Gcm, Sha256};
        use selfmig_proto::bundle::{MintSpec, TokenBundle};
        let key = [0x42u8; 16];
        let spec = MintSpec {
            key_id: selfmig_proto::token::key_id(&Sha256, &key).unwrap(),
            id: [1; 16],
            expiry: u64::MAX,
            granted_pages: 4096,
            granted_vcpus: 1,
            unit_pages: 1024,
            price_per_unit: 0,
            chain_len: 4,
            session_key: [2; 32],
            seed: [3; 32],
        };
        let b = TokenBundle::mint(&Gcm::new(&key).unwrap(), &Sha256, &[4; 12], &spec).unwrap();
        let bytes = b.encode();
        let dir = tempfile::tempdir().unwrap();
        let token = dir.path().join("bundle");
        std::fs::write(&token, format!("{}\n", hexfile::encode(&bytes))).unwrap();
        let mut r = req();
        let e = prepare(&opts(Some(token)), &no_sysfs(), &mut r).unwrap_err();
        assert_eq!(r.token, bytes.to_vec());
        assert_eq!(e.class, ExitClass::Environment);
        let note = token::describe_token(&r.token, 0);
        assert!(note
            .header
            .unwrap()
            .starts_with("token bundle: 4096 pages (16.0 MiB), 1 vCPU; 4 links of 4.0 MiB"));
        assert_eq!(note.warning, None);
    }

    #[test]
    fn abi_mismatch_is_environment() {
        let root = tempfile::tempdir().unwrap();
        let sysfs = Sysfs::new(root.path());
        assert!(check_abi(&sysfs).is_ok());
        std::fs::create_dir_all(sysfs.dir(Module::SelfMigrate)).unwrap();
        let version = sysfs.attr(Module::SelfMigrate, "version");
        std::fs::write(&version, format!("{}\n", AbiVersion::ours())).unwrap();
        assert!(check_abi(&sysfs).is_ok());
        std::fs::write(&version, "wire 4 image 1 start_size 72 status_size 80\n").unwrap();
        let e = check_abi(&sysfs).unwrap_err();
        assert_eq!(e.class, ExitClass::Environment);
        assert!(e.message.contains("start_size 72"));
    }
}
