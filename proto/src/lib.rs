// SPDX-License-Identifier: GPL-2.0

//! selfmig's shared definitions: the wire format between the source guest
//! (`self_migrate.ko`) and the target loader (`inflate_loader.ko`), the
//! machine description both sides compare, and the `/dev/self_migrate` ioctl
//! ABI.
//!
//! The crate is `no_std` and allocation-free. The kernel modules include its
//! files by path (see `self_migrate/proto.rs`), so the files refer to each
//! other with `super::` only, never `crate::`.

#![no_std]

pub mod handoff;
pub mod machine;
pub mod uapi;
pub mod wire;
