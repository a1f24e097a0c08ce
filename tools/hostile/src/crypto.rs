// SPDX-License-Identifier: GPL-2.0

//! The crypto the hostile source seals its stream with: `proto`'s traits
//! backed by crates (`tools/hostcrypto`, shared with the `selfmig` CLI).

pub use selfmig_hostcrypto::{random, Gcm, Sha256};
