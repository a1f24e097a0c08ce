// SPDX-License-Identifier: GPL-2.0

//! The command line: subcommands, options, and the checks on their values.
//!
//! Values are checked with `proto`'s parsers, the ones the modules use on
//! the same input through sysfs, so a value is refused here exactly when
//! the kernel would refuse it. A refused value is a usage error (exit 2).

use crate::device;
use crate::request::Tracker;
use crate::sysfs;
use clap::{Args, Parser, Subcommand};
use selfmig_proto::uapi::{self, Endpoint, MAX_MAX_DOWNTIME_MS, MIN_MAX_DOWNTIME_MS};
use std::path::PathBuf;

/// `--version --verbose`-style version: the package version and the ABI
/// it speaks, in the format of `/sys/kernel/self_migrate/version`.
pub const LONG_VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    "\nABI: wire 1 image 1 start_size 64 status_size 80"
);

/// Live self-migration of this guest to another VM.
///
/// `migrate` runs in the guest that moves (self_migrate.ko); `receive`
/// runs in the VM that takes it in (inflate_loader.ko). See
/// Documentation/selfmig/cli.rst.
#[derive(Debug, Parser)]
#[command(name = "selfmig", version, long_version = LONG_VERSION)]
pub struct Cli {
    /// Options every subcommand takes.
    #[command(flatten)]
    pub global: Global,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Options every subcommand takes.
#[derive(Debug, Args)]
pub struct Global {
    /// Where sysfs is mounted.
    #[arg(long, global = true, value_name = "PATH", default_value = sysfs::DEFAULT_ROOT)]
    pub sysfs: PathBuf,
}

/// The subcommands. Each is implemented in its own file under `cmd/`.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Migrate this guest live to a target VM, showing progress.
    Migrate(MigrateOpts),
    /// Configure this VM's loader to receive a guest (or stop it).
    Receive(ReceiveOpts),
    /// Show the state and counters of whichever module is loaded.
    Status(StatusOpts),
    /// Abort the migration in progress; the guest carries on here.
    Abort(AbortOpts),
}

/// `selfmig migrate`.
#[derive(Debug, Args)]
pub struct MigrateOpts {
    /// The target's inflate_loader: IPv4 address and port.
    #[arg(long, value_name = "HOST:PORT", value_parser = parse_target)]
    pub to: Endpoint,
    /// File holding the admission token in hexadecimal (as sysfs `token`
    /// takes it).
    #[arg(long, value_name = "FILE")]
    pub token: Option<PathBuf>,
    /// Have the target check every page before it resumes the guest.
    #[arg(long)]
    pub verify: bool,
    /// Downtime target in milliseconds (1..60000; default 50).
    #[arg(long, value_name = "MS", value_parser = parse_downtime)]
    pub max_downtime: Option<u32>,
    /// Dirty tracker.
    #[arg(long, value_enum, default_value_t = Tracker::Paging)]
    pub tracker: Tracker,
    /// Print the final report as one JSON object on stdout.
    #[arg(long)]
    pub json: bool,
    /// Show no progress on stderr.
    #[arg(long)]
    pub no_progress: bool,
    /// The self_migrate device node.
    #[arg(long, value_name = "PATH", default_value = device::DEFAULT_PATH)]
    pub dev: PathBuf,
}

/// `selfmig receive`.
#[derive(Debug, Args)]
#[command(
    override_usage = "selfmig receive --listen <ADDR:PORT> [--key <FILE>]\n       \
                            selfmig receive --stop"
)]
pub struct ReceiveOpts {
    /// Address and port to listen on (0.0.0.0:PORT for any address).
    #[arg(
        long,
        value_name = "ADDR:PORT",
        value_parser = parse_listen,
        required_unless_present = "stop"
    )]
    pub listen: Option<Endpoint>,
    /// File holding the provider key in hexadecimal (16, 24 or 32 bytes).
    #[arg(long, value_name = "FILE", requires = "listen")]
    pub key: Option<PathBuf>,
    /// Stop listening (drops a migration being received).
    #[arg(long, conflicts_with_all = ["listen", "key"])]
    pub stop: bool,
}

