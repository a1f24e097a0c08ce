// SPDX-License-Identifier: GPL-2.0

//! The shared `proto/` crate, compiled into this module by path.

#[path = "../proto/src/crypto.rs"]
pub mod crypto;
#[path = "../proto/src/handoff.rs"]
pub mod handoff;
#[path = "../proto/src/machine.rs"]
pub mod machine;
#[path = "../proto/src/uapi.rs"]
pub mod uapi;
#[path = "../proto/src/wire.rs"]
pub mod wire;
