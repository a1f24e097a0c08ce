// SPDX-License-Identifier: GPL-2.0

//! The shared `proto/` crate, compiled into this module by path.

#[path = "../proto/src/admission.rs"]
pub mod admission;
#[path = "../proto/src/bundle.rs"]
pub mod bundle;
#[path = "../proto/src/chain.rs"]
pub mod chain;
#[path = "../proto/src/converge.rs"]
pub mod converge;
#[path = "../proto/src/crypto.rs"]
pub mod crypto;
#[path = "../proto/src/handoff.rs"]
pub mod handoff;
#[path = "../proto/src/machine.rs"]
pub mod machine;
#[path = "../proto/src/replay.rs"]
pub mod replay;
#[path = "../proto/src/seal.rs"]
pub mod seal;
#[path = "../proto/src/token.rs"]
pub mod token;
#[path = "../proto/src/uapi.rs"]
pub mod uapi;
#[path = "../proto/src/wire.rs"]
pub mod wire;