/// `selfmig status`.
#[derive(Debug, Args)]
pub struct StatusOpts {
    /// Print one JSON object on stdout.
    #[arg(long)]
    pub json: bool,
}

/// `selfmig abort`.
#[derive(Debug, Args)]
pub struct AbortOpts {
    /// The self_migrate device node.
    #[arg(long, value_name = "PATH", default_value = device::DEFAULT_PATH)]
    pub dev: PathBuf,
}

/// Parses `--to`: a target endpoint the module accepts.
pub fn parse_target(s: &str) -> Result<Endpoint, String> {
    Endpoint::parse(s.as_bytes()).map_err(|e| {
        format!(
            "{} (expected the target VM's IPv4 address and port, e.g. 10.0.0.2:7000)",
            e.as_str()
        )
    })
}

/// Parses `--listen`: an endpoint the loader can listen on.
pub fn parse_listen(s: &str) -> Result<Endpoint, String> {
    Endpoint::parse_listen(s.as_bytes())
        .map_err(|e| format!("{} (expected e.g. 0.0.0.0:7000)", e.as_str()))
}

/// Parses `--max-downtime`: milliseconds in the module's range.
pub fn parse_downtime(s: &str) -> Result<u32, String> {
    uapi::parse_u32_in(s.as_bytes(), MIN_MAX_DOWNTIME_MS, MAX_MAX_DOWNTIME_MS).map_err(|e| {
        format!(
            "{} (expected {MIN_MAX_DOWNTIME_MS}..{MAX_MAX_DOWNTIME_MS} milliseconds)",
            e.as_str()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exit::ExitClass;
    use crate::sysfs::AbiVersion;
    use clap::error::ErrorKind;
    use clap::CommandFactory;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("selfmig").chain(args.iter().copied()))
    }

    fn migrate(args: &[&str]) -> Result<MigrateOpts, clap::Error> {
        let mut all = vec!["migrate"];
        all.extend_from_slice(args);
        match parse(&all)?.command {
            Command::Migrate(m) => Ok(m),
            other => panic!("parsed as {other:?}"),
        }
    }

    #[test]
    fn definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn long_version_names_protos_abi() {
        let abi = LONG_VERSION.split_once("\nABI: ").unwrap().1;
        assert_eq!(abi, AbiVersion::ours().to_string());
    }

    #[test]
    fn migrate_defaults() {
        let m = migrate(&["--to", "10.77.0.3:7000"]).unwrap();
        assert_eq!(
            m.to,
            Endpoint {
                addr: [10, 77, 0, 3],
                port: 7000
            }
        );
        assert_eq!(m.token, None);
        assert!(!m.verify && !m.json && !m.no_progress);
        assert_eq!(m.max_downtime, None);
        assert_eq!(m.tracker, Tracker::Paging);
        assert_eq!(m.dev, PathBuf::from("/dev/self_migrate"));
    }

    #[test]
    fn migrate_everything() {
        let m = migrate(&[
            "--to",
            "192.168.1.20:9000",
            "--token",
            "/tmp/t",
            "--verify",
            "--max-downtime",
            "300",
            "--tracker",
            "hash",
            "--json",
            "--no-progress",
            "--dev",
            "/tmp/dev",
        ])
        .unwrap();
        assert_eq!(m.to.port, 9000);
        assert_eq!(m.token, Some(PathBuf::from("/tmp/t")));
        assert!(m.verify && m.json && m.no_progress);
        assert_eq!(m.max_downtime, Some(300));
        assert_eq!(m.tracker, Tracker::Hash);
        assert_eq!(m.dev, PathBuf::from("/tmp/dev"));
    }

    #[test]
    fn bad_endpoints_are_usage_errors() {
        for (bad, why) in [
            ("10.0.0.2", "address must be IPv4 a.b.c.d:port"),
            ("10.0.0.2:", "address must be IPv4 a.b.c.d:port"),
            ("host.example:7000", "address must be IPv4 a.b.c.d:port"),
            ("10.0.0.256:7000", "address must be IPv4 a.b.c.d:port"),
            ("10.0.0.2:0", "port must be 1..65535"),
            ("10.0.0.2:65536", "port must be 1..65535"),
            ("127.0.0.1:7000", "loopback"),
            ("0.0.0.0:7000", "unspecified"),
            ("224.0.0.1:7000", "multicast"),
            ("255.255.255.255:7000", "broadcast"),
        ] {
            let e = migrate(&["--to", bad]).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::ValueValidation, "{bad}");
            assert_eq!(e.exit_code(), i32::from(ExitClass::Usage.code()));
            assert!(e.to_string().contains(why), "{bad}: {e}");
        }
    }

    #[test]
    fn downtime_range() {
        assert_eq!(
            migrate(&["--to", "10.0.0.2:1", "--max-downtime", "1"])
                .unwrap()
                .max_downtime,
            Some(1)
        );
        assert_eq!(
            migrate(&["--to", "10.0.0.2:1", "--max-downtime", "60000"])
                .unwrap()
                .max_downtime,
            Some(60_000)
        );
        for bad in ["0", "60001", "-5", "ten", "", "1.5", "99999999999999999999"] {
            let arg = format!("--max-downtime={bad}");
            let e = migrate(&["--to", "10.0.0.2:1", &arg]).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::ValueValidation, "{bad:?}");
            assert_eq!(e.exit_code(), 2);
        }
        // Without `=`, clap takes a negative number for an option.
        let e = migrate(&["--to", "10.0.0.2:1", "--max-downtime", "-5"]).unwrap_err();
        assert_eq!(e.exit_code(), 2);
    }

    #[test]
    fn migrate_needs_a_target_and_a_known_tracker() {
        assert_eq!(
            migrate(&[]).unwrap_err().kind(),
            ErrorKind::MissingRequiredArgument
        );
        assert_eq!(
            migrate(&["--to", "10.0.0.2:1", "--tracker", "magic"])
                .unwrap_err()
                .kind(),
            ErrorKind::InvalidValue
        );
    }

    #[test]
    fn receive() {
        let Command::Receive(r) = parse(&["receive", "--listen", "0.0.0.0:7000", "--key", "k"])
            .unwrap()
            .command
        else {
            panic!()
        };
        assert_eq!(r.listen.unwrap().to_string(), "0.0.0.0:7000");
        assert_eq!(r.key, Some(PathBuf::from("k")));
        assert!(!r.stop);

        let Command::Receive(r) = parse(&["receive", "--stop"]).unwrap().command else {
            panic!()
        };
        assert!(r.stop && r.listen.is_none());

        for bad in [
            &["receive"][..],
            &["receive", "--stop", "--listen", "0.0.0.0:7000"],
            &["receive", "--key", "k"],
            &["receive", "--listen", "0.0.0.0:0"],
            &["receive", "--listen", "239.1.1.1:7000"],
        ] {
            let e = parse(bad).unwrap_err();
            assert_eq!(e.exit_code(), 2, "{bad:?}");
        }
    }

    #[test]
    fn status_abort_and_global_sysfs() {
        let c = parse(&["status", "--json", "--sysfs", "/tmp/sys"]).unwrap();
        assert_eq!(c.global.sysfs, PathBuf::from("/tmp/sys"));
        assert!(matches!(
            c.command,
            Command::Status(StatusOpts { json: true })
        ));
        let c = parse(&["--sysfs", "/x", "abort", "--dev", "/tmp/d"]).unwrap();
        assert_eq!(c.global.sysfs, PathBuf::from("/x"));
        let Command::Abort(a) = c.command else {
            panic!()
        };
        assert_eq!(a.dev, PathBuf::from("/tmp/d"));
        assert_eq!(
            parse(&["status"]).unwrap().global.sysfs,
            PathBuf::from("/sys")
        );
    }

    #[test]
    fn unknown_things_are_usage_errors() {
        for bad in [&["frobnicate"][..], &["status", "--color"], &[]] {
            let e = parse(bad).unwrap_err();
            assert_eq!(e.exit_code(), 2, "{bad:?}");
        }
    }
}
