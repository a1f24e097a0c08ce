// SPDX-License-Identifier: GPL-2.0

//! `selfmig-hostile`: a misbehaving source against a live `inflate_loader`.
//!
//! One scenario per run (`--scenario`): it follows the protocol as far as
//! the scenario needs (token, stream key, a sealed hello describing the
//! target's machine), misbehaves once, reads what the loader answers and
//! prints `scenario=NAME reply=TEXT code=N`. It exits 0 when the loader
//! refused the expected way, 1 when not, 2 on a usage or input error.
//! `tools/selftests/two_guest/hostile.sh` runs every scenario against a
//! loader in a test guest.

mod args;
mod conn;
mod crypto;
mod iomem;
mod outbox;
mod report;
mod scenario;

#[cfg(test)]
mod loopback;

use std::process::ExitCode;
use std::time::Duration;

/// How long a misbehaving header may wait for its refusal before the
/// payload follows (the loader answers in well under this, even under TCG).
const GRACE: Duration = Duration::from_secs(2);

/// How long to wait for any answer: past the loader's own 15 s I/O timeout.
const TIMEOUT: Duration = Duration::from_secs(30);

/// Prints a usage or input error; exit status 2.
fn usage_error(msg: &str) -> ExitCode {
    eprintln!("selfmig-hostile: {msg}\n{}", args::usage());
    ExitCode::from(2)
}

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    if argv.iter().any(|a| a == "-h" || a == "--help") {
        println!("{}", args::usage());
        return ExitCode::SUCCESS;
    }
    let args = match args::parse(argv) {
        Ok(a) => a,
        Err(e) => return usage_error(&e),
    };
    let (bundle, machine) = match (args.bundle(), args.machine()) {
        (Ok(b), Ok(m)) => (b, m),
        (Err(e), _) | (_, Err(e)) => return usage_error(&e),
    };
    let target = scenario::Target {
        to: args.to,
        bundle,
        machine,
        grace: GRACE,
        timeout: TIMEOUT,
    };
    let result = scenario::run(args.scenario, &target);
    println!("{}", report::line(args.scenario, &result.outcome));
    if result.passed(args.scenario) {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
