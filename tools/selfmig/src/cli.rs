// SPDX-License-Identifier: GPL-2.0

//! The command line: subcommands, options, and the checks on their values.
//!
//! Values are checked with `proto`'s parsers, the ones the modules use on
//! the same input through sysfs, so a value is refused here exactly when
//! the kernel would refuse it. A refused value is a usage error (exit 2).

use crate::device;
use crate::request::Tracker;
use crate::sysfs;
use clap::{value_parser, ArgGroup, Args, Parser, Subcommand};
use selfmig_proto::token::MAX_CHAIN_LEN;
use selfmig_proto::uapi::{self, Endpoint, MAX_MAX_DOWNTIME_MS, MIN_MAX_DOWNTIME_MS};
use std::path::PathBuf;

/// `--version --verbose`-style version: the package version and the ABI
/// it speaks, in the format of `/sys/kernel/self_migrate/version`.
pub const LONG_VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    "\nABI: wire 4 image 1 start_size 64 status_size 80"
);

/// Live self-migration of this guest to another VM.
///
/// `migrate` runs in the guest that moves (self_migrate.ko); `receive`
/// runs in the VM that takes it in (inflate_loader.ko); `token` mints the
/// token bundles that admit a guest (provider side) and inspects them. See
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
    /// Mint admission tokens (provider side) and inspect them.
    Token(TokenOpts),
}

/// `selfmig migrate`.
#[derive(Debug, Args)]
pub struct MigrateOpts {
    /// The target's inflate_loader: IPv4 address and port.
    #[arg(long, value_name = "HOST:PORT", value_parser = parse_target)]
    pub to: Endpoint,
    /// File holding the admission token bundle in hexadecimal (as sysfs
    /// `token` takes it; `selfmig token mint` writes one).
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
    /// When the guest dirties memory faster than the link sends it, give
    /// up instead of throttling the tasks that do.
    #[arg(long)]
    pub no_auto_converge: bool,
    /// Send every page plain instead of LZ4-compressing the ones that
    /// shrink.
    #[arg(long)]
    pub no_compress: bool,
    /// Connect without first rehearsing the checkpoint (devices frozen and
    /// thawed, the system core suspended and resumed, nothing copied).
    #[arg(long)]
    pub no_rehearse: bool,
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

/// `selfmig token`.
#[derive(Debug, Args)]
pub struct TokenOpts {
    /// What to do with tokens.
    #[command(subcommand)]
    pub command: TokenCommand,
}

/// The `token` subcommands.
#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Mint a token bundle with the provider key (provider side).
    Mint(MintOpts),
    /// Show a token bundle's grant; with --key, check its sealed token.
    Inspect(InspectOpts),
}

/// Most MiB `--ram-mib` takes: the pages must fit 64 bits.
pub const MAX_RAM_MIB: u64 = u64::MAX / PAGES_PER_MIB;

/// Most MiB `--unit-mib` takes: a unit's pages must fit 32 bits.
pub const MAX_UNIT_MIB: u32 = u32::MAX / PAGES_PER_MIB as u32;

/// 4 KiB pages in a MiB.
pub const PAGES_PER_MIB: u64 = 256;

/// Default `--unit-mib`: `proto`'s default unit of 16384 pages.
pub const DEFAULT_UNIT_MIB: u32 = selfmig_proto::token::DEFAULT_UNIT_PAGES / PAGES_PER_MIB as u32;

