// SPDX-License-Identifier: GPL-2.0

//! selfmig's shared definitions: the wire format between the source guest
//! (`self_migrate.ko`) and the target loader (`inflate_loader.ko`), the
//! machine description both sides compare, and the `/dev/self_migrate` ioctl
//! ABI.
//!
//! Admission (`admission.rs`) is built from sealed tokens (`token.rs`), the
//! replay set (`replay.rs`), hash-chain payment (`chain.rs`) and the sealed
//! stream (`seal.rs`), over the crypto traits of `crypto.rs`, which the
//! kernel backs with its crypto API and user space with crates. A token
//! bundle (`bundle.rs`) is what the guest's owner is handed: the sealed
//! token with the secrets and grant the source needs to pay and seal.
//! The pre-copy convergence policy (`converge.rs`) lives here too: it is
//! pure arithmetic, which the host tests can feed any round history.
//!
//! The crate is `no_std` and allocation-free. The kernel modules include its
//! files by path (see `ksupport/proto.rs`), so the files refer to each
//! other with `super::` only, never `crate::`.

#![no_std]

pub mod admission;
pub mod bundle;
pub mod chain;
pub mod converge;
pub mod crypto;
pub mod handoff;
pub mod machine;
pub mod replay;
pub mod seal;
pub mod token;
pub mod uapi;
pub mod wire;
