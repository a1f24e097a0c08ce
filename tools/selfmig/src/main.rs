// SPDX-License-Identifier: GPL-2.0

//! `selfmig`: the command-line side of selfmig. Migrates this guest to
//! another VM through `/dev/self_migrate`, configures the target's
//! `inflate_loader`, shows status, mints and inspects admission tokens. See `Documentation/selfmig/cli.rst`.

mod cli;
mod cmd;
mod crypto;
mod device;
mod errno;
mod error;
mod exit;
mod hexfile;
mod json;
mod progress;
mod rate;
mod report;
mod request;
mod sysfs;
mod units;

use clap::Parser;
use exit::ExitClass;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = match cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // --help and --version are "errors" that print to stdout.
            let _ = e.print();
            return if e.use_stderr() {
                ExitClass::Usage
            } else {
                ExitClass::Success
            }
            .into();
        }
    };
    cmd::run(&cli).into()
}