/// `selfmig token mint`.
#[derive(Debug, Args)]
#[command(
    group(ArgGroup::new("size").required(true).args(["pages", "ram_mib"])),
    group(ArgGroup::new("lifetime").required(true).args(["expires_in", "expiry"])),
    override_usage = "selfmig token mint --key <FILE> (--pages <N> | --ram-mib <MIB>) \
                      --vcpus <V>\n                          \
                      (--expires-in <SECONDS> | --expiry <UNIX>) [OPTIONS]"
)]
pub struct MintOpts {
    /// File holding the provider key in hexadecimal (16, 24 or 32 bytes),
    /// as the loader's sysfs `key` takes it.
    #[arg(long, value_name = "FILE")]
    pub key: PathBuf,
    /// Pages (4 KiB) granted: the most distinct frames the image may use.
    #[arg(long, value_name = "N", value_parser = value_parser!(u64).range(1..))]
    pub pages: Option<u64>,
    /// RAM granted, in MiB (256 pages each).
    #[arg(
        long,
        value_name = "MIB",
        value_parser = value_parser!(u64).range(1..=MAX_RAM_MIB)
    )]
    pub ram_mib: Option<u64>,
    /// vCPUs granted.
    #[arg(long, value_name = "V", value_parser = value_parser!(u32).range(1..))]
    pub vcpus: u32,
    /// The token expires this many seconds from now.
    #[arg(long, value_name = "SECONDS", value_parser = value_parser!(u64).range(1..))]
    pub expires_in: Option<u64>,
    /// The token expires at this unix time (seconds).
    #[arg(long, value_name = "UNIX", value_parser = value_parser!(u64).range(1..))]
    pub expiry: Option<u64>,
    /// Links in the payment chain (default: enough to pay for the grant).
    #[arg(
        long,
        value_name = "L",
        value_parser = value_parser!(u32).range(1..=i64::from(MAX_CHAIN_LEN))
    )]
    pub chain_len: Option<u32>,
    /// MiB one chain link buys.
    #[arg(
        long,
        value_name = "MIB",
        default_value_t = DEFAULT_UNIT_MIB,
        value_parser = value_parser!(u32).range(1..=i64::from(MAX_UNIT_MIB))
    )]
    pub unit_mib: u32,
    /// Price of one unit, for the provider's books (sealed in the token).
    #[arg(long, value_name = "P", default_value_t = 0)]
    pub price: u64,
    /// Write the bundle to FILE (mode 0600) instead of stdout.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Overwrite an existing --out file.
    #[arg(long, requires = "out")]
    pub force: bool,
    /// Print the summary as one JSON object on stdout (needs --out).
    #[arg(long, requires = "out")]
    pub json: bool,
}

impl MintOpts {
    /// The pages granted, from --pages or --ram-mib.
    pub fn granted_pages(&self) -> u64 {
        match (self.pages, self.ram_mib) {
            (Some(p), _) => p,
            // The parser bounds --ram-mib so that this cannot overflow.
            (None, Some(m)) => m * PAGES_PER_MIB,
            // clap requires one of them.
            (None, None) => 0,
        }
    }

    /// Pages one chain link buys.
    pub fn unit_pages(&self) -> u32 {
        // The parser bounds --unit-mib so that this cannot overflow.
        self.unit_mib * PAGES_PER_MIB as u32
    }
}

/// `selfmig token inspect`.
#[derive(Debug, Args)]
pub struct InspectOpts {
    /// File holding the token bundle in hexadecimal.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// File holding the provider key: open the sealed token with it and
    /// check that it agrees with the bundle.
    #[arg(long, value_name = "FILE")]
    pub key: Option<PathBuf>,
    /// Print one JSON object on stdout.
    #[arg(long)]
    pub json: bool,
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

    fn token(args: &[&str]) -> Result<TokenCommand, clap::Error> {
        let mut all = vec!["token"];
        all.extend_from_slice(args);
        match parse(&all)?.command {
            Command::Token(t) => Ok(t.command),
            other => panic!("parsed as {other:?}"),
        }
    }

    fn mint(args: &[&str]) -> Result<MintOpts, clap::Error> {
        let mut all = vec!["mint"];
        all.extend_from_slice(args);
        match token(&all)? {
            TokenCommand::Mint(m) => Ok(m),
            other => panic!("parsed as {other:?}"),
        }
    }

    const MINT: [&str; 6] = ["--key", "k", "--pages", "1000", "--vcpus", "2"];

    fn mint_with(extra: &[&str]) -> Result<MintOpts, clap::Error> {
        let mut all = MINT.to_vec();
        all.extend_from_slice(extra);
        mint(&all)
    }

    #[test]
    fn mint_defaults() {
        let m = mint_with(&["--expires-in", "3600"]).unwrap();
        assert_eq!(m.key, PathBuf::from("k"));
        assert_eq!(m.granted_pages(), 1000);
        assert_eq!(m.vcpus, 2);
        assert_eq!(m.expires_in, Some(3600));
        assert_eq!(m.expiry, None);
        assert_eq!(m.chain_len, None);
        assert_eq!(m.unit_mib, 64);
        assert_eq!(m.unit_pages(), 16384);
        assert_eq!(m.price, 0);
        assert_eq!(m.out, None);
        assert!(!m.force && !m.json);
    }

    #[test]
    fn mint_everything() {
        let m = mint(&[
            "--key",
            "/k",
            "--ram-mib",
            "1024",
            "--vcpus",
            "4",
            "--expiry",
            "1800000000",
            "--chain-len",
            "9",
            "--unit-mib",
            "128",
            "--price",
            "7",
            "--out",
            "/o",
            "--force",
            "--json",
        ])
        .unwrap();
        assert_eq!(m.granted_pages(), 262_144);
        assert_eq!(m.vcpus, 4);
        assert_eq!(m.expiry, Some(1_800_000_000));
        assert_eq!(m.chain_len, Some(9));
        assert_eq!(m.unit_pages(), 32_768);
        assert_eq!(m.price, 7);
        assert_eq!(m.out, Some(PathBuf::from("/o")));
        assert!(m.force && m.json);
        // The largest values the parsers allow do not overflow.
        let big = format!("{MAX_RAM_MIB}");
        let m = mint(&[
            "--key",
            "k",
            "--ram-mib",
            &big,
            "--vcpus",
            "1",
            "--expires-in",
            "1",
            "--unit-mib",
            "16777215",
            "--chain-len",
            "1048576",
        ])
        .unwrap();
        assert_eq!(m.granted_pages(), MAX_RAM_MIB * 256);
        assert_eq!(m.unit_pages(), 16_777_215 * 256);
        assert_eq!(m.chain_len, Some(MAX_CHAIN_LEN));
    }

