// SPDX-License-Identifier: GPL-2.0
//! Fuzz target: the loader's record parser and admission state machine
//! (see `../harness.rs` for how the input is read).

#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../../tests/support/mod.rs"]
mod support;

#[path = "../harness.rs"]
mod harness;

fuzz_target!(|data: &[u8]| {
    harness::run(data);
});
