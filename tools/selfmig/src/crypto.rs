// SPDX-License-Identifier: GPL-2.0

//! The crypto this tool mints and checks tokens with: `proto`'s traits
//! backed by crates (`tools/hostcrypto`, shared with the hostile source).

pub use selfmig_hostcrypto::{random, Gcm, Secret, Sha256};