    #[test]
    fn mint_refusals_are_usage_errors() {
        use ErrorKind::*;
        let over_ram = format!(
            "--key k --ram-mib {} --vcpus 1 --expires-in 1",
            MAX_RAM_MIB + 1
        );
        for (bad, kind) in [
            // One of --pages/--ram-mib, one of --expires-in/--expiry, and
            // --key and --vcpus.
            ("--key k --vcpus 1 --expires-in 1", MissingRequiredArgument),
            ("--key k --pages 1 --vcpus 1", MissingRequiredArgument),
            (
                "--pages 1 --vcpus 1 --expires-in 1",
                MissingRequiredArgument,
            ),
            ("--key k --pages 1 --expires-in 1", MissingRequiredArgument),
            (
                "--key k --pages 1 --ram-mib 1 --vcpus 1 --expires-in 1",
                ArgumentConflict,
            ),
            (
                "--key k --pages 1 --vcpus 1 --expires-in 1 --expiry 5",
                ArgumentConflict,
            ),
            // Zero, out-of-range and malformed values.
            (
                "--key k --pages 0 --vcpus 1 --expires-in 1",
                ValueValidation,
            ),
            (
                "--key k --pages x --vcpus 1 --expires-in 1",
                ValueValidation,
            ),
            (
                "--key k --ram-mib 0 --vcpus 1 --expires-in 1",
                ValueValidation,
            ),
            (&over_ram, ValueValidation),
            (
                "--key k --pages 1 --vcpus 0 --expires-in 1",
                ValueValidation,
            ),
            (
                "--key k --pages 1 --vcpus 1 --expires-in 0",
                ValueValidation,
            ),
            ("--key k --pages 1 --vcpus 1 --expiry 0", ValueValidation),
            (
                "--key k --pages 1 --vcpus 1 --expires-in 1 --chain-len 0",
                ValueValidation,
            ),
            (
                "--key k --pages 1 --vcpus 1 --expires-in 1 --chain-len 1048577",
                ValueValidation,
            ),
            (
                "--key k --pages 1 --vcpus 1 --expires-in 1 --unit-mib 0",
                ValueValidation,
            ),
            (
                "--key k --pages 1 --vcpus 1 --expires-in 1 --unit-mib 16777216",
                ValueValidation,
            ),
            (
                "--key k --pages 1 --vcpus 1 --expires-in 1 --price=-1",
                ValueValidation,
            ),
            // --force and --json only with --out (the bundle would share
            // stdout with the JSON).
            (
                "--key k --pages 1 --vcpus 1 --expires-in 1 --json",
                MissingRequiredArgument,
            ),
            (
                "--key k --pages 1 --vcpus 1 --expires-in 1 --force",
                MissingRequiredArgument,
            ),
        ] {
            let args: Vec<&str> = bad.split_whitespace().collect();
            let e = mint(&args).unwrap_err();
            assert_eq!(e.kind(), kind, "{bad}: {e}");
            assert_eq!(e.exit_code(), 2, "{bad}");
        }
    }

    #[test]
    fn inspect_args() {
        let TokenCommand::Inspect(i) = token(&["inspect", "b.hex"]).unwrap() else {
            panic!()
        };
        assert_eq!(i.file, PathBuf::from("b.hex"));
        assert_eq!(i.key, None);
        assert!(!i.json);
        let TokenCommand::Inspect(i) =
            token(&["inspect", "--key", "k", "b.hex", "--json"]).unwrap()
        else {
            panic!()
        };
        assert_eq!(i.key, Some(PathBuf::from("k")));
        assert!(i.json);
        for bad in [&["inspect"][..], &["inspect", "a", "b"], &[], &["forge"]] {
            assert_eq!(token(bad).unwrap_err().exit_code(), 2, "{bad:?}");
        }
    }

    #[test]
    fn unknown_things_are_usage_errors() {
        for bad in [&["frobnicate"][..], &["status", "--color"], &[]] {
            let e = parse(bad).unwrap_err();
            assert_eq!(e.exit_code(), 2, "{bad:?}");
        }
    }
}
