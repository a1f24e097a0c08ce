// SPDX-License-Identifier: GPL-2.0

//! The subcommands, one file each. A new subcommand is a
//! variant of [`Command`] in `cli.rs` and a file here with a `run`.

mod abort;
mod migrate;
mod receive;
mod status;
mod token;

use crate::cli::{Cli, Command};
use crate::error::CliError;
use crate::exit::ExitClass;
use crate::sysfs::Sysfs;

/// Runs the parsed command line; returns how it ended.
pub fn run(cli: &Cli) -> ExitClass {
    let sysfs = Sysfs::new(&cli.global.sysfs);
    match &cli.command {
        Command::Migrate(opts) => migrate::run(opts, &sysfs),
        Command::Receive(opts) => receive::run(opts, &sysfs),
        Command::Status(opts) => status::run(opts, &sysfs),
        Command::Abort(opts) => abort::run(opts, &sysfs),
        Command::Token(opts) => token::run(opts),
    }
}

/// Prints `e` on stderr and returns its class: the end of a command that
/// failed with nothing else to print.
fn fail(e: CliError) -> ExitClass {
    e.print();
    e.class
}
